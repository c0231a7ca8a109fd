"""The prediction ↔ label join (issue 3): by id, early labels, duplicates, orphans, TTL, eviction.

Event time only: ``now`` is always the model's newest prediction time, passed in by the caller.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.events import Label, Prediction, PredictionBatch
from monitor.persistence.checkpoint import read_checkpoint, write_checkpoint
from monitor.settings import ModelSettings, WindowSpec
from monitor.state import join as join_module
from monitor.state.join import JoinCounts, LabelJoin, Pairs, id_keys
from monitor.state.performance_state import PerformanceState
from monitor.stats.accumulators import ClassificationAccumulator

PairTuple = tuple[float, float, tuple[float, ...], float, float]


def make_join(
    ttl: float = 3600.0,
    label_wait: float = 60.0,
    max_pending: int = 1_000_000,
    width: int = 1,
    max_early: int = 100_000,
) -> LabelJoin:
    return LabelJoin(
        ttl=ttl, label_wait=label_wait, max_pending=max_pending, proba_width=width,
        max_early=max_early,
    )  # fmt: skip


def predict(
    j: LabelJoin,
    ids: list[str],
    ts: list[float],
    pred: list[float] | None = None,
    proba: list[list[float]] | None = None,
) -> tuple[npt.NDArray[np.bool_], Pairs, JoinCounts]:
    n = len(ids)
    p = np.array(pred if pred is not None else [1.0] * n, dtype=np.float64)
    pr = (
        np.array(proba, dtype=np.float32).reshape(n, j.proba_width)
        if proba is not None
        else np.full((n, j.proba_width), 0.75, dtype=np.float32)
    )
    return j.add_predictions(id_keys(ids), np.array(ts, dtype=np.float64), p, pr)


def label(
    j: LabelJoin, ids: list[str], y: list[float], ts: list[float]
) -> tuple[Pairs, JoinCounts]:
    return j.add_labels(id_keys(ids), np.array(y, dtype=np.float64), np.array(ts, np.float64))


def tuples(pairs: Pairs) -> list[PairTuple]:
    """Pairs as sorted tuples (a multiset that ignores the order they were produced in)."""
    return sorted(
        (
            float(pairs.ts[i]),
            float(pairs.y_pred[i]),
            tuple(float(v) for v in pairs.proba[i]),
            float(pairs.y_true[i]),
            float(pairs.delay[i]),
        )
        for i in range(len(pairs))
    )


# --- ids -----------------------------------------------------------------------------------


def test_id_keys_are_stable_xxh3_64_across_processes() -> None:
    # Hard-coded: a checkpoint written by one process must be read by the next (unlike hash()).
    # (The keys of state written before issue 12 are blake2b's: see test_id_hash.)
    assert id_keys(["a", "order-42", ""]).tolist() == [
        16629034431890738719,
        8776571816221789756,
        3244421341483603138,
    ]
    assert id_keys([]).dtype == np.uint64 and id_keys([]).size == 0


# --- joining -------------------------------------------------------------------------------


def test_a_label_joins_its_prediction_by_id_with_the_prediction_values() -> None:
    j = make_join()
    fresh, pairs, counts = predict(
        j, ["a", "b", "c"], [10.0, 20.0, 30.0], pred=[1, 0, 1], proba=[[0.9], [0.2], [0.625]]
    )
    assert fresh.tolist() == [True, True, True] and len(pairs) == 0 and counts == JoinCounts()
    assert j.pending() == 3

    pairs, counts = label(j, ["c", "a", "zzz"], [0, 1, 1], [45.0, 11.5, 50.0])

    assert tuples(pairs) == [
        (10.0, 1.0, (0.8999999761581421,), 1.0, 1.5),  # the score as stored (float32)
        (30.0, 1.0, (0.625,), 0.0, 15.0),
    ]
    assert counts == JoinCounts(joined=2)
    assert j.pending() == 1  # b still waits; zzz waits as an early label
    assert len(j.early) == 1


def test_a_label_before_its_prediction_joins_when_the_prediction_arrives() -> None:
    j = make_join(label_wait=60.0)
    pairs, counts = label(j, ["x"], [1], [100.0])
    assert len(pairs) == 0 and counts == JoinCounts()
    assert j.expire(now=130.0) == JoinCounts()  # still within label_wait

    fresh, pairs, counts = predict(j, ["x", "y"], [95.0, 96.0], pred=[0, 1], proba=[[0.25], [0.5]])

    assert fresh.tolist() == [True, True]
    assert tuples(pairs) == [(95.0, 0.0, (0.25,), 1.0, 5.0)]
    assert counts.joined == 1
    assert j.pending() == 1 and not j.early  # x is joined, y waits
    pairs, counts = label(j, ["x"], [1], [101.0])  # the label again: a duplicate now
    assert len(pairs) == 0 and counts.duplicate_labels == 1


def test_an_early_label_becomes_an_orphan_after_label_wait() -> None:
    j = make_join(label_wait=60.0)
    label(j, ["x", "never"], [1, 0], [100.0, 100.0])
    assert j.expire(now=160.0).orphan_labels == 0  # exactly label_wait: still waiting
    assert j.expire(now=160.5).orphan_labels == 2
    assert not j.early
    _, pairs, counts = predict(j, ["x"], [161.0])
    assert len(pairs) == 0 and counts.joined == 0  # its label was given up on
    assert j.pending() == 1


def test_early_labels_are_bounded_by_max_early_oldest_are_orphaned() -> None:
    j = make_join(label_wait=1e9, max_early=3)
    label(j, ["e1", "e2", "e3", "e4", "e5"], [1] * 5, [5.0, 1.0, 4.0, 2.0, 3.0])
    assert j.expire(now=10.0).orphan_labels == 2
    assert sorted(j.early) == sorted(id_keys(["e1", "e3", "e5"]).tolist())  # newest three


def test_a_label_for_an_expired_prediction_is_an_orphan() -> None:
    j = make_join(ttl=100.0, label_wait=10.0)
    predict(j, ["old", "new"], [0.0, 150.0])
    assert j.expire(now=150.0).expired_unlabelled == 1
    pairs, _ = label(j, ["old"], [1], [151.0])
    assert len(pairs) == 0
    assert j.expire(now=170.0).orphan_labels == 1


def test_duplicate_predictions_count_once_and_the_first_copy_wins() -> None:
    j = make_join()
    fresh, _, counts = predict(j, ["a", "b", "a"], [1.0, 2.0, 3.0], proba=[[0.1], [0.2], [0.3]])
    assert fresh.tolist() == [True, True, False] and counts.duplicate_predictions == 1
    fresh, _, counts = predict(j, ["b", "c"], [4.0, 5.0])  # b is in the insert buffer
    assert fresh.tolist() == [False, True] and counts.duplicate_predictions == 1
    j.expire(now=5.0)  # merges the buffer into the sorted columns
    assert not j.buffer and j.keys.size == 3
    fresh, _, counts = predict(j, ["a", "d", "d"], [6.0, 7.0, 8.0])  # a is in the sorted part
    assert fresh.tolist() == [False, True, False] and counts.duplicate_predictions == 2
    assert j.pending() == 4

    pairs, _ = label(j, ["a"], [0], [9.0])
    assert tuples(pairs) == [(1.0, 1.0, (np.float32(0.1).item(),), 0.0, 8.0)]


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.tuples(st.lists(st.integers(0, 30), max_size=12), st.booleans()), max_size=8
    ),
    old=st.sets(st.integers(0, 30), max_size=6),
)
def test_unseen_is_first_occurrence_of_a_key_never_held(
    batches: list[tuple[list[int], bool]], old: set[int]
) -> None:
    """Against a set: wherever a key is held (sorted part, buffer) and under either hash."""
    j, held = make_join(), set(old)
    legacy = {i: 10_000 + i for i in range(31)}  # stand-ins for the ids' blake2b keys
    olds = np.array([legacy[i] for i in sorted(old)], np.uint64)
    j.insert(olds, np.zeros(olds.size), np.ones(olds.size), np.zeros((olds.size, 1), np.float32))
    j.expire(now=0.0)  # the old rows are in the sorted part, as a restored join holds them
    for ids, merge in batches:
        keys = np.array(ids, np.uint64)
        fresh = j.unseen(keys, np.array([legacy[i] for i in ids], np.uint64))
        want = [i not in held and i not in ids[:at] for at, i in enumerate(ids)]
        assert fresh.tolist() == want
        new = keys[fresh]
        j.insert(new, np.zeros(new.size), np.ones(new.size), np.zeros((new.size, 1), np.float32))
        held.update(ids)
        if merge:
            j.expire(now=0.0)


@pytest.mark.parametrize("where", ["early", "buffer", "sorted"])
def test_duplicate_labels_count_once_and_the_first_label_wins(where: str) -> None:
    j = make_join()
    if where != "early":
        predict(j, ["a"], [1.0])
    if where == "sorted":
        j.expire(now=1.0)
        assert j.keys.size == 1 and not j.buffer
    pairs, counts = label(j, ["a", "a"], [1, 0], [2.0, 3.0])  # twice in one batch
    pairs2, counts2 = label(j, ["a"], [0], [4.0])  # and again later
    if where == "early":
        assert len(pairs) == 0
        _, pairs, _ = predict(j, ["a"], [1.0])
    assert [(p[3], p[4]) for p in tuples(pairs)] == [(1.0, 1.0)]
    assert len(pairs2) == 0
    assert counts.duplicate_labels + counts2.duplicate_labels == 2
    assert j.pending() == 0


# --- expiry and eviction -------------------------------------------------------------------


def test_ttl_expiry_counts_unlabelled_predictions_only() -> None:
    j = make_join(ttl=100.0)
    predict(j, [f"p{i}" for i in range(10)], [float(10 * i) for i in range(10)])
    label(j, ["p0", "p2"], [1, 1], [5.0, 25.0])  # p0, p2 joined: they expire uncounted

    counts = j.expire(now=145.0)  # cutoff 45: p0..p4 leave the store

    assert counts.expired_unlabelled == 3  # p1, p3, p4
    assert counts.evicted == 0 and counts.orphan_labels == 0
    assert j.pending() == 5 and j.keys.size == 5
    assert j.expire(now=145.0) == JoinCounts()  # counted once
    _, _, counts = predict(j, ["p1"], [146.0])  # its id is free again
    assert counts.duplicate_predictions == 0


def test_max_pending_evicts_the_oldest_first_and_counts_them() -> None:
    j = make_join(max_pending=5)
    ts = [7.0, 2.0, 6.0, 0.0, 5.0, 1.0, 4.0, 3.0]
    ids = [f"t{int(t)}" for t in ts]
    predict(j, ids, ts)
    label(j, ["t0"], [1], [10.0])  # joined rows are evicted too, but are not "pending" ones

    counts = j.expire(now=7.0)

    assert counts.evicted == 2  # t1, t2 (and the joined t0) give way
    assert counts.expired_unlabelled == 0
    assert j.pending() == 5 and j.keys.size == 5
    pairs, _ = label(j, [f"t{i}" for i in range(8)], [1] * 8, [10.0] * 8)
    assert sorted(p[0] for p in tuples(pairs)) == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert len(j.early) == 3  # the evicted ids' labels wait, then are orphans


def test_max_pending_holds_between_maintenance_ticks() -> None:
    """Eviction also runs when the insert buffer is merged, not only on the evaluation tick."""
    with mock.patch.object(join_module, "_BUFFER", 100):
        j = make_join(max_pending=250)
        evicted = 0
        for start in range(0, 2000, 50):
            ids = [f"p{i}" for i in range(start, start + 50)]
            _, _, counts = predict(j, ids, [float(i) for i in range(start, start + 50)])
            evicted += counts.evicted
            assert j.keys.size + len(j.buffer) <= 250 + 100
        evicted += j.expire(now=2000.0).evicted
    assert evicted == 2000 - 250
    assert j.pending() == 250
    assert j.ts.min() == 1750.0  # the newest survive


def test_insert_buffer_flush_boundary_keeps_every_lookup_right() -> None:
    """More than one buffer's worth (32 768) of inserts: ids in the sorted part and the buffer."""
    n = 40_000
    rng = np.random.default_rng(7)
    ids = [f"id-{i}" for i in range(n)]
    ts = np.arange(n, dtype=np.float64)
    scores = rng.random(n).astype(np.float32)
    j = make_join()
    duplicates = 0
    for start in range(0, n, 997):
        stop = min(n, start + 997)
        batch = ids[start:stop] + ids[max(0, start - 3) : start]  # 3 repeats across batches
        bts = np.concatenate([ts[start:stop], ts[max(0, start - 3) : start]])
        bs = np.concatenate([scores[start:stop], scores[max(0, start - 3) : start]])
        fresh, _, counts = j.add_predictions(
            id_keys(batch), bts, (bs >= 0.5).astype(np.float64), bs.reshape(-1, 1)
        )
        assert fresh.sum() == stop - start
        duplicates += counts.duplicate_predictions
    assert duplicates == 3 * (len(range(0, n, 997)) - 1)
    assert j.keys.size >= 32_768 and 0 < len(j.buffer) < 32_768  # one merge happened
    assert j.keys.size + len(j.buffer) == n
    assert np.all(np.diff(j.keys.astype(np.float64)) >= 0)  # still sorted
    assert j.pending() == n

    order = rng.permutation(n)
    y = (rng.random(n) < 0.5).astype(np.float64)
    pairs, counts = j.add_labels(id_keys([ids[i] for i in order]), y[order], ts[order] + 2.5)

    assert counts.joined == n and counts.duplicate_labels == 0 and not j.early
    back = np.argsort(pairs.ts)  # ts[i] == i identifies the prediction
    np.testing.assert_array_equal(pairs.ts[back], ts)
    np.testing.assert_array_equal(pairs.proba[back, 0], scores)
    np.testing.assert_array_equal(pairs.y_pred[back], scores >= 0.5)
    np.testing.assert_array_equal(pairs.y_true[back], y)
    np.testing.assert_array_equal(pairs.delay, np.full(n, 2.5))
    assert j.pending() == 0


