"""Misra-Gries at its boundaries, hand-computed: restore limits and the order of ties."""

from __future__ import annotations

import pytest

from monitor.stats.heavy_hitters import MisraGries


def test_restore_accepts_exactly_the_capacity_and_the_total() -> None:
    full = MisraGries.restore(2, {"a": 1, "b": 4}, 5)  # 2 counters = capacity, sum = total
    assert full.counters == {"a": 1, "b": 4}
    assert full.total == 5
    assert full.error == 0
    with pytest.raises(
        ValueError, match=r"^counters must be positive and sum to at most the total$"
    ):
        MisraGries.restore(2, {"a": 1, "b": 5}, 5)  # sum one past the total
    with pytest.raises(
        ValueError, match=r"^counters must be positive and sum to at most the total$"
    ):
        MisraGries.restore(2, {"a": -1}, 5)


def test_top_breaks_ties_by_item_ascending() -> None:
    s = MisraGries(8)
    s.add(["d", "b", "c", "a", "c", "b", "d", "a", "e"])  # a,b,c,d twice, e once
    assert s.top(5) == [("a", 2), ("b", 2), ("c", 2), ("d", 2), ("e", 1)]
    assert s.top(2) == [("a", 2), ("b", 2)]
