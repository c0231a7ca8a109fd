"""Performance metrics computed from mergeable accumulators, and a window's snapshot of them.

The accumulators (:mod:`monitor.stats.accumulators`) hold fixed-size counts and sums that merge
by addition; a window is the merge of its panes. The metric functions here are pure and return
``nan`` when undefined (no data, 0/0); :func:`performance_snapshot` turns ``nan`` into ``None``
for the exporter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from monitor.stats.accumulators import ClassificationAccumulator, RegressionAccumulator


def _div(num: float, den: float) -> float:
    return num / den if den else math.nan


# --- metrics over counts ---------------------------------------------------------------------


def accuracy(confusion: npt.ArrayLike) -> float:
    """Share of correct predictions: ``trace / total``.

    Examples
    --------
    >>> accuracy([[5, 1], [2, 2]])
    0.7
    >>> accuracy([[0, 0], [0, 0]])
    nan
    """
    c = np.asarray(confusion)
    return _div(float(np.trace(c)), float(c.sum()))


def precision_recall_f1(confusion: npt.ArrayLike, positive: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of class ``positive`` (the binary metrics; one-vs-rest for more).

    Each is ``nan`` when undefined: precision without any positive prediction, recall without
    any positive label, F1 (``2 tp / (2 tp + fp + fn)``) with neither. scikit-learn returns its
    ``zero_division`` value (0 by default, with a warning) there instead.

    Examples
    --------
    >>> precision_recall_f1([[5, 1], [2, 2]], positive=1)
    (0.6666666666666666, 0.5, 0.5714285714285714)
    >>> precision_recall_f1([[5, 0], [2, 0]], positive=1)
    (nan, 0.0, 0.0)
    """
    c = np.asarray(confusion)
    tp = float(c[positive, positive])
    predicted = float(c[:, positive].sum())
    actual = float(c[positive, :].sum())
    return _div(tp, predicted), _div(tp, actual), _div(2.0 * tp, predicted + actual)


def macro_precision_recall_f1(confusion: npt.ArrayLike) -> tuple[float, float, float]:
    """Unweighted means of per-class precision, recall and F1 (multiclass).

    A class with neither labels nor predictions in the window is left out of the means, as
    scikit-learn does with ``labels=None`` (it averages over the classes seen in ``y_true`` or
    ``y_pred``). A class the model never predicted has precision 0 and a class never seen in
    the labels has recall 0: scikit-learn's ``zero_division=0``, which is also its default apart
    from the warning. All ``nan`` for an empty matrix. F1 is per class, then averaged.

    Examples
    --------
    >>> c = [[3, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]   # class 3 absent
    >>> [round(v, 4) for v in macro_precision_recall_f1(c)]
    [0.4722, 0.5833, 0.5167]
    """
    c = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(c)
    predicted = c.sum(axis=0)
    actual = c.sum(axis=1)
    present = (predicted + actual) > 0
    if not present.any():
        return math.nan, math.nan, math.nan
    tp, predicted, actual = tp[present], predicted[present], actual[present]
    zeros = np.zeros_like(tp)
    precision = np.divide(tp, predicted, out=zeros.copy(), where=predicted > 0)
    recall = np.divide(tp, actual, out=zeros.copy(), where=actual > 0)
    f1 = 2.0 * tp / (predicted + actual)  # > 0 for every present class
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


def roc_auc_binned(pos_hist: npt.ArrayLike, neg_hist: npt.ArrayLike) -> float:
    """ROC AUC (Mann-Whitney) from score histograms of the positives and the negatives.

    A (positive, negative) pair in different bins is ordered by its bins; a pair inside one
    bin counts 1/2, as an exact tie does. Only those same-bin pairs can differ from the exact
    AUC of the raw scores (which counts each as 0, 1/2 or 1), so

        ``|AUC_binned - AUC_exact| <= sum_b pos_b * neg_b / (2 * P * N)``

    (:func:`roc_auc_binning_bound`), with equality when every same-bin pair is ordered the same
    way; the binned AUC is exact when no bin holds both classes or when all scores in a bin are
    equal (e.g. scores on bin centres). ``nan`` without positives or without negatives.

    Examples
    --------
    >>> roc_auc_binned([0, 1, 3], [2, 2, 0])   # 4 positives, 4 negatives, 2 pairs share bin 1
    0.9375
    >>> roc_auc_binning_bound([0, 1, 3], [2, 2, 0])
    0.0625
    """
    pos = np.asarray(pos_hist, dtype=np.float64)
    neg = np.asarray(neg_hist, dtype=np.float64)
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    neg_below = np.cumsum(neg) - neg
    return _div(float((pos * (neg_below + 0.5 * neg)).sum()), n_pos * n_neg)


