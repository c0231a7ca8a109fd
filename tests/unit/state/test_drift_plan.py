"""The drift plan: every feature at once equals each feature alone, and scipy on each.

A plan evaluates all of a model's features as padded 2-D tables; the oracle takes each slot's
cells alone, folds them by hand (mismatch → missing, below range → bin 0) and computes PSI with
the one-feature function, chi-square with ``scipy.stats.chi2_contingency``, Jensen-Shannon with
``scipy.spatial.distance.jensenshannon``, KS on the cumulative counts by hand and the quality
ratios by counting. Profiles of different widths, coarse maps and kinds are mixed, so a row
reading another row's bins, totals or padding fails.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.special import kolmogorov
from scipy.stats import chi2_contingency

from monitor.reference.bins import CategoricalProfile, NumericProfile, Profile
from monitor.state.drift_plan import DriftPlan
from monitor.state.layout import EXTRA_CELLS, Slot
from monitor.stats.drift import psi


@st.composite
def numeric_profiles(draw: st.DrawFn, n_edges: int | None = None) -> NumericProfile:
    n_edges = draw(st.integers(0, 12)) if n_edges is None else n_edges
    edges = np.cumsum(draw(st.lists(st.floats(0.5, 3.0), min_size=n_edges, max_size=n_edges)))
    steps = draw(st.lists(st.integers(0, 1), min_size=n_edges, max_size=n_edges))
    coarse = np.concatenate(([0], np.cumsum(steps))).astype(np.int64)
    counts = draw(st.lists(st.integers(0, 50), min_size=n_edges + 2, max_size=n_edges + 2))
    return NumericProfile(edges, np.array(counts, np.int64), coarse, 0.01 * n_edges)


@st.composite
def categorical_profiles(draw: st.DrawFn) -> CategoricalProfile:
    k = draw(st.integers(1, 8))
    counts = draw(st.lists(st.integers(0, 50), min_size=k + 2, max_size=k + 2))
    return CategoricalProfile(tuple(f"v{i}" for i in range(k)), np.array(counts, np.int64))


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[Slot], np.ndarray[Any, Any]]:
    """Slots of mixed kinds side by side (gaps between them too), and a count vector; or, as a
    model's layout usually is, numeric slots of one width with no gap (cut out in blocks)."""
    regular = draw(st.booleans())
    if regular:  # one numeric width; a categorical slot or two may split the blocks
        width = draw(st.integers(0, 12))
        kinds = st.one_of(numeric_profiles(width), numeric_profiles(width), categorical_profiles())
    else:
        kinds = st.one_of(numeric_profiles(), categorical_profiles())
    profiles: list[Profile] = draw(st.lists(kinds, min_size=1, max_size=8))
    slots, offset = [], draw(st.integers(0, 3))
    for p in profiles:
        slots.append(Slot(f"f{len(slots)}", p, offset))
        offset += p.n_bins + EXTRA_CELLS + (0 if regular else draw(st.integers(0, 2)))
    # Mostly small counts, some empty slots, an occasional large one.
    cells = draw(
        st.lists(
            st.one_of(st.just(0), st.integers(0, 9), st.integers(0, 10**6)),
            min_size=offset,
            max_size=offset,
        )
    )
    vector = np.array(cells, dtype=np.int64)
    for s in slots:  # a categorical value is never below a range: that cell stays 0
        if isinstance(s.profile, CategoricalProfile):
            vector[s.stop - 1] = 0
    return slots, vector


