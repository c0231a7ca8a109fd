"""Drift statistics over binned counts: PSI, binned KS, chi-square, Jensen-Shannon distance, BH.

Every function takes count vectors (reference and window over the same bins, see
:mod:`monitor.reference.bins`) and never raw samples, so a window's cost does not grow with traffic.
They run on every evaluation tick for every feature of every model and window, so they stay in
plain numpy and call the scipy.special kernels directly rather than the scipy.stats wrappers,
whose argument handling costs more than the arithmetic here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import chdtrc, kolmogorov

DEFAULT_PSI_EPS = 1e-4


def coarsen(
    fine_counts: npt.ArrayLike, coarse_map: npt.ArrayLike, n_coarse: int
) -> npt.NDArray[np.int64]:
    """Sum fine-bin counts into coarse (PSI) bins.

    Parameters
    ----------
    fine_counts : array_like of int
        Counts per fine bin. Either the value bins only (``len(coarse_map)`` entries) or the
        value bins followed by the missing bin (``len(coarse_map) + 1``, the layout of
        ``NumericProfile.counts``).
    coarse_map : array_like of int
        Coarse bin of each fine value bin, in ``0 .. n_coarse - 1``.
    n_coarse : int
        Number of coarse value bins.

    Returns
    -------
    numpy.ndarray of int64
        ``n_coarse`` coarse counts, followed by the missing count when ``fine_counts`` has one.
        Keeping the missing bin as an extra PSI bin makes a feature that starts (or stops) going
        missing count as drift; when neither side has missing values the bin is 0 on both sides
        and adds exactly 0 to :func:`psi` and nothing to :func:`chi2_two_sample`, so passing it
        always is the same as appending it only when either side has missing values.

    Examples
    --------
    >>> coarsen([1, 2, 3, 4, 5], [0, 0, 1, 1], 2).tolist()
    [3, 7, 5]
    >>> coarsen([1, 2, 3, 4], [0, 0, 1, 1], 2).tolist()
    [3, 7]
    """
    fine = np.asarray(fine_counts, dtype=np.int64)
    cmap = np.asarray(coarse_map, dtype=np.intp)
    if fine.ndim != 1 or cmap.ndim != 1 or fine.size - cmap.size not in (0, 1):
        raise ValueError(
            f"fine_counts has {fine.size} bins; expected {cmap.size} (values) "
            f"or {cmap.size + 1} (values + missing)"
        )
    # bincount in float64 is exact for counts below 2**53 and far faster than np.add.at.
    summed = np.bincount(cmap, weights=fine[: cmap.size], minlength=n_coarse).astype(np.int64)
    if summed.size != n_coarse:
        raise ValueError(f"coarse_map refers to bin {summed.size - 1} but n_coarse={n_coarse}")
    if fine.size > cmap.size:
        return np.concatenate((summed, fine[-1:]))
    return summed


def _paired(
    ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], float, float]:
    """Both count vectors as arrays of one shape, with their totals."""
    ref = np.asarray(ref_counts)
    win = np.asarray(win_counts)
    if ref.shape != win.shape:
        raise ValueError(f"bin count mismatch: reference {ref.shape}, window {win.shape}")
    return ref, win, float(ref.sum()), float(win.sum())


def psi(
    ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike, eps: float = DEFAULT_PSI_EPS
) -> float:
    """Population stability index between reference and window counts over the same bins.

    ``PSI = sum((a - e) * ln(a / e))`` over the bin proportions ``e`` (reference) and ``a``
    (window). Proportions below ``eps`` are clamped to ``eps`` (without renormalising): a bin
    that is empty on one side would otherwise make the index infinite, and one stray value
    must not. With the default ``eps = 1e-4`` a bin holding share ``a`` in the window but
    nothing in the reference contributes about ``a * ln(a / 1e-4)``, e.g. 0.31 for ``a = 5%``.
    Bins empty on both sides contribute exactly 0.

    Parameters
    ----------
    ref_counts, win_counts : array_like of int
        Counts per bin (normally :func:`coarsen` output: about 10 reference-quantile bins,
        plus the missing bin).
    eps : float
        Floor for proportions.

    Returns
    -------
    float
        The index (>= 0; 0 for identical proportions), or NaN when either side is empty.

    Examples
    --------
    >>> round(psi([50, 30, 20], [40, 30, 30]), 6)
    0.062861
    >>> psi([5, 3, 2], [50, 30, 20])
    0.0
    """
    ref, win, n_ref, n_win = _paired(ref_counts, win_counts)
    if n_ref <= 0.0 or n_win <= 0.0:
        return math.nan
    # Division (not multiplication by 1/n) is correctly rounded: equal shares compare equal.
    expected = np.maximum(ref / n_ref, eps)
    actual = np.maximum(win / n_win, eps)
    return float(np.dot(actual - expected, np.log(actual / expected)))


@dataclass(frozen=True)
class KSResult:
    """Binned two-sample KS result (statistic and p-value are NaN if a side is empty)."""

    statistic: float
    pvalue: float
    n_ref: int
    n_win: int


def ks_binned(ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test from counts over the same fine bins.

    The statistic is ``D_edges = max |F_win - F_ref|`` over the bin edges, with both empirical
    CDFs taken from the cumulative counts. The exact statistic D of the raw samples satisfies
    ``D_edges <= D <= D_edges + profile.ks_bound`` (see :mod:`monitor.reference.bins`).

    The p-value is the asymptotic two-sample Kolmogorov distribution,
    ``kolmogorov(sqrt(n * m / (n + m)) * D_edges)``. The finite-sample ``scipy.stats.kstwo.sf``
    (what ``ks_2samp(method="asymp")`` uses) costs about 0.2 ms per call against 0.2 µs; at
    monitoring sample sizes the asymptotic value is within a few percent of it and slightly
    larger, i.e. on the conservative side.

    Parameters
    ----------
    ref_counts, win_counts : array_like of int
        Counts over the *value* bins only: drop the missing bin first
        (``profile.counts[:-1]``), since missing values have no place on the CDF.

    Returns
    -------
    KSResult
        Statistic, p-value and the two sample sizes. Statistic and p-value are NaN when
        either side has no values.

    Examples
    --------
    >>> r = ks_binned([10, 20, 30, 40], [15, 25, 35, 25])
    >>> round(r.statistic, 6), round(r.pvalue, 4), r.n_ref, r.n_win
    (0.15, 0.2106, 100, 100)
    >>> ks_binned([1, 2], [0, 0]).pvalue
    nan
    """
    cum_ref = np.cumsum(ref_counts)
    cum_win = np.cumsum(win_counts)
    if cum_ref.shape != cum_win.shape:
        raise ValueError(f"bin count mismatch: reference {cum_ref.shape}, window {cum_win.shape}")
    n_ref = int(cum_ref[-1]) if cum_ref.size else 0
    n_win = int(cum_win[-1]) if cum_win.size else 0
    if n_ref <= 0 or n_win <= 0:
        return KSResult(math.nan, math.nan, n_ref, n_win)
    gap = cum_win / n_win - cum_ref / n_ref
    statistic = float(np.abs(gap).max())
    scale = math.sqrt(n_ref * n_win / (n_ref + n_win))
    pvalue = min(max(float(kolmogorov(scale * statistic)), 0.0), 1.0)
    return KSResult(statistic, pvalue, n_ref, n_win)


