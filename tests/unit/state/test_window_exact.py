"""Window geometry by hand: the lateness boundary, empty batches, which panes are inside,
and adding counts to a pane at and past the window's edges."""

from __future__ import annotations

import numpy as np

from monitor.state.window import PaneRing, accept_on_time


def test_an_event_exactly_at_the_watermark_is_on_time() -> None:
    mask, newest = accept_on_time(np.array([100.0, 75.0, 74.999]), 0.0, allowed_lateness=25.0)
    assert (mask.tolist(), newest) == ([True, True, False], 100.0)


def test_an_empty_batch_gives_an_empty_boolean_mask() -> None:
    ts = np.zeros(0)
    mask, newest = accept_on_time(ts, 42.0, allowed_lateness=25.0)
    assert (mask.shape, mask.dtype, newest) == ((0,), np.dtype(bool), 42.0)
    assert ts[mask].size == 0  # usable as an index


def test_panes_and_the_window_they_fall_in() -> None:
    ring = PaneRing(length=30.0, pane=10.0, width=2)
    panes = ring.pane_of(np.array([-0.5, 0.0, 9.99, 10.0, 55.0]))
    assert (panes.tolist(), panes.dtype) == ([-1, 0, 0, 1, 5], np.dtype(np.int64))
    ids = np.array([2, 3, 5, 6])
    before = ring.in_window(ids)
    assert (before.tolist(), before.dtype) == ([False] * 4, np.dtype(bool))
    ring.advance(5)  # the window is panes 3, 4, 5
    assert ring.in_window(ids).tolist() == [False, True, True, False]


def test_add_counts_only_inside_the_window() -> None:
    ring = PaneRing(length=30.0, pane=10.0, width=2)
    counts = np.array([1, 2], dtype=np.int64)
    assert ring.add_counts(0, counts) is False  # no head yet
    ring.advance(5)
    assert ring.add_counts(2, counts) is False  # head - n_panes: just slid out
    assert ring.add_counts(6, counts) is False  # after the head
    assert ring.total.tolist() == [0, 0]
    assert ring.add_counts(3, counts) is True
    assert ring.add_counts(5, counts) is True
    assert (ring.total.tolist(), ring.total.dtype) == ([2, 4], np.dtype(np.int64))
    assert ring.slots.tolist() == [[1, 2], [0, 0], [1, 2]]
