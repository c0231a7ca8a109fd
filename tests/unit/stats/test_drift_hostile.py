"""Drift statistics with hostile values: NaN, ±inf, ±1e300, the float extremes, subnormals, -0.0.

References come from users' training files (``inf``, ``nan``, ``1e400`` parse as floats) and
windows from producers. The path tested is the evaluation's own: a reference built by
``build_numeric_profile``, window values binned by ``cell_column``, statistics by
``feature_drifts`` over a ``DriftPlan``. The promises (DESIGN §3, the numpydoc of
``stats/drift``): nothing raises; NaN (missing) values sit in the missing bin, infinities in
the outer bins; PSI and the chi-square p-value are numbers unless a side is empty, KS unless a
side has no value; and each statistic agrees with an independent computation (scipy's
``ks_2samp`` within the documented bound, ``chi2_contingency``, PSI by hand).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from monitor.reference.build import build_numeric_profile
from monitor.settings import PolicySettings
from monitor.state.drift_plan import DriftPlan
from monitor.state.evaluate import feature_drifts
from monitor.state.layout import Slot, cell_column
from monitor.stats.drift import DEFAULT_PSI_EPS, coarsen

TINY = 5e-324  # the smallest subnormal
HOSTILE = [
    math.nan, math.inf, -math.inf, 1e300, -1e300, sys.float_info.max, -sys.float_info.max,
    TINY, -TINY, sys.float_info.min, 0.0, -0.0, 1.0,
]  # fmt: skip
values = st.lists(
    st.one_of(st.sampled_from(HOSTILE), st.floats(), st.floats(-1e3, 1e3)), max_size=40
)


def sup_distance(a: list[float], b: list[float]) -> float:
    """The two-sample KS statistic by its definition, infinities included (scipy's ks_2samp
    warns and divides by zero on them)."""
    x, y = np.sort(a), np.sort(b)
    at = np.concatenate((x, y))
    fx = np.searchsorted(x, at, side="right") / x.size
    fy = np.searchsorted(y, at, side="right") / y.size
    return float(np.abs(fx - fy).max())


def drift_of(reference: list[float], window: list[float], fine_bins: int) -> tuple:
    profile = build_numeric_profile(np.array(reference, dtype=np.float64), fine_bins=fine_bins)
    slot = Slot("x", profile, 0)
    cells = np.bincount(cell_column(slot, window), minlength=slot.stop)
    plan = DriftPlan((slot,))
    cols = plan.evaluate(cells)
    (drift,) = feature_drifts(plan, cols, PolicySettings(), {})
    return profile, (drift, float(cols.pvalue[0]))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
# The float extremes alone: stepping past them gives ±inf (numpy warns, an error here).
@example(reference=[sys.float_info.max], window=[], fine_bins=1)
@example(reference=[-sys.float_info.max], window=[1.0], fine_bins=1)
@given(reference=values, window=values, fine_bins=st.sampled_from([1, 3, 10, 1000]))
def test_hostile_values_give_the_documented_numbers(
    reference: list[float], window: list[float], fine_bins: int
) -> None:
    profile, (drift, pvalue) = drift_of(reference, window, fine_bins)
    assert drift.count == len(window)
    ref_present = [v for v in reference if not math.isnan(v)]
    win_present = [v for v in window if not math.isnan(v)]
    # Missing values are the missing bin, on both sides.
    assert profile.counts[-1] == len(reference) - len(ref_present)

    ref_c = coarsen(profile.counts, profile.coarse, profile.n_coarse)
    win_c = coarsen(
        np.bincount(profile.bin_index(window), minlength=profile.n_bins).astype(np.int64),
        profile.coarse,
        profile.n_coarse,
    )
    if reference and window:
        # PSI by hand over the coarse bins + missing; chi-square as scipy computes it.
        e = np.maximum(ref_c / ref_c.sum(), DEFAULT_PSI_EPS)
        a = np.maximum(win_c / win_c.sum(), DEFAULT_PSI_EPS)
        assert math.isfinite(drift.psi) and drift.psi >= 0.0
        assert drift.psi == pytest.approx(float(np.sum((a - e) * np.log(a / e))), abs=1e-12)
        table = np.array([ref_c, win_c])[:, (ref_c + win_c) > 0]
        if table.shape[1] > 1:
            want = stats.chi2_contingency(table, correction=False).pvalue
            assert drift.chi2_pvalue == pytest.approx(want, rel=1e-9, abs=1e-12)
        else:
            assert drift.chi2_pvalue == 1.0
    else:
        assert math.isnan(drift.psi) and math.isnan(drift.chi2_pvalue)

    if ref_present and win_present:
        # D_edges <= D <= D_edges + ks_bound against the raw samples, infinities included.
        exact = sup_distance(ref_present, win_present)
        if np.isfinite(ref_present).all() and np.isfinite(win_present).all():
            # Only the statistic is compared; scipy's p-value warns at tiny sizes.
            with np.errstate(all="ignore"):
                scipy_d = stats.ks_2samp(ref_present, win_present, method="asymp").statistic
            assert exact == pytest.approx(scipy_d)
        assert drift.ks_statistic is not None and drift.ks_pvalue is not None
        assert drift.ks_statistic <= exact + 1e-12
        assert exact <= drift.ks_statistic + profile.ks_bound + 1e-12
        assert 0.0 <= drift.ks_pvalue <= 1.0 and pvalue == drift.ks_pvalue
        lowest = -sys.float_info.max  # no float below it but -inf: no room for its own bin
        if len(ref_present) < fine_bins and all(lowest < v < math.inf for v in ref_present):
            # Every value is a point mass with a bin of its own: binned KS is exact.
            assert profile.ks_bound == 0.0
            assert drift.ks_statistic == pytest.approx(exact, abs=1e-12)
    else:
        assert drift.ks_statistic is not None and math.isnan(drift.ks_statistic)
        assert math.isnan(pvalue)


@pytest.mark.parametrize("extreme", [1e300, sys.float_info.max, TINY, -TINY])
def test_a_reference_of_one_extreme_value_bins_it_and_its_neighbours_apart(extreme: float) -> None:
    _, (drift, _) = drift_of([extreme] * 5 + [math.nan], [extreme, -extreme, 0.0], 1000)
    assert math.isfinite(drift.psi) and drift.psi > 0.0
    assert drift.ks_statistic is not None and drift.ks_statistic > 0.0
    assert 0.0 <= drift.chi2_pvalue < 1.0