@dataclass(frozen=True)
class Chi2Result:
    """Chi-square test result (NaN statistic and p-value if a side is empty)."""

    statistic: float
    pvalue: float
    dof: int


def chi2_two_sample(ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike) -> Chi2Result:
    """Chi-square test of homogeneity on the 2 x k table [reference; window].

    Bins empty on both sides are dropped (they carry no information and would give a zero
    expected count). The statistic equals ``scipy.stats.chi2_contingency(table,
    correction=False)``; the p-value is the chi-square survival function with ``k - 1``
    degrees of freedom (``scipy.special.chdtrc``, the kernel behind ``chi2.sf``).

    Parameters
    ----------
    ref_counts, win_counts : array_like of int
        Counts over the same bins (categories + unseen + missing, or coarse numeric bins).

    Returns
    -------
    Chi2Result
        NaN statistic and p-value with ``dof = 0`` when either side is empty; statistic 0 and
        p-value 1 when only one bin is occupied (as scipy does for ``dof = 0``).

    Examples
    --------
    >>> r = chi2_two_sample([30, 70, 0], [50, 50, 0])
    >>> round(r.statistic, 4), round(r.pvalue, 5), r.dof
    (8.3333, 0.00389, 1)
    """
    ref, win, n_ref, n_win = _paired(ref_counts, win_counts)
    if n_ref <= 0.0 or n_win <= 0.0:
        return Chi2Result(math.nan, math.nan, 0)
    column = ref + win
    dof = int(np.count_nonzero(column)) - 1
    if dof == 0:
        return Chi2Result(0.0, 1.0, 0)
    # For two rows, sum((O - E)**2 / E) collapses to sum((r*W - w*R)**2 / C) / (R*W): one pass,
    # no cancellation. Empty columns have r = w = 0, so dividing them by 1 drops them.
    gap = ref * n_win - win * n_ref
    statistic = float(np.sum(gap * gap / np.maximum(column, 1)) / (n_ref * n_win))
    return Chi2Result(statistic, float(chdtrc(dof, statistic)), dof)