# --- checkpoint ----------------------------------------------------------------------------


@pytest.mark.parametrize("width", [0, 1, 3])
def test_state_round_trips_through_a_checkpoint_file(width: int, tmp_path: Path) -> None:
    j = make_join(ttl=1000.0, label_wait=50.0, width=width)
    proba = [[0.1 * (c + 1) + 0.01 * i for c in range(width)] for i in range(4)]
    predict(j, ["a", "b", "c", "d"], [1.0, 2.0, 3.0, 4.0], pred=[0, 1, 2, 1], proba=proba)
    j.expire(now=4.0)
    predict(j, ["e"], [5.0], proba=[[0.5] * width])  # in the buffer: flushed into the state
    label(j, ["b", "early"], [1, 2], [6.0, 7.0])

    arrays: dict[str, npt.NDArray[Any]] = {}
    meta = j.to_state(arrays, "m.join")
    write_checkpoint(tmp_path / "ckpt", {"join": meta}, arrays)
    saved = read_checkpoint(tmp_path / "ckpt")
    restored = make_join(ttl=1000.0, label_wait=50.0, width=width)
    restored.load_state(saved.meta["join"], saved.arrays, "m.join")

    again: dict[str, npt.NDArray[Any]] = {}
    assert restored.to_state(again, "m.join") == meta
    assert again.keys() == arrays.keys()
    for name, column in arrays.items():
        np.testing.assert_array_equal(again[name], column, err_msg=name)
        assert again[name].dtype == column.dtype and again[name].shape == column.shape
    assert restored.pending() == j.pending() == 4
    for target in (j, restored):
        pairs, counts = label(target, ["a", "b", "e"], [0, 0, 0], [9.0, 9.0, 9.0])
        assert counts == JoinCounts(joined=2, duplicate_labels=1)
        assert tuples(pairs) == [
            (1.0, 0.0, tuple(np.float32(v).item() for v in proba[0]), 0.0, 8.0),
            (5.0, 1.0, (0.5,) * width, 0.0, 4.0),
        ]
        _, pairs, _ = predict(target, ["early"], [6.5], pred=[2], proba=[[0.3] * width])
        assert tuples(pairs) == [(6.5, 2.0, (np.float32(0.3).item(),) * width, 2.0, 0.5)]


