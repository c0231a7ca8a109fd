"""Drift statistics at their edges: one-event sides, empty reference, BH at alpha and at 0,
coarsening's types, trailing empty bins and messages. Oracles: scipy and hand computation."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import chi2_contingency, false_discovery_control

from monitor.stats.drift import (
    DEFAULT_PSI_EPS,
    chi2_rows,
    chi2_two_sample,
    coarsen,
    coarsen_rows,
    js_distance,
    js_rows,
    ks_against,
    ks_binned,
    ks_cumulative,
    ks_rows,
    psi,
    psi_rows,
)
from monitor.stats.fdr import benjamini_hochberg


def test_psi_with_a_single_event_on_a_side() -> None:
    eps = DEFAULT_PSI_EPS
    # shares [1, 0] vs [0, 1], clamped to eps: 2 * (1 - eps) * ln(1 / eps)
    assert psi([1, 0], [0, 1]) == pytest.approx(2 * (1 - eps) * math.log(1 / eps), rel=1e-12)
    assert psi([0, 1], [0, 1]) == 0.0
    assert math.isnan(psi([0, 0], [1, 1]))
    assert math.isnan(psi([1, 1], [0, 0]))


@pytest.mark.parametrize(("ref", "win"), [([3, 1], [0, 1]), ([1, 0, 0], [2, 3, 1])])
def test_chi2_with_a_single_event_on_a_side_matches_scipy(ref: list[int], win: list[int]) -> None:
    stat, p, dof, _ = chi2_contingency([ref, win], correction=False)
    r = chi2_two_sample(ref, win)
    assert (r.statistic, r.pvalue, r.dof) == (pytest.approx(stat), pytest.approx(p), dof)


def test_chi2_with_an_empty_reference_is_undefined() -> None:
    r = chi2_two_sample([0, 0], [1, 2])
    assert math.isnan(r.statistic) and math.isnan(r.pvalue) and r.dof == 0


def test_benjamini_hochberg_rejects_at_exactly_alpha_and_allows_alpha_zero() -> None:
    p = [0.02, 0.5]  # adjusted: 0.04, 0.5
    rejected, adjusted = benjamini_hochberg(p, 0.04)
    np.testing.assert_allclose(adjusted, false_discovery_control(p))
    assert adjusted[0] == 0.04
    assert rejected.tolist() == [True, False]
    rejected, adjusted = benjamini_hochberg([0.0, 0.3], 0.0)
    assert rejected.tolist() == [True, False]
    assert adjusted.tolist() == [0.0, 0.3]  # 0.3 * 2 / 2


def test_benjamini_hochberg_messages() -> None:
    with pytest.raises(ValueError, match=r"^p-values must lie in \[0, 1\]$"):
        benjamini_hochberg([0.5, 1.5], 0.05)
    with pytest.raises(ValueError, match=r"^pvalues must be one-dimensional, got shape \(1, 2\)$"):
        benjamini_hochberg([[0.5, 0.1]], 0.05)
    with pytest.raises(ValueError, match=r"^alpha must be in \[0, 1\], got -0\.1$"):
        benjamini_hochberg([0.5], -0.1)


def test_coarsen_returns_int64_counts_whatever_the_input_types() -> None:
    out = coarsen(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([0, 0, 1, 1], np.uint64), 2)
    assert out.tolist() == [3, 7, 5]
    assert out.dtype == np.int64


def test_coarsen_keeps_trailing_empty_coarse_bins() -> None:
    assert coarsen([1, 2, 3, 4, 9], [0, 0, 1, 1], 4).tolist() == [3, 7, 0, 0, 9]


@pytest.mark.parametrize(
    ("fine", "cmap", "n_coarse", "message"),
    [
        (
            [[1, 2, 3, 4]],
            [0, 0, 1, 1],
            2,
            "fine_counts has 4 bins; expected 4 (values) or 5 (values + missing)",
        ),
        (
            [1, 2],
            [0, 0, 1, 1],
            2,
            "fine_counts has 2 bins; expected 4 (values) or 5 (values + missing)",
        ),
        ([1, 2, 3, 4], [0, 0, 1, 2], 2, "coarse_map refers to bin 2 but n_coarse=2"),
        (
            [1, 2, 3],
            [[0, 0, 1]],
            2,
            "fine_counts has 3 bins; expected 3 (values) or 4 (values + missing)",
        ),
    ],
)
def test_coarsen_messages(fine: list[int], cmap: list[int], n_coarse: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        coarsen(fine, cmap, n_coarse)


def test_ks_with_an_empty_side_reports_the_sizes() -> None:
    for ref, win, sizes in (([], [], (0, 0)), ([0, 0], [1, 2], (0, 3)), ([2, 2], [0, 0], (4, 0))):
        r = ks_binned(ref, win)
        assert math.isnan(r.statistic) and math.isnan(r.pvalue)
        assert (r.n_ref, r.n_win) == sizes
    with pytest.raises(ValueError, match=r"^bin count mismatch: reference \(2,\), window \(1,\)$"):
        ks_binned([1, 2], [1])


def test_js_distance_with_a_single_event_on_a_side() -> None:
    assert js_distance([1, 0], [0, 1]) == 1.0
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); (log2(4/3) + (1/2)log2(2/3) + (1/2)log2(2)) / 2
    by_hand = math.sqrt((math.log2(4 / 3) + 0.5 * math.log2(2 / 3) + 0.5) / 2)
    assert js_distance([1, 0], [1, 1]) == pytest.approx(by_hand, rel=1e-12)
    assert js_distance([1, 1], [1, 0]) == pytest.approx(by_hand, rel=1e-12)


def test_nearly_equal_frequencies_are_at_distance_zero_not_nan() -> None:
    # The two divergences of these counts round to -7.4e-17 in sum: the clamp keeps it a 0.
    ref = [34551989730158, 729925790983514, 176479964981956]
    win = [34551989730158, 729925790983514, 176479964981957]
    assert js_distance(ref, win) == 0.0


@pytest.mark.parametrize(
    ("ref", "win"),
    [([[0, 0, 0]], [[1, 2, 3]]), ([[1, 2, 3]], [[0, 0, 0]]), ([[0, 0]], [[0, 0]])],
)
def test_an_empty_side_is_nan_without_a_warning(ref: list[list[int]], win: list[list[int]]) -> None:
    """Empty windows are routine (a quiet model): no RuntimeWarning per feature and tick."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = [
            psi_rows(ref, win)[0],
            js_rows(ref, win)[0],
            chi2_rows(ref, win)[1][0],
            *(r[0] for r in ks_rows(ref, win)[:2]),
            ks_cumulative(np.cumsum(ref, axis=1), np.cumsum(win, axis=1))[0][0],
        ]
    assert all(math.isnan(x) for x in results), results


