"""Event-time windows: panes merge to the batch result and sliding equals recomputation."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.state.window import PaneRing, accept_on_time

WIDTH = 5
LATENESS = 25.0

events = st.lists(
    st.tuples(st.floats(0, 400, allow_nan=False), st.integers(0, WIDTH - 1)),
    min_size=0,
    max_size=120,
)
splits = st.lists(st.integers(0, 120), max_size=6)


def feed(ring: PaneRing, ts: np.ndarray, bins: np.ndarray, newest: float) -> tuple[float, int]:
    mask, newest = accept_on_time(ts, newest, LATENESS)
    ring.add(ts[mask], bins[mask])
    return newest, int((~mask).sum())


def run_in_batches(evs: list[tuple[float, int]], cuts: list[int]) -> tuple[PaneRing, int]:
    ring = PaneRing(length=60.0, pane=10.0, width=WIDTH)
    ts = np.array([e[0] for e in evs], dtype=np.float64)
    bins = np.array([e[1] for e in evs], dtype=np.int64)
    bounds = sorted({0, len(evs), *(c for c in cuts if c < len(evs))})
    newest, late = float("-inf"), 0
    for a, b in itertools.pairwise(bounds):
        newest, n_late = feed(ring, ts[a:b], bins[a:b], newest)
        late += n_late
    return ring, late


@given(events, splits)
@settings(max_examples=300, deadline=None)
def test_batches_merge_to_the_single_batch_result(
    evs: list[tuple[float, int]], cuts: list[int]
) -> None:
    whole, late_whole = run_in_batches(evs, [])
    split, late_split = run_in_batches(evs, cuts)
    assert late_whole == late_split
    assert whole.total.tolist() == split.total.tolist()
    assert whole.head == split.head


@given(events, splits)
@settings(max_examples=300, deadline=None)
def test_sliding_window_equals_recomputation(evs: list[tuple[float, int]], cuts: list[int]) -> None:
    ring, _ = run_in_batches(evs, cuts)
    # Oracle: one event at a time, the plain definition of lateness and of the window.
    newest = float("-inf")
    accepted = []
    for t, b in evs:
        if t >= newest - LATENESS:
            accepted.append((t, b))
        newest = max(newest, t)
    expected = np.zeros(WIDTH, dtype=np.int64)
    if accepted:
        head = int(np.floor(max(t for t, _ in evs) / 10.0))
        for t, b in accepted:
            if head - 6 < np.floor(t / 10.0) <= head:
                expected[b] += 1
    assert ring.total.tolist() == expected.tolist()
    # The panes always add up to the window total.
    assert ring.slots.sum(axis=0).tolist() == ring.total.tolist()


def test_late_events_are_reported_not_stored() -> None:
    ring = PaneRing(length=60.0, pane=10.0, width=2)
    newest, late = feed(ring, np.array([100.0, 200.0]), np.array([0, 0]), float("-inf"))
    newest, late = feed(ring, np.array([150.0, 190.0]), np.array([1, 1]), newest)
    assert late == 1  # 150 < 200 - 25
    assert ring.total.tolist() == [1, 1]  # 100 slid out; 190 kept


def test_window_bounds_follow_the_head() -> None:
    ring = PaneRing(length=60.0, pane=10.0, width=1)
    assert np.isnan(ring.bounds()[0])
    ring.add(np.array([125.0]), np.array([0]))
    assert ring.bounds() == (70.0, 130.0)


def test_multi_counter_events() -> None:
    ring = PaneRing(length=20.0, pane=10.0, width=4)
    # Two events, each with two counters (feature A's bin, feature B's bin).
    ring.add(np.array([1.0, 2.0]), np.array([0, 2, 1, 3]), per_event=2)
    assert ring.total.tolist() == [1, 1, 1, 1]


def test_memory_does_not_grow_with_traffic() -> None:
    ring = PaneRing(length=60.0, pane=10.0, width=1000)
    before = ring.slots.nbytes + ring.total.nbytes
    rng = np.random.default_rng(0)
    for i in range(50):
        ts = np.sort(rng.uniform(i * 10, i * 10 + 10, 2000))
        ring.add(ts, rng.integers(0, 1000, 2000))
    assert ring.slots.nbytes + ring.total.nbytes == before
    assert ring.total.sum() == 6 * 2000


def test_clamp_pulls_the_head_back_and_drops_only_later_panes() -> None:
    ring = PaneRing(length=30.0, pane=10.0, width=2)
    ring.add(np.array([0.0, 15.0, 25.0]), np.array([0, 1, 1]))
    ring.clamp(1)  # back to pane 1: pane 2 (t=25) is from "the future"
    assert (ring.head, ring.total.tolist(), ring.bounds()) == (1, [1, 1], (-10.0, 20.0))
    ring.add(np.array([12.0]), np.array([0]))  # on time again, counted
    assert ring.total.tolist() == [2, 1]
    ring.clamp(5)  # ahead of the head: nothing to do
    assert (ring.head, ring.total.tolist()) == (1, [2, 1])