# --- properties ----------------------------------------------------------------------------

T0 = 1_800_000_000.0
SPAN = 500.0  # all predictions fall within one window and well within the TTL


@dataclass(frozen=True)
class Case:
    """Predictions and labels of one scenario; every copy of an id is identical."""

    pred_ts: dict[str, float]
    pred_y: dict[str, int]
    score: dict[str, float]
    label_y: dict[str, int]
    label_ts: dict[str, float]
    orphans: tuple[str, ...]
    events: tuple[tuple[str, str], ...]  # ("p" | "l", id), copies included

    def expected_pairs(self) -> list[PairTuple]:
        return sorted(
            (
                self.pred_ts[i],
                float(self.pred_y[i]),
                (self.score[i],),
                float(self.label_y[i]),
                self.label_ts[i] - self.pred_ts[i],
            )
            for i in self.label_y
            if i in self.pred_ts
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 25))
    ids = [f"id{i}" for i in range(n)]
    f32 = st.floats(0, 1).map(lambda v: np.float32(v).item())  # scores as the join stores them
    pred_ts = {i: T0 + draw(st.floats(0, SPAN)) for i in ids}
    pred_y = {i: draw(st.integers(0, 1)) for i in ids}
    score = {i: draw(f32) for i in ids}
    labelled = [i for i in ids if draw(st.booleans())]
    label_y = {i: draw(st.integers(0, 1)) for i in labelled}
    label_ts = {i: pred_ts[i] + draw(st.floats(0, 100)) for i in labelled}
    orphans = tuple(f"orphan{k}" for k in range(draw(st.integers(0, 3))))
    for o in orphans:
        label_y[o], label_ts[o] = draw(st.integers(0, 1)), T0 + draw(st.floats(0, SPAN))
    events = [("p", i) for i in ids for _ in range(draw(st.integers(1, 3)))]
    events += [("l", i) for i in labelled for _ in range(draw(st.integers(1, 3)))]
    events += [("l", o) for o in orphans]
    return Case(pred_ts, pred_y, score, label_y, label_ts, orphans, tuple(events))


