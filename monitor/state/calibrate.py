"""Thresholds from the reference: the no-drift spread of each feature's drift statistics.

Under no drift a window of ``n`` predictions is ``n`` draws from the reference's own bin
frequencies, so its counts are a multinomial draw. Drawing ``resamples`` such windows and
computing on each exactly what the daemon computes (:class:`monitor.state.drift_plan.DriftPlan`,
which calls :mod:`monitor.stats.drift`) gives the spread of PSI and of the effect size (KS D for
numeric features, Jensen-Shannon distance for categorical ones) that noise alone produces at
that window size. The threshold for a false-alarm rate ``r`` per evaluation is the
``(1 - r)`` quantile of that spread, taken as an order statistic so that at most ``r`` of the
resamples lie beyond it: strictly above for PSI (the ``psi_max`` rule breaches above its
threshold), at or above for the effect size (the drift verdict needs at least its floor).

The resampling is of the *binned* reference: fine bins for KS, coarse bins for PSI, categories
plus unseen and missing for categoricals, as the windows count them. Windows in production are
not exactly independent draws (traffic has seasons and bursts), so the rate is a floor, not a
promise: calibrate, then keep the rule of thumb's value if it is larger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.reference.bins import NumericProfile
from monitor.state.drift_plan import DriftPlan
from monitor.state.layout import EXTRA_CELLS, PREDICTION, Slot
from monitor.vocabulary import FeatureKind


@dataclass(frozen=True)
class Calibration:
    """One feature's (or the prediction's) no-drift thresholds at one window size.

    ``effect`` is None for the prediction (only its PSI is a rule).
    """

    feature: str
    kind: FeatureKind
    events: int
    psi: float
    effect: float | None


def null_statistics(
    slot: Slot, events: int, resamples: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """PSI and effect size of ``resamples`` no-drift windows of ``events`` predictions.

    Examples
    --------
    >>> from monitor.reference.bins import CategoricalProfile
    >>> slot = Slot("c", CategoricalProfile(("a", "b"), np.array([50, 50, 0, 0])), 0)
    >>> psi, js = null_statistics(slot, 1000, 3, np.random.default_rng(0))
    >>> psi.shape, bool((psi < 0.02).all()), bool((js < 0.05).all())
    ((3,), True, True)
    """
    ref = slot.profile.counts
    draws = rng.multinomial(events, ref / ref.sum(), size=resamples)
    zeros = np.zeros((resamples, EXTRA_CELLS), dtype=np.int64)
    cells = np.concatenate((draws.astype(np.int64), zeros), axis=1)
    # One plan slot per resample, side by side: every resample in one evaluation.
    width = cells.shape[1]
    plan = DriftPlan([Slot(slot.name, slot.profile, i * width) for i in range(resamples)])
    cols = plan.evaluate(cells.ravel())
    effect = cols.ks_statistic if isinstance(slot.profile, NumericProfile) else cols.js_distance
    return cols.psi, effect


def upper_threshold(values: npt.ArrayLike, rate: float, inclusive: bool = False) -> float:
    """The smallest order statistic with at most ``rate`` of ``values`` beyond it.

    Beyond is ``> t`` (``inclusive`` False) or ``>= t`` (True: the threshold is then the next
    float above the order statistic). NaN values are ignored; NaN if none is left.

    >>> upper_threshold(np.arange(1.0, 101.0), 0.05)
    95.0
    >>> upper_threshold([1.0, 2.0, 2.0, 2.0], 0.5, inclusive=True) > 2.0
    True
    """
    v = np.sort(np.asarray(values, dtype=np.float64))
    v = v[~np.isnan(v)]
    if not v.size:
        return math.nan
    rank = max(math.ceil((1.0 - rate) * v.size - 1e-9), 1)  # 1-based
    t = float(v[rank - 1])
    return float(np.nextafter(t, math.inf)) if inclusive else t


def calibrate(
    slots: tuple[Slot, ...], events: int, rate: float, resamples: int, seed: int
) -> list[Calibration]:
    """Thresholds for every slot (features, then the prediction) at ``events`` per window.

    ``seed`` and the slot's position seed its own generator: the same config, seed and
    options give the same thresholds.
    """
    out = []
    for i, slot in enumerate(slots):
        rng = np.random.default_rng([seed, i])
        psi, effect = null_statistics(slot, events, resamples, rng)
        out.append(
            Calibration(
                feature=slot.name,
                kind=slot.kind,
                events=events,
                psi=upper_threshold(psi, rate),
                effect=None if slot.name == PREDICTION else upper_threshold(effect, rate, True),
            )
        )
    return out