def folded(slot: Slot, cells: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    n = slot.profile.n_bins
    own = cells[slot.offset : slot.stop]
    counts = own[:n].copy()
    counts[-1] += own[n]  # a mismatched value is missing
    if isinstance(slot.profile, NumericProfile):
        counts[0] += own[n + 1]  # below the range is bin 0
    return counts


def coarse(profile: NumericProfile, counts: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    sums = [int(counts[:-1][profile.coarse == c].sum()) for c in range(profile.n_coarse)]
    return np.array([*sums, counts[-1]])


def chi2_p(ref: np.ndarray[Any, Any], win: np.ndarray[Any, Any]) -> float:
    if ref.sum() == 0 or win.sum() == 0:
        return math.nan
    table = np.array([ref, win])[:, (ref + win) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(chi2_contingency(table, correction=False).pvalue)


def ks(ref: np.ndarray[Any, Any], win: np.ndarray[Any, Any]) -> tuple[float, float]:
    n, m = int(ref.sum()), int(win.sum())
    if n == 0 or m == 0:
        return math.nan, math.nan
    d = float(np.max(np.abs(np.cumsum(win) / m - np.cumsum(ref) / n)))
    return d, float(kolmogorov(math.sqrt(n * m / (n + m)) * d))


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(layouts())
def test_every_feature_at_once_equals_each_alone(case: tuple[list[Slot], Any]) -> None:
    slots, cells = case
    plan = DriftPlan(slots)
    with warnings.catch_warnings():  # an empty slot is NaN ratios, quietly
        warnings.simplefilter("error")
        cols = plan.evaluate(cells)
    assert plan.ks_bounds == tuple(getattr(s.profile, "ks_bound", None) for s in slots)
    assert (cols.count.dtype, cols.numeric.dtype) == (np.int64, np.bool_)
    assert cols.numeric.tolist() == [isinstance(s.profile, NumericProfile) for s in slots]
    for i, slot in enumerate(slots):
        counts, own, n_bins = (
            folded(slot, cells),
            cells[slot.offset : slot.stop],
            slot.profile.n_bins,
        )
        ref = slot.profile.counts
        n = int(own.sum())
        assert cols.count[i] == n == counts.sum()
        assert close(cols.missing[i], own[n_bins - 1] / n if n else math.nan)
        assert close(cols.type_mismatch[i], own[n_bins] / n if n else math.nan)
        if isinstance(slot.profile, NumericProfile):
            ref_c, win_c = coarse(slot.profile, ref), coarse(slot.profile, counts)
            d, p = ks(ref[:-1], counts[:-1])
            assert close(cols.ks_statistic[i], d) and close(cols.ks_pvalue[i], p)
            assert close(cols.pvalue[i], p)
            outside = (own[n_bins - 2] + own[n_bins + 1]) / n if n else math.nan
            assert close(cols.out_of_range[i], outside)
            assert math.isnan(cols.js_distance[i]) and math.isnan(cols.unseen[i])
        else:
            ref_c, win_c = ref, counts
            expected_js = float(jensenshannon(ref, counts, base=2)) if ref.sum() and n else math.nan
            assert close(cols.js_distance[i], expected_js)
            assert close(cols.pvalue[i], chi2_p(ref_c, win_c))
            assert close(cols.unseen[i], own[n_bins - 2] / n if n else math.nan)
            assert math.isnan(cols.ks_statistic[i]) and math.isnan(cols.out_of_range[i])
        assert close(cols.psi[i], psi(ref_c, win_c))
        assert close(cols.chi2_pvalue[i], chi2_p(ref_c, win_c))


@settings(max_examples=200, deadline=None)
@given(layouts())
def test_slots_cut_out_in_blocks_read_as_gathered_ones(case: tuple[list[Slot], Any]) -> None:
    slots, cells = case
    plan, gathered = DriftPlan(slots), DriftPlan(slots)
    for kind in gathered._kinds:
        kind.blocks = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty slots: NaN ratios
        a, b = plan.evaluate(cells), gathered.evaluate(cells)
    for name in a.__dataclass_fields__:
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


def test_a_models_usual_layout_is_cut_out_in_blocks() -> None:
    numeric = NumericProfile(np.array([1.0, 2.0]), np.array([1, 2, 3, 4]), np.array([0, 0, 1]), 0.1)
    cat = CategoricalProfile(("a", "b"), np.array([3, 4, 0, 1]))
    slots, offset = [], 0
    for p in (numeric, numeric, numeric, cat, numeric):
        slots.append(Slot(f"f{len(slots)}", p, offset))
        offset += p.n_bins + EXTRA_CELLS
    size = numeric.n_bins + EXTRA_CELLS
    assert DriftPlan(slots)._kinds[0].blocks == [(0, 3, size), (slots[4].offset, 1, size)]


def test_a_count_vector_shorter_than_the_slots_is_refused() -> None:
    profile = CategoricalProfile(("a",), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="count vector has 4 cells; slots need 5"):
        DriftPlan([Slot("c", profile, 0)]).evaluate(np.zeros(4, np.int64))


def test_an_empty_plan_evaluates_to_nothing() -> None:
    for size in (0, 3):
        cols = DriftPlan(()).evaluate(np.zeros(size, np.int64))
        assert cols.count.tolist() == [] and cols.pvalue.tolist() == []