def perf_settings(**extra: Any) -> ModelSettings:
    return ModelSettings(
        name="m",
        reference=Path("unused.json"),
        features={"x": "numeric"},
        windows=[
            WindowSpec(name="1h", length=3600, pane=60),
            WindowSpec(name="20m", length=1200, pane=7.5),
        ],
        label_ttl=7200.0,
        label_wait=7200.0,  # > SPAN + delays: nothing becomes an orphan by waiting
        **extra,
    )


@dataclass
class Run:
    pairs: list[PairTuple]
    counts: JoinCounts
    pending: int
    early: int
    totals: dict[str, ClassificationAccumulator]


def replay(case: Case, order: list[int], cuts: list[int], expire_at: set[int]) -> Run:
    """Feed the events in ``order``, cut into batches, through a LabelJoin and a
    PerformanceState side by side; ``expire_at``: batch numbers after which maintenance runs."""
    cfg = perf_settings()
    j = make_join(ttl=cfg.label_ttl, label_wait=cfg.label_wait)
    perf = PerformanceState(cfg)
    events = [case.events[k] for k in order]
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    pairs: list[PairTuple] = []
    total = JoinCounts()
    newest = -math.inf
    for b, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        batch = events[lo:hi]
        pids = [i for kind, i in batch if kind == "p"]
        lids = [i for kind, i in batch if kind == "l"]
        # Predictions first, as the pipeline applies a polled batch.
        if pids:
            ts = np.array([case.pred_ts[i] for i in pids])
            newest = max(newest, float(ts.max()))
            _, p, c = predict(
                j,
                pids,
                ts.tolist(),
                pred=[float(case.pred_y[i]) for i in pids],
                proba=[[case.score[i]] for i in pids],
            )
            pairs += tuples(p)
            total.add(c)
            preds = [
                Prediction(i, "m", None, case.pred_ts[i], {}, case.pred_y[i], case.score[i])
                for i in pids
            ]
            keys, fresh = perf.unseen([q.id for q in preds])
            kept = PredictionBatch.of("m", preds).take(fresh)
            perf.add_predictions(perf.encode(kept), keys[fresh], ts[fresh], newest)
        if lids:
            p, c = label(j, lids, [case.label_y[i] for i in lids], [case.label_ts[i] for i in lids])
            pairs += tuples(p)
            total.add(c)
            perf.add_labels([Label(i, "m", case.label_y[i], case.label_ts[i]) for i in lids])
        if b in expire_at and newest > -math.inf:
            total.add(j.expire(newest))
            perf.expire(newest)
    totals = {name: ring.total for name, ring in perf.rings.items()}
    return Run(sorted(pairs), total, j.pending(), len(j.early), totals)