def js_distance(ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (base 2) between the frequencies of two count vectors.

    ``sqrt((KL(p || m) + KL(q || m)) / 2)`` with ``m = (p + q) / 2`` and logarithms in base 2,
    so the distance lies in [0, 1]: 0 for equal frequencies, 1 for disjoint supports. Unlike a
    p-value it does not grow with the sample size, which makes it the effect-size floor of the
    categorical drift verdict. Equals ``scipy.spatial.distance.jensenshannon(ref, win, base=2)``
    (which normalises the counts the same way).

    Parameters
    ----------
    ref_counts, win_counts : array_like of int
        Counts over the same bins (categories + unseen + missing).

    Returns
    -------
    float
        The distance, or NaN when either side is empty.

    Examples
    --------
    >>> round(js_distance([50, 50], [90, 10]), 6)
    0.383136
    >>> js_distance([1, 0], [0, 3]), js_distance([2, 2], [5, 5]), js_distance([1], [0])
    (1.0, 0.0, nan)
    """
    ref, win, n_ref, n_win = _paired(ref_counts, win_counts)
    if n_ref <= 0.0 or n_win <= 0.0:
        return math.nan
    p = ref / n_ref
    q = win / n_win
    m = (p + q) / 2.0
    # 0 * log(0 / m) is 0; m > 0 wherever p or q is, so only empty bins need masking.
    kl_p = float(np.sum(p[p > 0] * np.log2(p[p > 0] / m[p > 0])))
    kl_q = float(np.sum(q[q > 0] * np.log2(q[q > 0] / m[q > 0])))
    # Rounding can leave a tiny negative divergence for equal frequencies.
    return math.sqrt(min(max((kl_p + kl_q) / 2.0, 0.0), 1.0))


def benjamini_hochberg(
    pvalues: npt.ArrayLike, alpha: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Benjamini-Hochberg step-up procedure controlling the false discovery rate at ``alpha``.

    NaN p-values (statistics that could not be computed, e.g. an empty window) are never
    rejected, get a NaN adjusted p-value and do not count towards the number of tests.

    Parameters
    ----------
    pvalues : array_like of float
        One p-value per hypothesis (a model's features), each in [0, 1] or NaN.
    alpha : float
        Target false discovery rate.

    Returns
    -------
    rejected : numpy.ndarray of bool
        True where the hypothesis is rejected (drift detected).
    adjusted : numpy.ndarray of float64
        BH-adjusted p-values (as ``scipy.stats.false_discovery_control``); ``rejected`` is
        exactly ``adjusted <= alpha``.

    Examples
    --------
    >>> rejected, adjusted = benjamini_hochberg([0.01, 0.03, 0.02, float("nan"), 0.5], 0.05)
    >>> rejected.tolist()
    [True, True, True, False, False]
    >>> adjusted.round(4).tolist()
    [0.04, 0.04, 0.04, nan, 0.5]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional, got shape {p.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    valid = ~np.isnan(p)
    tested = p[valid]
    if np.any((tested < 0.0) | (tested > 1.0)):
        raise ValueError("p-values must lie in [0, 1]")
    adjusted = np.full(p.shape, np.nan)
    m = tested.size
    if m:
        order = np.argsort(tested, kind="stable")
        scaled = tested[order] * m / np.arange(1, m + 1)
        # Step-up: each adjusted value is the smallest scaled value at its rank or above.
        running_min = np.minimum.accumulate(scaled[::-1])[::-1]
        ranked = np.empty(m)
        ranked[order] = np.minimum(running_min, 1.0)
        adjusted[valid] = ranked
    rejected = np.zeros(p.shape, dtype=np.bool_)
    rejected[valid] = adjusted[valid] <= alpha
    return rejected, adjusted
