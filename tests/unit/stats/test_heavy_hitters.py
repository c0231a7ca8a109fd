"""The Misra-Gries summary against exact counts: Zipf data, merges, the error bound."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats.heavy_hitters import MisraGries


def within_bound(sketch: MisraGries, exact: Counter[str]) -> None:
    """Every item: estimate <= true <= estimate + error; error <= n / (k + 1)."""
    n = sum(exact.values())
    assert sketch.total == n
    assert 0 <= sketch.error <= n // (sketch.capacity + 1)
    assert len(sketch.counters) <= sketch.capacity
    for item, true in exact.items():
        estimate = sketch.counters.get(item, 0)
        assert estimate <= true <= estimate + sketch.error, item
    assert set(sketch.counters) <= set(exact)


def test_zipf_top_ten_against_an_exact_counter() -> None:
    rng = np.random.default_rng(0)
    items = [f"cat{v}" for v in rng.zipf(2.0, 50_000).tolist()]
    exact = Counter(items)
    sketch = MisraGries(64)
    for start in range(0, len(items), 500):  # batches, as the daemon adds them
        sketch.add(items[start : start + 500])
    within_bound(sketch, exact)
    true_top = exact.most_common(11)
    # The 10th and 11th true counts are further apart than the error: the top 10 is determined.
    assert true_top[9][1] - true_top[10][1] > sketch.error
    assert {v for v, _ in sketch.top(10)} == {v for v, _ in true_top[:10]}
    for value, count in sketch.top(10):
        assert exact[value] - sketch.error <= count <= exact[value]


def test_split_into_merged_pane_summaries_keeps_the_bound() -> None:
    rng = np.random.default_rng(1)
    items = [f"v{v}" for v in rng.zipf(1.5, 20_000).tolist()]
    panes = [MisraGries(16) for _ in range(40)]
    for i, pane in enumerate(panes):
        pane.add(items[i * 500 : (i + 1) * 500])
    merged = MisraGries(16)
    for pane in panes:
        merged.merge(pane)
    within_bound(merged, Counter(items))
    assert merged.top(1)[0][0] == Counter(items).most_common(1)[0][0]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6),
    st.lists(st.lists(st.sampled_from("abcdefghij"), max_size=40), min_size=1, max_size=6),
)
def test_any_merge_of_summaries_is_within_the_bound(capacity: int, parts: list[list[str]]) -> None:
    sketches = []
    for part in parts:
        s = MisraGries(capacity)
        s.add(part)
        sketches.append(s)
    merged = MisraGries(capacity)
    for s in reversed(sketches):
        merged.merge(s)
    within_bound(merged, Counter(v for part in parts for v in part))


def test_restore_rejects_what_no_summary_holds() -> None:
    assert MisraGries.restore(2, {"a": 3}, 5).top(1) == [("a", 3)]
    with pytest.raises(ValueError, match="capacity"):
        MisraGries.restore(1, {"a": 1, "b": 1}, 5)
    with pytest.raises(ValueError, match="positive"):
        MisraGries.restore(2, {"a": 6}, 5)
    with pytest.raises(ValueError, match="positive"):
        MisraGries.restore(2, {"a": 0}, 5)
    with pytest.raises(ValueError, match="at least 1"):
        MisraGries(0)
