"""Multiple testing across a model's features: the Benjamini-Hochberg step-up procedure.

A model with 50 features tests 50 hypotheses every evaluation; at a per-feature level of 0.05 a
stable model would report drift on some feature most of the time. Controlling the false
discovery rate instead keeps the expected share of false drift verdicts at ``alpha``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


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
