"""Window checkpoints: every malformed part is refused with its own message, exact pane
geometry (the oldest pane, the head, the slot), and the accumulator ring's clamp."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from monitor.state.window import AccumulatorRing, PaneRing
from monitor.stats.accumulators import RegressionAccumulator

EMPTY = np.iinfo(np.int64).min


def ring_arrays(pane_ids: list[int], slots: list[list[int]] | None = None) -> dict[str, Any]:
    return {
        "w.slots": np.array(slots or [[1, 0], [0, 2], [3, 0]], dtype=np.int32),
        "w.pane_ids": np.array(pane_ids, dtype=np.int64),
    }


def test_pane_ring_round_trips_and_derives_its_total() -> None:
    ring = PaneRing(length=30.0, pane=10.0, width=2)
    ring.load_state({"head": 5, "width": 2, "n_panes": 3}, ring_arrays([3, 4, 5]), "w")
    assert (ring.head, ring.total.tolist(), ring.bounds()) == (5, [4, 2], (30.0, 60.0))
    assert ring.total.dtype == np.int64
    empty = PaneRing(length=30.0, pane=10.0, width=2)
    arrays: dict[str, Any] = {}
    meta = empty.to_state(arrays, "w")
    ring.load_state(meta, arrays, "w")  # a ring that never saw an event restores as one
    assert (ring.head, ring.total.tolist()) == (None, [0, 0])


@pytest.mark.parametrize(
    ("meta", "pane_ids", "message"),
    [
        ([], [3, 4, 5], "w window must be a JSON object"),
        (
            {"head": 5, "width": 3, "n_panes": 3},
            [3, 4, 5],
            "window shape differs from the checkpoint (config changed)",
        ),
        ({"head": "5", "width": 2, "n_panes": 3}, [3, 4, 5], "w.head must be an integer"),
        (
            {"head": None, "width": 2, "n_panes": 3},
            [3, 4, 5],
            "checkpoint w: pane ids do not fit a window ending at None",
        ),
        # pane 2 = head - n_panes has just slid out; each slot holds its own id
        (
            {"head": 5, "width": 2, "n_panes": 3},
            [3, 4, 2],
            "checkpoint w: pane ids do not fit a window ending at 5",
        ),
        (
            {"head": 4, "width": 2, "n_panes": 3},
            [3, 4, 5],
            "checkpoint w: pane ids do not fit a window ending at 4",
        ),  # pane 5 is after the head
        (
            {"head": 5, "width": 2, "n_panes": 3},
            [4, 3, 5],
            "checkpoint w: pane ids do not fit a window ending at 5",
        ),  # in the window, but in each other's slots
    ],
)
def test_pane_ring_refuses_what_no_ring_holds(meta: Any, pane_ids: list[int], message: str) -> None:
    ring = PaneRing(length=30.0, pane=10.0, width=2)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ring.load_state(meta, ring_arrays(pane_ids), "w")
    assert ring.head is None  # nothing applied


def test_pane_ring_refuses_negative_counts() -> None:
    ring = PaneRing(length=30.0, pane=10.0, width=2)
    arrays = ring_arrays([3, 4, 5], [[1, 0], [0, -2], [3, 0]])
    with pytest.raises(ValueError, match=r"^checkpoint array w\.slots holds negative counts$"):
        ring.load_state({"head": 5, "width": 2, "n_panes": 3}, arrays, "w")


def test_clamp_leaves_no_counts_behind_in_the_checkpoint() -> None:
    ring = PaneRing(length=30.0, pane=10.0, width=2)
    ring.add(np.array([0.0, 15.0, 25.0]), np.array([0, 1, 1]))
    ring.clamp(1)
    arrays: dict[str, Any] = {}
    meta = ring.to_state(arrays, "w")
    assert arrays["w.slots"].tolist() == [[1, 0], [0, 1], [0, 0]]
    restored = PaneRing(length=30.0, pane=10.0, width=2)
    restored.load_state(meta, arrays, "w")
    assert restored.total.tolist() == ring.total.tolist() == [1, 1]


# --- the accumulator ring -------------------------------------------------------------------


def reg(n: int) -> RegressionAccumulator:
    acc = RegressionAccumulator()
    acc.add([1.0] * n, [2.0] * n)
    return acc


def reg_ring() -> AccumulatorRing[RegressionAccumulator]:
    return AccumulatorRing(30.0, 10.0, RegressionAccumulator)


def fill_ring() -> AccumulatorRing[RegressionAccumulator]:
    ring = reg_ring()
    ring.advance(2)
    ts = np.array([0.0, 15.0, 16.0, 25.0, 26.0, 27.0])
    ring.add(ts, lambda acc, mask: acc.add(np.ones(int(mask.sum())), np.zeros(int(mask.sum()))))
    return ring


def test_accumulator_ring_clamp_drops_only_later_panes() -> None:
    ring = fill_ring()
    assert (ring.head, ring.total.n) == (2, 6)
    ring.clamp(2)  # at the head: nothing to do
    ring.clamp(7)
    assert (ring.head, ring.total.n) == (2, 6)
    ring.clamp(1)  # pane 2 (3 rows) is from "the future"
    assert ring.head == 1
    assert ring.total.n == 3
    assert ring.pane_ids.tolist() == [0, 1, EMPTY]
    assert [s.n for s in ring.slots] == [1, 2, 0]
    restored = reg_ring()
    restored.load_state(ring.to_state(), RegressionAccumulator.from_state)
    assert (restored.head, restored.total.n, restored.pane_ids.tolist()) == (1, 3, [0, 1, EMPTY])
    fresh = reg_ring()
    fresh.clamp(0)  # never fed: nothing to pull back
    assert fresh.head is None


def test_accumulator_ring_round_trips_a_never_fed_ring() -> None:
    ring = reg_ring()
    ring.load_state(reg_ring().to_state(), RegressionAccumulator.from_state)
    assert (ring.head, ring.total.n) == (None, 0)
    assert ring.pane_ids.dtype == np.int64


def pane(pane_id: object, n: int = 1) -> list[Any]:
    return [pane_id, reg(n).to_state()]


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ([], "accumulator window must be a JSON object"),
        ({"head": 1.5, "panes": []}, "accumulator window head must be an integer"),
        ({"head": 2, "panes": {}}, "accumulator panes must be a JSON array"),
        (
            {"head": 2, "panes": [pane(0), pane(1), pane(2), pane(3)]},
            "accumulator panes has 4 items, more than 3",
        ),
        ({"head": 2, "panes": ["x"]}, "accumulator pane must be a JSON array"),
        ({"head": 2, "panes": [[*pane(1), 0]]}, "accumulator pane has 3 items, more than 2"),
        ({"head": 2, "panes": [pane("1")]}, "accumulator pane id must be an integer"),
        (
            {"head": 2, "panes": [pane(1), pane(4)]},
            "checkpoint holds two accumulator panes for slot 1",
        ),
        (
            {"head": 5, "panes": [pane(1)]},
            "checkpoint accumulator window: pane ids do not fit a window ending at 5",
        ),
    ],
)
def test_accumulator_ring_refuses_what_no_ring_holds(meta: Any, message: str) -> None:
    ring = reg_ring()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ring.load_state(meta, RegressionAccumulator.from_state)
    assert ring.head is None


def test_accumulator_ring_before_its_first_pane_and_with_no_rows() -> None:
    ring = reg_ring()
    ring.advance(None)  # no prediction time yet: nothing moves
    outside = ring.add(np.array([5.0, 6.0]), lambda acc, mask: None)
    assert (outside.tolist(), outside.dtype) == ([True, True], np.dtype(bool))
    ring.advance(2)
    ring.advance(None)
    assert ring.head == 2
    none = ring.add(np.zeros(0), lambda acc, mask: None)
    assert (none.shape, none.dtype) == ((0,), np.dtype(bool))


def test_accumulator_ring_merge_takes_a_ring_that_is_ahead_and_keeps_the_window() -> None:
    """Merge another partition's ring: one further ahead (pane 4; this one's head is 2) moves
    this window on; a pane both hold adds up; a pane only the other holds is this ring's now,
    so it slides out with the rest."""
    ring = fill_ring()  # panes 0, 1, 2: 1, 2, 3 rows
    other = reg_ring()
    other.advance(4)
    one = lambda acc, mask: acc.add(np.ones(int(mask.sum())), np.zeros(int(mask.sum())))  # noqa: E731
    other.add(np.array([21.0, 22.0, 31.0, 41.0, 42.0, 43.0, 44.0]), one)  # panes 2, 3, 4
    ring.merge_from(other)
    assert ring.head == 4
    assert sorted(zip(ring.pane_ids.tolist(), (s.n for s in ring.slots), strict=True)) == [
        (2, 5),
        (3, 1),
        (4, 4),
    ]
    assert ring.total.n == 10  # panes 0 and 1 slid out
    ring.advance(7)  # everything slides out: nothing may linger in the total
    assert ring.total.n == 0 and ring.pane_ids.tolist() == [EMPTY] * 3