def direct_accumulator(case: Case) -> ClassificationAccumulator:
    """The accumulator computed straight from the distinct predictions and the joined pairs."""
    acc = ClassificationAccumulator(2)
    ids = sorted(case.pred_ts)
    acc.add_predictions([case.pred_y[i] for i in ids], [case.score[i] for i in ids])
    joined = [i for i in ids if i in case.label_y]
    acc.add(
        [case.label_y[i] for i in joined],
        [case.pred_y[i] for i in joined],
        [case.score[i] for i in joined],
    )
    return acc


def assert_same_accumulator(
    got: ClassificationAccumulator, want: ClassificationAccumulator
) -> None:
    """Counts exactly; float sums up to summation order (float addition is not associative)."""
    for key, value in want.to_state().items():
        a, b = np.asarray(got.to_state()[key]), np.asarray(value)
        if b.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=key)
        else:
            np.testing.assert_array_equal(a, b, err_msg=key)


@settings(max_examples=150, deadline=None)
@given(case=cases(), data=st.data(), buffer=st.sampled_from([1, 2, 5, 32_768]))
def test_any_interleaving_gives_the_same_pairs_counts_and_accumulators(
    case: Case, data: st.DataObject, buffer: int
) -> None:
    order = data.draw(st.permutations(range(len(case.events))), label="order")
    cuts = data.draw(st.lists(st.integers(0, 200), max_size=8), label="cuts")
    expire_at = set(data.draw(st.lists(st.integers(0, 8), max_size=4), label="expire"))
    with mock.patch.object(join_module, "_BUFFER", buffer):  # merges at any point
        run = replay(case, order, cuts, expire_at)

    assert run.pairs == case.expected_pairs()
    labelled = {i for i in case.label_y if i in case.pred_ts}
    copies = Counter(case.events)
    assert run.counts == JoinCounts(
        joined=len(labelled),
        duplicate_predictions=sum(c - 1 for (k, _), c in copies.items() if k == "p"),
        duplicate_labels=sum(c - 1 for (k, _), c in copies.items() if k == "l"),
    )
    assert run.pending == len(case.pred_ts) - len(labelled)
    assert run.early == len(case.orphans)  # still waiting (label_wait is long)
    want = direct_accumulator(case)
    for name, acc in run.totals.items():
        assert_same_accumulator(acc, want)
        assert acc.labels == len(labelled), name


@settings(max_examples=60, deadline=None)
@given(case=cases(), data=st.data())
def test_identical_duplicates_never_change_the_metrics(case: Case, data: st.DataObject) -> None:
    once = tuple(dict.fromkeys(case.events))  # each event exactly once, same relative order
    order = data.draw(st.permutations(range(len(once))), label="order")
    single = replay(Case(**{**case.__dict__, "events": once}), list(order), [], set())
    many = replay(case, list(range(len(case.events))), [], set())
    assert single.pairs == many.pairs
    for name in single.totals:
        assert_same_accumulator(many.totals[name], single.totals[name])
    assert single.counts.duplicate_predictions == single.counts.duplicate_labels == 0
