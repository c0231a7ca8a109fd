"""The label join over timelines many TTLs long, against a dict model of its documented rules.

The interleaving property in ``test_join.py`` stays inside one TTL; here the generated
timelines span several TTLs at epoch scale and overflow ``max_pending`` and ``max_early``, so
expiry, eviction and the orphan timeout all happen, and every counter must be exact.

The oracle (:class:`DictJoin`) is the rules as the module docstring and DESIGN §2 state them,
kept in plain dicts by id (no hashing, no sorted columns, no insert buffer):

- a prediction whose id is alive (pending or joined) is a duplicate; else it joins a waiting
  early label of its id, or waits itself;
- a label joins its alive pending prediction; a second label of a joined id or of an id that
  already waits is a duplicate; else it waits as an early label;
- ``expire(now)``: early labels older than ``now - label_wait`` are orphans, then the oldest
  beyond ``max_early``; rows older than ``now - ttl`` are forgotten (counted if unlabelled);
  then the oldest rows beyond ``max_pending`` are evicted (counted if unlabelled); the same
  eviction runs when ``buffer`` inserts have accumulated since the last merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.state import join as join_module
from monitor.state.join import JoinCounts, LabelJoin, Pairs, id_keys

BASE = 1.7e9  # epoch seconds: TTL arithmetic at the magnitude production sees
PairTuple = tuple[float, float, float, float, float]


@dataclass
class Row:
    ts: float
    pred: float
    proba: float
    joined: bool = False


@dataclass
class DictJoin:
    ttl: float
    label_wait: float
    max_pending: int
    max_early: int
    buffer: int
    rows: dict[str, Row] = field(default_factory=dict)
    early: dict[str, tuple[float, float]] = field(default_factory=dict)  # id → (y, label ts)
    since_merge: int = 0

    def predict(
        self, batch: list[tuple[str, float, float, float]]
    ) -> tuple[list[PairTuple], JoinCounts]:
        counts, pairs, seen = JoinCounts(), [], set()
        for i, ts, pred, proba in batch:
            if i in seen or i in self.rows:
                counts.duplicate_predictions += 1
                continue
            seen.add(i)
            row = self.rows[i] = Row(ts, pred, proba)
            if i in self.early:
                y, label_ts = self.early.pop(i)
                row.joined = True
                pairs.append((ts, pred, proba, y, label_ts - ts))
        counts.joined = len(pairs)
        self.since_merge += len(seen)
        if self.since_merge >= self.buffer:
            self.since_merge = 0
            counts.evicted = self._evict()
        return pairs, counts

    def label(self, batch: list[tuple[str, float, float]]) -> tuple[list[PairTuple], JoinCounts]:
        counts, pairs = JoinCounts(), []
        for i, y, ts in batch:
            row = self.rows.get(i)
            if row is not None and not row.joined:
                row.joined = True
                pairs.append((row.ts, row.pred, row.proba, y, ts - row.ts))
            elif row is not None or i in self.early:
                counts.duplicate_labels += 1
            else:
                self.early[i] = (y, ts)
        counts.joined = len(pairs)
        return pairs, counts

    def expire(self, now: float) -> JoinCounts:
        counts = JoinCounts()
        for i in [i for i, (_, t) in self.early.items() if t < now - self.label_wait]:
            del self.early[i]
            counts.orphan_labels += 1
        while len(self.early) > self.max_early:
            del self.early[min(self.early, key=lambda i: self.early[i][1])]
            counts.orphan_labels += 1
        for i in [i for i, r in self.rows.items() if r.ts < now - self.ttl]:
            counts.expired_unlabelled += not self.rows.pop(i).joined
        self.since_merge = 0
        counts.evicted = self._evict()
        return counts

    def _evict(self) -> int:
        evicted = 0
        while len(self.rows) > self.max_pending:
            oldest = min(self.rows, key=lambda i: self.rows[i].ts)
            evicted += not self.rows.pop(oldest).joined
        return evicted

    def pending(self) -> int:
        return sum(not r.joined for r in self.rows.values())


def as_tuples(p: Pairs) -> list[PairTuple]:
    return [
        (
            float(p.ts[k]),
            float(p.y_pred[k]),
            float(p.proba[k, 0]),
            float(p.y_true[k]),
            float(p.delay[k]),
        )
        for k in range(len(p))
    ]


@st.composite
def timelines(draw: st.DrawFn) -> tuple[dict[str, float], list[tuple[str, list[tuple]]]]:
    """Parameters and steps ("p"/"l" batches, "x" expiry) over about 5–15 TTLs.

    Times are ``BASE`` + quarter seconds, so a row can sit exactly on a TTL or ``label_wait``
    cutoff; no two predictions (and no two labels) share a time, since the order in which
    rows of equal time are evicted is unspecified.
    """
    ttl = draw(st.sampled_from([40.0, 97.5, 250.0]), label="ttl")
    params = {
        "ttl": ttl,
        "label_wait": draw(st.sampled_from([0.0, 15.5, 60.0]), label="label_wait"),
        "max_pending": draw(st.integers(1, 10), label="max_pending"),
        "max_early": draw(st.integers(0, 5), label="max_early"),
        "buffer": draw(st.sampled_from([1, 3, 32_768]), label="buffer"),
    }
    ids = st.integers(0, 14).map(lambda n: f"id-{n}")
    quarters, steps = 0, []
    used: dict[str, set[int]] = {"p": set(), "l": set()}
    for _ in range(draw(st.integers(10, 45), label="steps")):
        quarters += draw(st.integers(0, int(ttl * 2.4)))  # up to 0.6 TTL per step
        kind = draw(st.sampled_from("ppllx"))
        if kind == "x":
            # "now" is the newest prediction time, or (as a watermark held back by a slower
            # partition may be) exactly one TTL after an earlier prediction: on its cutoff.
            if used["p"]:
                newest = max(used["p"])
                on_cutoff = sorted(q + int(ttl * 4) for q in used["p"] if q + ttl * 4 <= newest)
                now = newest
                if on_cutoff and draw(st.booleans()):
                    now = draw(st.sampled_from(on_cutoff))
                steps.append(("x", [BASE + now / 4]))
            continue
        batch = []
        for i in draw(st.lists(ids, min_size=1, max_size=5)):
            q = quarters - draw(st.integers(0, int(ttl * 6)))  # up to 1.5 TTL old
            while q in used[kind]:
                q += 1
            used[kind].add(q)
            t, y = BASE + q / 4, float(draw(st.integers(0, 1)))
            batch.append((i, t, y, y * 0.5 + 0.25) if kind == "p" else (i, y, t))
        steps.append((kind, batch))
    return params, steps


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(timelines())
def test_join_over_many_ttls_matches_the_dict_model(
    timeline: tuple[dict[str, float], list[tuple[str, list[tuple]]]],
) -> None:
    params, steps = timeline
    oracle = DictJoin(**params)  # type: ignore[arg-type]
    j = LabelJoin(
        ttl=params["ttl"],
        label_wait=params["label_wait"],
        max_pending=int(params["max_pending"]),
        proba_width=1,
        max_early=int(params["max_early"]),
    )
    with mock.patch.object(join_module, "_BUFFER", int(params["buffer"])):
        for n, (kind, batch) in enumerate(steps):
            if kind == "p":
                _, got, counts = j.add_predictions(
                    id_keys([b[0] for b in batch]),
                    np.array([b[1] for b in batch]),
                    np.array([b[2] for b in batch]),
                    np.array([[b[3]] for b in batch], dtype=np.float32),
                )
                want, want_counts = oracle.predict(batch)
                assert (as_tuples(got), counts) == (want, want_counts), n
            elif kind == "l":
                got, counts = j.add_labels(
                    id_keys([b[0] for b in batch]),
                    np.array([b[1] for b in batch]),
                    np.array([b[2] for b in batch]),
                )
                want, want_counts = oracle.label(batch)
                assert (as_tuples(got), counts) == (want, want_counts), n
            else:
                assert j.expire(batch[0]) == oracle.expire(batch[0]), n
            assert j.pending() == oracle.pending(), n
            early = dict(
                zip(id_keys(list(oracle.early)).tolist(), oracle.early.values(), strict=True)
            )
            assert j.early == early, n
