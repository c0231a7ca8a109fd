"""Drift statistics: binned KS against scipy on raw samples, PSI, chi-square, Benjamini-Hochberg."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.special import kolmogorov
from scipy.stats import chi2_contingency, false_discovery_control, ks_2samp

from monitor.reference.bins import NumericProfile
from monitor.reference.build import build_categorical_profile, build_numeric_profile
from monitor.stats.drift import (
    chi2_two_sample,
    coarsen,
    js_distance,
    ks_binned,
    psi,
)
from monitor.stats.fdr import benjamini_hochberg

Floats = npt.NDArray[np.float64]


def window_counts(profile: NumericProfile, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    return np.bincount(profile.bin_index(values), minlength=profile.n_bins)


def binned_ks(
    ref: Floats, win: Floats, fine_bins: int = 1000
) -> tuple[NumericProfile, float, float]:
    """(profile, D_edges, exact D) for raw reference and window samples."""
    profile = build_numeric_profile(ref, fine_bins=fine_bins)
    result = ks_binned(profile.counts[:-1], window_counts(profile, win)[:-1])
    with np.errstate(divide="ignore"):  # only the statistic is used; tiny n trips the p-value
        exact = float(ks_2samp(ref, win, method="asymp").statistic)
    return profile, result.statistic, exact


# --- KS: D_edges <= D_exact <= D_edges + ks_bound ---------------------------------------------

Scenario = Callable[[np.random.Generator], tuple[Floats, Floats]]

SCENARIOS: dict[str, Scenario] = {
    "continuous, same distribution": lambda g: (g.normal(size=20_000), g.normal(size=3_000)),
    "continuous, shifted": lambda g: (g.normal(size=20_000), g.normal(0.3, 1.0, 3_000)),
    "continuous, wider": lambda g: (g.normal(size=20_000), g.normal(0.0, 1.5, 3_000)),
    "window beyond reference range": lambda g: (g.normal(size=5_000), g.uniform(-10, 10, 2_000)),
    "poisson small ints": lambda g: (
        g.poisson(1.5, 20_000).astype(float),
        g.poisson(2.0, 3_000).astype(float),
    ),
    "60% zeros + exponential": lambda g: (
        np.where(g.random(20_000) < 0.6, 0.0, g.exponential(size=20_000)),
        np.where(g.random(3_000) < 0.4, 0.0, g.exponential(1.2, 3_000)),
    ),
    "mixed ints, point mass and continuous": lambda g: (
        np.concatenate(
            [g.normal(size=8_000), np.round(g.normal(0, 3, 8_000)), np.full(4_000, -1.0)]
        ),
        np.concatenate([g.normal(0.2, 1, 1_000), g.uniform(-9, 9, 1_000), np.full(500, -1.0)]),
    ),
    "discrete reference, window between its values": lambda g: (
        g.integers(0, 3_000, 20_000).astype(np.float64),
        (g.integers(0, 3_000, 3_000) + 0.5).astype(np.float64),
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_binned_ks_brackets_exact_ks(name: str) -> None:
    ref, win = SCENARIOS[name](np.random.default_rng(7))
    profile, d_edges, exact = binned_ks(ref, win)
    assert d_edges <= exact + 1e-12
    assert exact - d_edges <= profile.ks_bound + 1e-12
    assert profile.ks_bound <= 2.5 / 1000  # about 1/fine_bins whatever the ties


def test_ks_bound_is_about_one_over_fine_bins_for_continuous_data() -> None:
    ref = np.random.default_rng(1).normal(size=100_000)
    for fine_bins in (100, 1000):
        profile = build_numeric_profile(ref, fine_bins=fine_bins)
        assert 0.9 / fine_bins <= profile.ks_bound <= 1.1 / fine_bins


def test_point_mass_does_not_loosen_ks_bound() -> None:
    g = np.random.default_rng(2)
    ref = np.where(g.random(100_000) < 0.6, 0.0, g.exponential(size=100_000))
    profile = build_numeric_profile(ref, fine_bins=1000)
    # The 60% at zero has a bin of its own, (nextafter(0, -inf), 0], which has no interior.
    assert profile.ks_bound <= 1.1 / 1000
    zero_bin = int(profile.bin_index([0.0])[0])
    assert profile.edges[zero_bin - 1] == np.nextafter(0.0, -np.inf)
    assert profile.counts[zero_bin] == np.count_nonzero(ref == 0.0)


def test_ks_bound_counts_the_mass_at_the_right_edge() -> None:
    # 1000 values twice each: none is a point mass (2/2000 is not > 1/1000), so every value is
    # a right edge with an empty interior below it. A window just below each value has the
    # same binned counts (D_edges = 0) but an exact D of 1/1000: the bound must include the
    # mass sitting at the right edge, not only the mass strictly inside the bin.
    ref = np.repeat(np.arange(1000.0), 2)
    win = np.arange(1000.0) - 0.5
    profile, d_edges, exact = binned_ks(ref, win)
    assert d_edges == pytest.approx(0.0, abs=1e-12)
    assert exact == pytest.approx(0.001)
    assert profile.ks_bound == pytest.approx(0.001)


values_strategy = st.lists(
    st.one_of(
        st.integers(-3, 3).map(float),  # ties and point masses
        st.integers(-14, 14).map(lambda k: k / 4),  # values between and on the integers
        st.floats(-5, 5, allow_nan=False, allow_subnormal=False),
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ref=values_strategy, win=values_strategy, fine_bins=st.sampled_from([1, 2, 5, 20, 1000]))
def test_binned_ks_bound_property(ref: list[float], win: list[float], fine_bins: int) -> None:
    profile, d_edges, exact = binned_ks(np.array(ref), np.array(win), fine_bins)
    assert d_edges <= exact + 1e-12
    assert exact - d_edges <= profile.ks_bound + 1e-12


def kolmogorov_series(x: float) -> float:
    """Q(x) = 2 * sum_{k>=1} (-1)**(k-1) exp(-2 k**2 x**2), the limiting two-sample KS tail."""
    if x <= 0.0:
        return 1.0
    terms = [(-1.0) ** (k - 1) * math.exp(-2.0 * k * k * x * x) for k in range(1, 101)]
    return min(1.0, 2.0 * math.fsum(terms))


@pytest.mark.parametrize(
    ("ref", "win", "d"),
    [
        # cumulative shares .1 .3 .6 1 against .15 .4 .75 1: D = .15, n = m = 100
        ([10, 20, 30, 40], [15, 25, 35, 25], 0.15),
        # .2 .5 1 against .5 .75 1 (n = 50, m = 4): D = .3 at the first edge
        ([10, 15, 25], [2, 1, 1], 0.3),
        # .4 1 against .1 1 (n = 1000, m = 30): D = .3, p about .011
        ([400, 600], [3, 27], 0.3),
    ],
)
def test_ks_pvalue_is_the_kolmogorov_limit_at_the_effective_sample_size(
    ref: list[int], win: list[int], d: float
) -> None:
    result = ks_binned(ref, win)
    n, m = sum(ref), sum(win)
    assert result.statistic == pytest.approx(d, abs=1e-15)
    assert result.pvalue == pytest.approx(kolmogorov_series(math.sqrt(n * m / (n + m)) * d))


def test_ks_pvalue_docstring_example_is_the_series_value() -> None:
    # sqrt(100 * 100 / 200) * .15 = 1.0606601718; Q = 2 (e^-2.25 - e^-9 + e^-20.25 - ...)
    assert ks_binned([10, 20, 30, 40], [15, 25, 35, 25]).pvalue == pytest.approx(
        2 * (math.exp(-2.25) - math.exp(-9.0) + math.exp(-20.25)), rel=1e-9
    )


def test_ks_pvalue_matches_scipy_asymptotic_when_binning_is_exact() -> None:
    g = np.random.default_rng(3)
    # Every value of {0..5} holds > 1/1000 of the reference, so all are point masses with bins
    # of their own: D_edges is the exact D and only the p-value formula can differ.
    ref = np.minimum(g.poisson(1.5, 20_000), 5).astype(float)
    for lam, n_win in [(1.5, 2_000), (1.56, 3_000), (1.6, 1_500)]:
        win = np.minimum(g.poisson(lam, n_win), 5).astype(float)
        profile = build_numeric_profile(ref)
        assert profile.ks_bound == 0.0
        result = ks_binned(profile.counts[:-1], window_counts(profile, win)[:-1])
        expected = ks_2samp(ref, win, method="asymp")
        assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert (result.n_ref, result.n_win) == (20_000, n_win)
        en = 20_000 * n_win / (20_000 + n_win)
        assert result.pvalue == pytest.approx(kolmogorov(math.sqrt(en) * result.statistic))
        # The same limit from its series, written out here rather than the kernel the code calls.
        assert result.pvalue == pytest.approx(kolmogorov_series(math.sqrt(en) * expected.statistic))
        # The limiting distribution is slightly conservative against scipy's finite-n kstwo.
        assert expected.pvalue * (1 - 1e-9) <= result.pvalue <= expected.pvalue * 1.1 + 1e-12


def test_ks_identical_and_empty() -> None:
    same = ks_binned([5, 0, 10, 5], [10, 0, 20, 10])
    assert (same.statistic, same.pvalue) == (0.0, 1.0)
    empty = ks_binned([5, 0, 10, 5], [0, 0, 0, 0])
    assert math.isnan(empty.statistic) and math.isnan(empty.pvalue)
    assert (empty.n_ref, empty.n_win) == (20, 0)
    assert math.isnan(ks_binned([], []).pvalue)


# --- PSI -----------------------------------------------------------------------------------


def test_psi_hand_computed() -> None:
    # e = (.5, .3, .2), a = (.4, .3, .3)
    # (.4 - .5) ln(.4/.5) = -.1 * -0.2231435513 = 0.0223143551
    # (.3 - .3) ln(1)     = 0
    # (.3 - .2) ln(.3/.2) =  .1 *  0.4054651081 = 0.0405465108
    assert psi([50, 30, 20], [40, 30, 30]) == pytest.approx(0.0628608659, abs=1e-10)


def test_psi_clamps_empty_bins_to_eps() -> None:
    # e = (1, 0 -> 1e-4, 0 -> 1e-4), a = (.5, .5, 0 -> 1e-4)
    # (.5 - 1) ln(.5)            = 0.3465735903
    # (.5 - 1e-4) ln(.5 / 1e-4)  = .4999 * 8.5171931914 = 4.2577448764
    # (1e-4 - 1e-4) ln(1)        = 0   (empty on both sides adds nothing)
    assert psi([100, 0, 0], [50, 50, 0]) == pytest.approx(4.6043184667, abs=1e-9)
    # A larger eps caps the empty bin's contribution lower: (.5 - .01) ln(50) = 1.9169...
    assert psi([100, 0, 0], [50, 50, 0], eps=0.01) == pytest.approx(
        0.3465735903 + 0.49 * math.log(50), abs=1e-9
    )


def test_psi_identical_distributions_is_zero_and_empty_side_is_nan() -> None:
    assert psi([5, 3, 2, 0], [50, 30, 20, 0]) == 0.0
    counts = np.random.default_rng(0).integers(0, 1000, 11)
    assert psi(counts, counts * 7) == 0.0
    assert math.isnan(psi([1, 2], [0, 0]))


def test_coarse_bins_hold_about_ten_percent_each_for_continuous_data() -> None:
    profile = build_numeric_profile(np.random.default_rng(4).normal(size=100_000))
    assert profile.n_coarse == 10
    mass = coarsen(profile.counts[:-1], profile.coarse, profile.n_coarse) / 100_000
    np.testing.assert_allclose(mass, 0.1, atol=0.002)


def test_coarsen_sums_fine_bins_and_keeps_the_missing_bin() -> None:
    assert coarsen([1, 2, 3, 4, 9], [0, 0, 1, 2], 3).tolist() == [3, 3, 4, 9]
    assert coarsen([1, 2, 3, 4], [0, 0, 1, 2], 3).tolist() == [3, 3, 4]
    with pytest.raises(ValueError, match="expected 4"):
        coarsen([1, 2, 3], [0, 0, 1, 2], 3)


def test_psi_counts_missing_values_as_drift_but_an_all_present_missing_bin_adds_nothing() -> None:
    g = np.random.default_rng(5)
    ref = g.normal(size=10_000)
    profile = build_numeric_profile(ref)
    win = g.normal(size=2_000)
    ref_c = coarsen(profile.counts, profile.coarse, profile.n_coarse)
    win_c = coarsen(window_counts(profile, win), profile.coarse, profile.n_coarse)
    assert ref_c[-1] == win_c[-1] == 0
    assert psi(ref_c, win_c) == pytest.approx(psi(ref_c[:-1], win_c[:-1]), abs=1e-15)
    win[:200] = np.nan  # 10% of the window goes missing
    win_c = coarsen(window_counts(profile, win), profile.coarse, profile.n_coarse)
    assert win_c[-1] == 200
    assert psi(ref_c, win_c) > 0.5


# --- chi-square ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_chi2_matches_scipy_contingency(seed: int) -> None:
    g = np.random.default_rng(seed)
    k = int(g.integers(2, 40))
    ref = g.integers(0, 500, k) * (g.random(k) < 0.8)
    win = g.integers(0, 50, k) * (g.random(k) < 0.8)
    ref[0] = win[0] = 0  # a column empty on both sides is dropped
    ref[1], win[1] = 10, 5  # at least two occupied columns
    result = chi2_two_sample(ref, win)
    table = np.vstack([ref, win])[:, (ref + win) > 0]
    stat, pvalue, dof, _ = chi2_contingency(table, correction=False)
    assert result.dof == dof
    assert result.statistic == pytest.approx(stat, rel=1e-9)
    assert result.pvalue == pytest.approx(pvalue, rel=1e-9, abs=1e-300)


def test_chi2_degenerate_tables() -> None:
    single = chi2_two_sample([0, 7, 0], [0, 3, 0])
    expected = chi2_contingency([[7], [3]], correction=False)
    assert (single.statistic, single.pvalue, single.dof) == (expected[0], expected[1], 0)
    empty = chi2_two_sample([1, 2, 3], [0, 0, 0])
    assert math.isnan(empty.statistic) and math.isnan(empty.pvalue)


def test_categorical_unseen_bucket_detects_new_categories() -> None:
    ref_values = ["DE"] * 500 + ["FR"] * 300 + ["IT"] * 150 + ["ES"] * 5 + [None] * 45
    profile = build_categorical_profile(ref_values, max_categories=3)
    assert profile.categories == ("DE", "FR", "IT")
    assert profile.counts.tolist() == [500, 300, 150, 5, 45]  # ES folded into unseen
    win_values = ["DE"] * 50 + ["FR"] * 30 + ["IT"] * 15 + ["XX"] * 20 + ["ES"] + [None] * 4
    win = np.bincount(profile.bin_index(win_values), minlength=profile.n_bins)
    assert win.tolist() == [50, 30, 15, 21, 4]
    assert chi2_two_sample(profile.counts, win).pvalue < 1e-6
    same = np.bincount(profile.bin_index(ref_values[::10]), minlength=profile.n_bins)
    assert chi2_two_sample(profile.counts, same).pvalue > 0.5


# --- Benjamini-Hochberg -------------------------------------------------------------------

# Benjamini & Hochberg (1995), section 4: 15 p-values; at q = 0.05 the procedure rejects the 4
# smallest (p_(4) = 0.0095 <= 4/15 * 0.05 = 0.0133, while p_(5) = 0.0201 > 5/15 * 0.05).
BH_1995 = [
    0.0201, 0.7590, 0.0001, 0.0278, 0.0004, 0.0298, 0.0019, 0.3240,
    0.0095, 0.4262, 0.0344, 0.5719, 0.0459, 0.6528, 1.0000,
]  # fmt: skip


def test_benjamini_hochberg_textbook_example() -> None:
    rejected, adjusted = benjamini_hochberg(BH_1995, 0.05)
    assert sorted(np.asarray(BH_1995)[rejected].tolist()) == [0.0001, 0.0004, 0.0019, 0.0095]
    np.testing.assert_allclose(adjusted, false_discovery_control(BH_1995, method="bh"))
    np.testing.assert_array_equal(rejected, adjusted <= 0.05)


@pytest.mark.parametrize("m", [1, 2, 7, 50])
def test_benjamini_hochberg_matches_scipy(m: int) -> None:
    g = np.random.default_rng(m)
    p = np.concatenate([g.random(m) ** 3, [0.0, 1.0]])
    rejected, adjusted = benjamini_hochberg(p, 0.1)
    np.testing.assert_allclose(adjusted, false_discovery_control(p, method="bh"), rtol=1e-12)
    np.testing.assert_array_equal(rejected, adjusted <= 0.1)


def test_benjamini_hochberg_ignores_nan() -> None:
    p = np.array([0.001, np.nan, 0.02, 0.04, np.nan, 0.3])
    rejected, adjusted = benjamini_hochberg(p, 0.05)
    assert rejected.tolist() == [True, False, True, False, False, False]
    assert np.isnan(adjusted[[1, 4]]).all()
    finite = ~np.isnan(p)
    np.testing.assert_allclose(adjusted[finite], false_discovery_control(p[finite]))
    rejected, adjusted = benjamini_hochberg([], 0.05)
    assert rejected.shape == adjusted.shape == (0,)
    assert not benjamini_hochberg([np.nan], 1.0)[0][0]


def test_benjamini_hochberg_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="alpha"):
        benjamini_hochberg([0.1], 1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg([1.2], 0.05)


# --- Jensen-Shannon distance (issue 11: the categorical effect size) ----------------------


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 30).flatmap(
        lambda k: st.tuples(
            st.lists(st.integers(0, 10**6), min_size=k, max_size=k).filter(any),
            st.lists(st.integers(0, 10**6), min_size=k, max_size=k).filter(any),
        )
    )
)
def test_js_distance_matches_scipy_on_the_same_counts(pair: tuple[list[int], list[int]]) -> None:
    ref, win = pair
    expected = float(jensenshannon(ref, win, base=2))
    assert js_distance(ref, win) == pytest.approx(expected, abs=1e-9)


def test_js_distance_ends_and_empty_sides() -> None:
    assert js_distance([3, 0, 0], [0, 0, 7]) == 1.0  # disjoint: the largest distance, base 2
    assert js_distance([1, 2, 3], [10, 20, 30]) == 0.0
    assert math.isnan(js_distance([0, 0], [1, 2])) and math.isnan(js_distance([1, 2], [0, 0]))
    with pytest.raises(ValueError, match="bin count mismatch"):
        js_distance([1, 2], [1, 2, 3])