def test_coarsen_rows_messages() -> None:
    with pytest.raises(ValueError, match=r"^fine_counts has 2 bins; expected 2 \(values\)"):
        coarsen_rows([[1, 2]], [0, 1], 2)  # a table of counts, one map
    with pytest.raises(ValueError, match=r"^fine_counts has 2 rows, coarse_map 1$"):
        coarsen_rows([[1, 2, 3], [3, 4, 5]], [[0, 1, 1]], 2)


def test_coarsen_rows_of_no_rows_is_an_empty_table() -> None:
    assert coarsen_rows(np.zeros((0, 4)), np.zeros((0, 3), np.intp), 1).shape == (0, 2)


MISMATCH_1_2_VS_1_3 = r"^bin count mismatch: reference \(1, 2\), window \(1, 3\)$"


@pytest.mark.parametrize("rows", [psi_rows, js_rows, chi2_rows, ks_rows])
def test_the_rows_forms_take_tables_only(rows: Callable[..., object]) -> None:
    with pytest.raises(ValueError, match=r"^bin count mismatch: reference \(3,\), window \(3,\)$"):
        rows([1, 2, 3], [1, 2, 3])
    with pytest.raises(
        ValueError, match=r"^bin count mismatch: reference \(1, 2\), window \(1, 3\)$"
    ):
        rows([[1, 2]], [[1, 2, 3]])


def test_ks_against_a_reference_of_another_shape_is_refused() -> None:
    cdf = np.array([[0.5, 1.0]])
    with pytest.raises(
        ValueError, match=r"^bin count mismatch: reference \(1, 2\), window \(1, 3\)$"
    ):
        ks_against(cdf, np.array([2.0]), [[1, 2, 3]])


def test_chi2_with_counts_whose_products_overflow_int64_matches_scipy() -> None:
    # (count x total)**2 is ~1e31 here: in int64 it would wrap; in float64 it is exact enough.
    ref, win = [10**7, 2 * 10**7, 5], [3 * 10**7, 10**7, 9]
    got = chi2_two_sample(ref, win)
    want = chi2_contingency([ref, win], correction=False)
    assert got.statistic == pytest.approx(want.statistic, rel=1e-12)
    assert got.dof == 2


def test_chi2_with_an_empty_window_is_undefined_with_no_degrees_of_freedom() -> None:
    r = chi2_two_sample([3, 4, 5], [0, 0, 0])
    assert math.isnan(r.statistic) and math.isnan(r.pvalue) and r.dof == 0


def test_a_window_shaped_as_the_reference_has_no_ks_gap_at_all() -> None:
    """Shares are divided, not multiplied back: equal shares compare equal, so a window that is
    the reference scaled has D exactly 0 (as ks_2samp on such samples), never 1e-16."""
    rng = np.random.default_rng(7)
    cum_ref = np.cumsum(rng.integers(0, 50, (200, 30)), axis=1)
    cum_ref[:, -1] += 1  # no empty reference
    n_ref = cum_ref[:, -1].astype(np.float64)
    cdf = cum_ref / n_ref[:, None]
    for k in (1, 3, 7, 15, 1000):
        d, p, _, _ = ks_against(cdf, n_ref, cum_ref * k)
        assert d.tolist() == [0.0] * len(d) and p.tolist() == [1.0] * len(p)
