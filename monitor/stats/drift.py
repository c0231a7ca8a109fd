"""Drift statistics over binned counts: PSI, binned KS, chi-square, Jensen-Shannon distance.

Every function takes count vectors (reference and window over the same bins, see
:mod:`monitor.reference.bins`) and never raw samples, so a window's cost does not grow with traffic.
They run on every evaluation tick for every feature of every model and window, so each has a
*rows* form (``psi_rows``, ``ks_rows``, ...) that takes one feature per row and computes all of a
model's features in a few numpy calls (:mod:`monitor.state.drift_plan`); the one-feature
functions are that form on a single row, so there is one implementation. Rows may be padded with
bins empty on both sides: every statistic ignores them. They call the scipy.special kernels
directly rather than the scipy.stats wrappers, whose argument handling costs more than the
arithmetic here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import chdtrc, kolmogorov

DEFAULT_PSI_EPS = 1e-4
FloatArray = npt.NDArray[np.float64]


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
    # One row of coarsen_rows (which checks shapes: a 2-D input here is a 3-D table there).
    row: npt.NDArray[np.int64] = coarsen_rows(
        np.asarray(fine_counts)[None], np.asarray(coarse_map)[None], n_coarse
    )[0]
    return row


def coarsen_rows(
    fine_counts: npt.ArrayLike, coarse_map: npt.ArrayLike, n_coarse: int
) -> npt.NDArray[np.int64]:
    """:func:`coarsen` of each row: ``fine_counts`` and ``coarse_map`` are ``(k, bins)``.

    >>> coarsen_rows([[1, 2, 3, 4, 9], [5, 0, 0, 1, 0]], [[0, 0, 1, 1], [0, 1, 1, 0]], 2).tolist()
    [[3, 7, 9], [6, 0, 0]]
    """
    fine = np.asarray(fine_counts, dtype=np.int64)
    cmap = np.asarray(coarse_map, dtype=np.intp)
    if fine.ndim != 2 or cmap.ndim != 2 or fine.shape[1] - cmap.shape[1] not in (0, 1):
        raise ValueError(
            f"fine_counts has {fine.shape[-1]} bins; expected {cmap.shape[-1]} (values) "
            f"or {cmap.shape[-1] + 1} (values + missing)"
        )
    if fine.shape[0] != cmap.shape[0]:
        raise ValueError(f"fine_counts has {fine.shape[0]} rows, coarse_map {cmap.shape[0]}")
    k, width = cmap.shape
    top = int(cmap.max()) if cmap.size else -1
    if top >= n_coarse:  # (a negative bin fails in bincount)
        raise ValueError(f"coarse_map refers to bin {top} but n_coarse={n_coarse}")
    # One bincount over all rows (row r's bins shifted by r * n_coarse); float64 weights are
    # exact for counts below 2**53 and far faster than np.add.at.
    index = (cmap + np.arange(k)[:, None] * n_coarse).ravel()
    summed = np.bincount(index, weights=fine[:, :width].ravel(), minlength=k * n_coarse)
    summed = summed.astype(np.int64).reshape(k, n_coarse)
    if fine.shape[1] > width:
        return np.concatenate((summed, fine[:, width:]), axis=1)
    return summed


def _paired(
    ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Both one-feature count vectors as one row each (shapes checked; _rows converts)."""
    ref = np.asarray(ref_counts)
    win = np.asarray(win_counts)
    if ref.ndim != 1 or ref.shape != win.shape:
        raise ValueError(f"bin count mismatch: reference {ref.shape}, window {win.shape}")
    return ref[None], win[None]


