"""Group mode's merge (issue 15): per-partition shards add up to the one-process state.

The oracle is one :class:`ModelState` fed the same events, partition by partition (each
partition's events in its own arrival order, its labels with it), as one process reading all
partitions would be. The shards are one state per partition fed the same per-partition
sequences; :func:`merge_states` of them must hold the same windows: bin counts exactly,
accumulator counts exactly and their float sums to 1e-9, the same unseen values, event times
and versions.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.events import Label, Prediction
from monitor.state.merge import merge_states
from monitor.state.model_state import ModelState
from tests.support.shards import CFG, LATENESS, REF, T0, label_of, stream

Step = tuple[str, list[Any]]  # ("p", predictions) or ("l", labels)


def partition_steps(
    preds: list[Prediction], labelled: set[str], seed: int, rng: np.random.Generator
) -> list[Step]:
    """One partition's arrival order: its events sorted by time plus a jitter below the
    lateness (so out of order, never late), in batches; each labelled prediction's label comes
    in a later batch, or (one in five) before its prediction."""
    jitter = rng.uniform(0.0, LATENESS * 0.99, len(preds))
    order = sorted(range(len(preds)), key=lambda i: preds[i].timestamp + jitter[i])
    arrived = [preds[i] for i in order]
    steps: list[Step] = []
    waiting: list[Label] = []
    i = 0
    while i < len(arrived):
        size = int(rng.integers(1, 12))
        batch = arrived[i : i + size]
        early = [label_of(p, seed) for p in batch if p.id in labelled and rng.uniform() < 0.2]
        if early:
            steps.append(("l", early))
        steps.append(("p", batch))
        early_ids = {lab.id for lab in early}
        waiting += [label_of(p, seed) for p in batch if p.id in labelled and p.id not in early_ids]
        if waiting and rng.uniform() < 0.5:
            cut = int(rng.integers(1, len(waiting) + 1))
            steps.append(("l", waiting[:cut]))
            waiting = waiting[cut:]
        i += size
    if waiting:
        steps.append(("l", waiting))
    return steps


def feed(state: ModelState, partition: int, steps: list[Step]) -> int:
    """Apply one partition's steps; returns how many predictions were late."""
    late = 0
    for kind, events in steps:
        if kind == "p":
            late += state.add_predictions(events, partition, arrived_at=0.0).late
        else:
            state.add_labels(events)
    return late