def roc_auc_binning_bound(pos_hist: npt.ArrayLike, neg_hist: npt.ArrayLike) -> float:
    """Largest possible ``|roc_auc_binned - exact AUC|`` for these histograms (see there)."""
    pos = np.asarray(pos_hist, dtype=np.float64)
    neg = np.asarray(neg_hist, dtype=np.float64)
    return _div(float((pos * neg).sum()), 2.0 * float(pos.sum()) * float(neg.sum()))


def log_loss(acc: ClassificationAccumulator) -> float:
    """Mean ``-ln p_true`` over the labelled rows that carry a score.

    ``p_true`` (the probability given to the true class) is clipped to ``[1e-15, 1 - 1e-15]``
    so that one confident mistake costs at most ``-ln 1e-15 ≈ 34.5``; scikit-learn clips at
    float64 epsilon instead, so the two agree unless a true class got less than 1e-15.

    Examples
    --------
    >>> acc = ClassificationAccumulator(2)
    >>> acc.add([1, 0], [1, 0], [0.8, 0.4])
    >>> round(log_loss(acc), 6)     # (-ln 0.8 - ln 0.6) / 2
    0.366985
    """
    return _div(acc.log_loss_sum, float(acc.cal_count.sum()))


def brier(acc: ClassificationAccumulator) -> float:
    """Mean Brier score over labelled rows with a score, as scikit-learn's default computes it.

    Binary: ``(p - y)^2`` with the positive-class probability (range [0, 1]); multiclass:
    ``sum_c (p_c - onehot_c)^2`` (range [0, 2]).

    Examples
    --------
    >>> acc = ClassificationAccumulator(2)
    >>> acc.add([1, 0], [1, 0], [0.8, 0.4])
    >>> round(brier(acc), 6)        # (0.2^2 + 0.4^2) / 2
    0.1
    """
    return _div(acc.brier_sum, float(acc.cal_count.sum()))


def expected_calibration_error(acc: ClassificationAccumulator) -> float:
    """Expected calibration error over labelled rows with a score.

    ``ECE = sum_b |sum of confidence_b - number correct_b| / n`` over ``acc.calibration_bins``
    equal-width confidence bins, confidence being the probability given to the predicted class.

    Examples
    --------
    >>> acc = ClassificationAccumulator(2)
    >>> acc.add([1, 1, 0, 0], [1, 1, 1, 0], [0.9, 0.9, 0.9, 0.3])
    >>> round(expected_calibration_error(acc), 6)   # |2.7 - 2| / 4 + |0.7 - 1| / 4
    0.25
    """
    gap = np.abs(acc.cal_conf_sum - acc.cal_correct).sum()
    return _div(float(gap), float(acc.cal_count.sum()))


def estimated_accuracy(acc: ClassificationAccumulator) -> float:
    """Label-free accuracy estimate: mean confidence over all predictions with a score.

    Unbiased for the realised accuracy when the scores are calibrated.

    Examples
    --------
    >>> acc = ClassificationAccumulator(3)
    >>> acc.add_predictions([0, 2], [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    >>> round(estimated_accuracy(acc), 6)
    0.65
    """
    return _div(acc.est_acc_sum, float(acc.est_acc_n))