def _rows(
    ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], FloatArray, FloatArray]:
    """Both count tables as float64 ``(k, bins)`` (exact below 2**53, and no int64 overflow in
    products of counts: chi-square squares count × total), with their row totals."""
    ref = np.asarray(ref_counts, dtype=np.float64)
    win = np.asarray(win_counts, dtype=np.float64)
    if ref.ndim != 2 or ref.shape != win.shape:
        raise ValueError(f"bin count mismatch: reference {ref.shape}, window {win.shape}")
    return ref, win, ref.sum(axis=1), win.sum(axis=1)


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
    return float(psi_rows(*_paired(ref_counts, win_counts), eps)[0])


def psi_rows(
    ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike, eps: float = DEFAULT_PSI_EPS
) -> FloatArray:
    """:func:`psi` of each row of two ``(k, bins)`` count tables.

    >>> psi_rows([[50, 30, 20], [1, 1, 0]], [[40, 30, 30], [0, 0, 0]]).round(6).tolist()
    [0.062861, nan]
    """
    ref, win, n_ref, n_win = _rows(ref_counts, win_counts)
    with np.errstate(invalid="ignore"):  # empty rows: 0 / 0, NaN (set below)
        # Division (not multiplication by 1/n) is correctly rounded: equal shares compare equal.
        expected = np.maximum(ref / n_ref[:, None], eps)
        actual = np.maximum(win / n_win[:, None], eps)
        out: FloatArray = np.einsum("ij,ij->i", actual - expected, np.log(actual / expected))
    out[(n_ref <= 0.0) | (n_win <= 0.0)] = math.nan
    return out


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
    statistic, pvalue, n_ref, n_win = ks_rows(*_paired(ref_counts, win_counts))
    return KSResult(float(statistic[0]), float(pvalue[0]), int(n_ref[0]), int(n_win[0]))