def close(a: Any, b: Any, where: str = "") -> None:
    """Equal: numbers of integer type exactly, floats to 1e-9 (NaN equals NaN), recursively."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, float) and isinstance(b, float), (where, a, b)
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(
            a, b, rel_tol=1e-9, abs_tol=1e-9
        ), (where, a, b)
    else:
        assert a == b, (where, a, b)


def assert_same_state(got: ModelState, want: ModelState) -> None:
    for vg, vw in zip(got.views(), want.views(), strict=True):
        assert (vg.name, vg.start, vg.end) == (vw.name, vw.start, vw.end)
        assert vg.total.tolist() == vw.total.tolist(), vg.name
        assert vg.unseen == vw.unseen, vg.name
    for name, ring in want.perf.rings.items():
        assert got.perf.rings[name].head == ring.head
        close(asdict(got.perf.snapshot(name)), asdict(want.perf.snapshot(name)), name)
        close(got.perf.rings[name].total.to_state(), ring.total.to_state(), name)
    assert got.clocks.newest == want.clocks.newest
    assert got.newest_seen == want.newest_seen and got.watermark() == want.watermark()
    assert dict(got.versions.to_state()) == dict(want.versions.to_state())
    assert set(got.versions.present()) == set(want.versions.present())


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 160),
    k=st.integers(1, 6),
    span=st.sampled_from([200.0, 1500.0, 5400.0]),  # within 5m, past it, past 1h too
    label_share=st.floats(0.0, 1.0),
    reverse=st.booleans(),
)
def test_shards_of_any_partitioning_merge_into_the_one_process_state(
    seed: int, n: int, k: int, span: float, label_share: float, reverse: bool
) -> None:
    rng = np.random.default_rng(seed)
    preds = stream(seed, n, span)
    labelled = {p.id for p in preds if rng.uniform() < label_share}
    assignment = rng.integers(0, k, n)
    steps = {
        part: partition_steps(
            [p for p, a in zip(preds, assignment.tolist(), strict=True) if a == part],
            labelled,
            seed,
            rng,
        )
        for part in range(k)
    }
    oracle = ModelState(CFG, REF)
    shards = {part: ModelState(CFG, REF) for part in range(k)}
    for part in range(k):
        assert feed(oracle, part, steps[part]) == 0
        assert feed(shards[part], part, steps[part]) == 0
    order = sorted(shards, reverse=reverse)  # the merge does not depend on the shards' order
    merged = merge_states(CFG, REF, [shards[p] for p in order])
    assert_same_state(merged, oracle)
    # Sanity: the oracle holds what it should (the property is not vacuous).
    hour = next(v for v in oracle.views() if v.name == "1h")
    start = hour.start
    assert hour.total[: oracle.slots[0].stop].sum() == sum(p.timestamp >= start for p in preds)


def test_merging_one_shard_gives_a_copy_and_merging_none_an_empty_state() -> None:
    preds = stream(3, 80, 900.0)
    one = ModelState(CFG, REF)
    one.add_predictions(preds, 4, arrived_at=0.0)
    one.add_labels([label_of(p, 3) for p in preds[::2]])
    assert_same_state(merge_states(CFG, REF, [one]), one)
    empty = merge_states(CFG, REF, [])
    assert all(v.total.sum() == 0 and math.isnan(v.start) for v in empty.views())
    assert empty.clocks.newest == {}


def test_merging_does_not_change_the_shards() -> None:
    preds = stream(5, 60, 900.0)
    a, b = ModelState(CFG, REF), ModelState(CFG, REF)
    a.add_predictions(preds[:30], 0)
    b.add_predictions(preds[30:], 1)
    before = [v.total.tolist() for v in a.views()], [v.total.tolist() for v in b.views()]
    merge_states(CFG, REF, [a, b])
    merge_states(CFG, REF, [a, b])
    assert ([v.total.tolist() for v in a.views()], [v.total.tolist() for v in b.views()]) == before


def _at(t: float, i: int, country: str = "XA") -> Prediction:
    return Prediction(f"p{i}", "m", "v1", t, {"country": country, "amount": 0.1}, 1, 0.8)


def test_a_slow_partitions_pane_that_the_fast_one_pushed_out_stays_out() -> None:
    # The fast partition is 20 minutes ahead: the slow one's events lie before the 5m window's
    # start (the 1h window still holds them). Whatever the order of the shards, the 5m window,
    # its accumulators and its unseen values hold the fast partition's events only.
    fast, slow = ModelState(CFG, REF), ModelState(CFG, REF)
    fast.add_predictions([_at(T0 + 1200.5 + i, i, "XA") for i in range(5)], 0)
    slow.add_predictions([_at(T0 + 10.25 + i, 100 + i, "XB") for i in range(3)], 1)
    slow.add_labels([Label(f"p{100 + i}", "m", 1, T0 + 20.0 + i) for i in range(3)])
    for shards in ([fast, slow], [slow, fast]):
        merged = merge_states(CFG, REF, shards)
        views = {v.name: v for v in merged.views()}
        stop = merged.slots[0].stop  # the prediction's cells: one count per event
        assert views["5m"].total[:stop].sum() == 5
        assert views["5m"].unseen["country"] == ([("XA", 5)], 0)
        assert merged.perf.snapshot("5m").predictions == 5
        assert merged.perf.snapshot("5m").labels == 0
        assert views["1h"].total[:stop].sum() == 8
        assert dict(views["1h"].unseen["country"][0]) == {"XA": 5, "XB": 3}
        assert merged.perf.snapshot("1h").labels == 3
        # The slow pane is not in the 5m ring at all, not merely cancelled out of its total.
        ring = merged.windows["5m"]
        live = ring.pane_ids[ring.pane_ids != np.iinfo(np.int64).min]
        assert (live > ring.head - ring.n_panes).all()
        assert all(p > ring.head - ring.n_panes for p in merged.unseen["5m"].panes)


def test_a_rollout_seen_in_every_partition_gives_the_one_process_version() -> None:
    # v1 until T0 + 600, v2 after, spread over three partitions: the merged state's current
    # version is v2, as one process reading them would say, and both versions stay present.
    oracle = ModelState(CFG, REF)
    shards = [ModelState(CFG, REF) for _ in range(3)]
    for i in range(90):
        t = T0 + 10.0 * i + 0.5
        p = _at(t, i, "DE")._replace(version="v1" if t < T0 + 600 else "v2")
        oracle.add_predictions([p], i % 3)
        shards[i % 3].add_predictions([p], i % 3)
    merged = merge_states(CFG, REF, shards)
    assert merged.version == oracle.version == "v2"
    assert merged.versions.present() == oracle.versions.present() == ("v1", "v2")