def estimation_error(acc: ClassificationAccumulator) -> float:
    """Estimated minus realised accuracy, both on the labelled rows that carry a score.

    Comparing on the same rows separates calibration error from the label delay and coverage;
    ``|estimation_error| <= expected_calibration_error``.

    Examples
    --------
    >>> acc = ClassificationAccumulator(2)
    >>> acc.add([1, 1, 0, 0], [1, 1, 1, 0], [0.9, 0.9, 0.9, 0.3])
    >>> round(estimation_error(acc), 6)   # mean confidence 0.85 - accuracy 0.75
    0.1
    """
    gap = float(acc.cal_conf_sum.sum()) - float(acc.cal_correct.sum())
    return _div(gap, float(acc.cal_count.sum()))


def regression_metrics(acc: RegressionAccumulator) -> tuple[float, float, float]:
    """MAE, RMSE and MAPE (a ratio, over nonzero targets only).

    Examples
    --------
    >>> acc = RegressionAccumulator()
    >>> acc.add([1.0, 2.0, 0.0], [1.5, 2.0, -1.0])
    >>> [round(v, 6) for v in regression_metrics(acc)]
    [0.5, 0.645497, 0.25]
    """
    mae = _div(acc.sum_abs_err, float(acc.n))
    mse = _div(acc.sum_sq_err, float(acc.n))
    return mae, math.sqrt(mse), _div(acc.sum_abs_pct_err, float(acc.n_pct))


# --- snapshot ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PerformanceSnapshot:
    """One window's performance; ``None`` = not applicable to the task, or undefined (no data).

    Field names are the keys the exporter maps to ``modelmon_*`` metrics (``accuracy`` →
    ``modelmon_accuracy_ratio``, ``ece`` → ``modelmon_calibration_error_ratio``, ...).
    Precision, recall and F1 are of the positive class (binary) or macro (multiclass).
    """

    labels: int
    predictions: int
    label_coverage: float | None = None
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    roc_auc: float | None = None
    roc_auc_bound: float | None = None
    log_loss: float | None = None
    brier: float | None = None
    ece: float | None = None
    estimated_accuracy: float | None = None
    estimation_error: float | None = None
    mae: float | None = None
    rmse: float | None = None
    mape: float | None = None

    def metrics(self) -> dict[str, float]:
        """The defined metrics, keyed by field name (counts excluded)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if isinstance(v, float)}


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else value


def performance_snapshot(
    acc: ClassificationAccumulator | RegressionAccumulator,
) -> PerformanceSnapshot:
    """Every metric of an accumulator (usually a window: the merge of its panes).

    Examples
    --------
    >>> acc = RegressionAccumulator()
    >>> acc.add_predictions([1.5, 2.0, 9.0, 4.0])
    >>> acc.add([1.0, 2.0], [1.5, 2.0])
    >>> performance_snapshot(acc).metrics()
    {'label_coverage': 0.5, 'mae': 0.25, 'rmse': 0.3535533905932738, 'mape': 0.25}
    """
    coverage = _opt(_div(float(acc.labels), float(acc.predictions)))
    if isinstance(acc, RegressionAccumulator):
        mae, rmse, mape = (_opt(v) for v in regression_metrics(acc))
        return PerformanceSnapshot(
            acc.labels, acc.predictions, coverage, mae=mae, rmse=rmse, mape=mape
        )
    c = acc.confusion
    if acc.binary:
        prf = precision_recall_f1(c, acc.positive)
        pos, neg = acc.score_hist[acc.positive], acc.score_hist[1 - acc.positive]
        auc, bound = _opt(roc_auc_binned(pos, neg)), _opt(roc_auc_binning_bound(pos, neg))
    else:
        prf = macro_precision_recall_f1(c)
        auc = bound = None
    return PerformanceSnapshot(
        labels=acc.labels,
        predictions=acc.predictions,
        label_coverage=coverage,
        accuracy=_opt(accuracy(c)),
        precision=_opt(prf[0]),
        recall=_opt(prf[1]),
        f1=_opt(prf[2]),
        roc_auc=auc,
        roc_auc_bound=bound,
        log_loss=_opt(log_loss(acc)),
        brier=_opt(brier(acc)),
        ece=_opt(expected_calibration_error(acc)),
        estimated_accuracy=_opt(estimated_accuracy(acc)),
        estimation_error=_opt(estimation_error(acc)),
    )