def ks_rows(
    ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """:func:`ks_binned` of each row: (statistics, p-values, reference sizes, window sizes).

    >>> d, p, n, m = ks_rows([[10, 20, 30, 40], [1, 2, 0, 0]], [[15, 25, 35, 25], [0, 0, 0, 0]])
    >>> d.round(6).tolist(), p.round(4).tolist(), n.tolist(), m.tolist()
    ([0.15, nan], [0.2106, nan], [100.0, 3.0], [100.0, 0.0])
    """
    ref, win, _, _ = _rows(ref_counts, win_counts)
    return ks_cumulative(np.cumsum(ref, axis=1), np.cumsum(win, axis=1))


def ks_cumulative(
    cum_ref: npt.ArrayLike, cum_win: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """:func:`ks_rows` from the rows' cumulative counts.

    >>> d, p, n, m = ks_cumulative([[10, 30, 60, 100]], [[15, 40, 75, 100]])
    >>> d.round(6).tolist(), p.round(4).tolist(), n.tolist(), m.tolist()
    ([0.15], [0.2106], [100.0], [100.0])
    """
    ref = np.asarray(cum_ref)
    n_ref = ref[:, -1].astype(np.float64) if ref.ndim == 2 and ref.shape[1] else np.zeros(len(ref))
    with np.errstate(invalid="ignore"):  # an empty reference: 0 / 0, NaN
        cdf = ref / n_ref[:, None]
    return ks_against(cdf, n_ref, cum_win)


def ks_against(
    ref_cdf: FloatArray, n_ref: FloatArray, cum_win: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """:func:`ks_cumulative` against a reference CDF computed once (``cum_ref / n_ref``).

    >>> cdf, n = np.array([[0.1, 0.3, 0.6, 1.0]]), np.array([100.0])
    >>> d, p, _, _ = ks_against(cdf, n, [[15, 40, 75, 100]])
    >>> d.round(6).tolist(), p.round(4).tolist()
    ([0.15], [0.2106])
    """
    win = np.asarray(cum_win)
    if ref_cdf.ndim != 2 or ref_cdf.shape != win.shape:
        raise ValueError(f"bin count mismatch: reference {ref_cdf.shape}, window {win.shape}")
    n_win = win[:, -1].astype(np.float64) if win.shape[1] else np.zeros(win.shape[0])
    empty = (n_ref <= 0.0) | (n_win <= 0.0)
    with np.errstate(invalid="ignore"):  # empty rows: 0 / 0, NaN (set below)
        # In place: these tables are a model's every fine bin, the largest arrays evaluated.
        # A division per cell, not a product with 1 / n or a rescaled reference: correctly
        # rounded, so equal shares compare equal (D is exactly 0 for a window shaped as the
        # reference, as scipy's ks_2samp has it), whatever it costs.
        gap = np.divide(win, n_win[:, None])
        gap -= ref_cdf
        statistic = np.abs(gap, out=gap).max(axis=1, initial=0.0)
        scale = np.sqrt(n_ref * n_win / (n_ref + n_win))
    statistic[empty] = math.nan
    pvalue = np.clip(kolmogorov(scale * statistic), 0.0, 1.0)
    return statistic, pvalue, n_ref, n_win


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
    statistic, pvalue, dof = chi2_rows(*_paired(ref_counts, win_counts))
    return Chi2Result(float(statistic[0]), float(pvalue[0]), int(dof[0]))


def chi2_rows(
    ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """:func:`chi2_two_sample` of each row: (statistics, p-values, degrees of freedom).

    >>> ref, win = [[30, 70, 0], [5, 0, 0], [1, 1, 1]], [[50, 50, 0], [2, 0, 0], [0, 0, 0]]
    >>> s, p, dof = chi2_rows(ref, win)
    >>> s.round(4).tolist(), p.round(5).tolist(), dof.tolist()
    ([8.3333, 0.0, nan], [0.00389, 1.0, nan], [1, 0, 0])
    """
    ref, win, n_ref, n_win = _rows(ref_counts, win_counts)
    column = ref + win
    dof: npt.NDArray[np.int64] = np.count_nonzero(column, axis=1) - 1
    # For two rows, sum((O - E)**2 / E) collapses to sum((r*W - w*R)**2 / C) / (R*W): one pass,
    # no cancellation. Empty columns have r = w = 0, so dividing them by 1 drops them.
    gap = ref * n_win[:, None] - win * n_ref[:, None]
    with np.errstate(invalid="ignore"):  # empty rows: 0 / 0, NaN
        statistic = np.sum(gap * gap / np.maximum(column, 1.0), axis=1) / (n_ref * n_win)
    # One occupied bin (dof 0): its gap R*W - W*R is exactly 0, so statistic 0 and p-value
    # chdtrc(1, 0) = 1, scipy's answer for dof 0. An empty side: NaN, NaN, and dof 0.
    pvalue = chdtrc(np.maximum(dof, 1), statistic)
    dof[(n_ref <= 0.0) | (n_win <= 0.0)] = 0
    return statistic, pvalue, dof


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
    return float(js_rows(*_paired(ref_counts, win_counts))[0])


def js_rows(ref_counts: npt.ArrayLike, win_counts: npt.ArrayLike) -> FloatArray:
    """:func:`js_distance` of each row of two ``(k, bins)`` count tables.

    >>> js_rows([[50, 50], [1, 0], [1, 0]], [[90, 10], [0, 3], [0, 0]]).round(6).tolist()
    [0.383136, 1.0, nan]
    """
    ref, win, n_ref, n_win = _rows(ref_counts, win_counts)
    with np.errstate(divide="ignore", invalid="ignore"):  # log2(0) and 0 / 0: masked below
        p = ref / n_ref[:, None]
        q = win / n_win[:, None]
        m = (p + q) / 2.0
        # 0 * log(0 / m) is 0; m > 0 wherever p or q is, so only empty bins need masking.
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=1)
    # Rounding can leave a tiny negative divergence for equal frequencies.
    out: FloatArray = np.sqrt(np.clip((kl_p + kl_q) / 2.0, 0.0, 1.0))
    out[(n_ref <= 0.0) | (n_win <= 0.0)] = math.nan
    return out
