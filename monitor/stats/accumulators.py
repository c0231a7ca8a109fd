"""Mergeable performance accumulators: fixed-size counts and sums for the performance metrics.

An accumulator is a fixed set of numpy counts and float sums (its size depends on the number of
classes and bins, never on traffic). Two accumulators over disjoint events merge by elementwise
addition and an expired pane is removed by subtraction, so the daemon keeps one per window pane
and a window is their sum. The metrics over them are in :mod:`monitor.stats.performance`.

Classes are indices ``0 .. n_classes - 1`` (the caller maps labels to indices). With two
classes the task is binary: ``proba`` is the positive-class probability, shape ``(n,)``;
otherwise it has one column per class, shape ``(n, n_classes)``. A row with a NaN score means
"no score": it counts in the confusion matrix but not in the score-based sums.

Two streams feed a classification accumulator, each exactly once per event:
:meth:`ClassificationAccumulator.add_predictions` for every prediction when it arrives
(label-free: prediction count, estimated accuracy) and :meth:`ClassificationAccumulator.add`
for every joined (label, prediction) pair. Deduplication is the caller's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

SCORE_BINS = 200  # equal-width bins over [0, 1] for the ROC AUC histograms
CALIBRATION_BINS = 15  # equal-width confidence bins over [0, 1] for ECE
PROB_CLIP = 1e-15  # log loss clips p_true to [PROB_CLIP, 1 - PROB_CLIP]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _bin(values: FloatArray, n_bins: int) -> npt.NDArray[np.intp]:
    # Equal-width bins over [0, 1], left-closed; 1.0 joins the last bin.
    return np.minimum((values * n_bins).astype(np.intp), n_bins - 1)


def _labels(values: npt.ArrayLike, k: int, name: str) -> npt.NDArray[np.intp]:
    arr = np.asarray(values, dtype=np.intp)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        raise ValueError(f"{name} must be class indices in [0, {k})")
    return arr


@dataclass(eq=False)
class ClassificationAccumulator:
    """Counts and sums for binary (``n_classes == 2``) or multiclass classification metrics.

    Parameters
    ----------
    n_classes : int
        Number of classes, at least 2; exactly 2 means binary.
    positive : int
        Binary only: index of the positive class, whose probability ``proba`` holds.
    score_bins, calibration_bins : int
        Equal-width bins over [0, 1] for the AUC histograms and the confidence (ECE) bins.
        Accumulators merge only with accumulators of the same four parameters.

    Attributes
    ----------
    confusion : (k, k) int64
        Rows are the true class, columns the predicted class.
    score_hist : (2, score_bins) int64, or (0, score_bins) for multiclass
        Binary only: histogram of the positive-class score per true class (row = class index),
        for :func:`roc_auc_binned`.
    log_loss_sum, brier_sum : float
        Sums over labelled rows with a score; their count is ``cal_count.sum()``.
    cal_count, cal_conf_sum, cal_correct : (calibration_bins,)
        Labelled rows with a score per confidence bin: count, sum of confidence, number
        correct. Confidence is the probability the model gave to the class it *predicted*
        (``max(p, 1 - p)`` or the top class probability when predictions are the argmax;
        with another decision threshold it stays the right estimate of P(correct)).
    predictions : int
        Every prediction passed to :meth:`add_predictions`, scored or not.
    est_acc_sum, est_acc_n : float, int
        Sum of confidence over the predictions with a score, and their count.

    Examples
    --------
    >>> from monitor.stats.performance import estimated_accuracy
    >>> acc = ClassificationAccumulator(n_classes=2)
    >>> acc.add_predictions([1, 0, 1, 0], [0.9, 0.2, 0.6, float("nan")])
    >>> acc.add([1, 0, 0], [1, 0, 1], [0.9, 0.2, 0.6])
    >>> acc.confusion.tolist(), acc.predictions, round(estimated_accuracy(acc), 4)
    ([[1, 1], [0, 1]], 4, 0.7667)
    """

    n_classes: int
    positive: int = 1
    score_bins: int = SCORE_BINS
    calibration_bins: int = CALIBRATION_BINS
    confusion: IntArray = field(init=False)
    score_hist: IntArray = field(init=False)
    log_loss_sum: float = field(init=False, default=0.0)
    brier_sum: float = field(init=False, default=0.0)
    cal_count: IntArray = field(init=False)
    cal_conf_sum: FloatArray = field(init=False)
    cal_correct: IntArray = field(init=False)
    predictions: int = field(init=False, default=0)
    est_acc_sum: float = field(init=False, default=0.0)
    est_acc_n: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        k = self.n_classes
        if k < 2 or self.score_bins < 1 or self.calibration_bins < 1:
            raise ValueError("need n_classes >= 2 and at least one score and calibration bin")
        if k == 2 and self.positive not in (0, 1):
            raise ValueError("positive must be 0 or 1 for a binary task")
        self.confusion = np.zeros((k, k), dtype=np.int64)
        self.score_hist = np.zeros((2 if k == 2 else 0, self.score_bins), dtype=np.int64)
        self.cal_count = np.zeros(self.calibration_bins, dtype=np.int64)
        self.cal_conf_sum = np.zeros(self.calibration_bins, dtype=np.float64)
        self.cal_correct = np.zeros(self.calibration_bins, dtype=np.int64)

    @property
    def binary(self) -> bool:
        return self.n_classes == 2

    @property
    def labels(self) -> int:
        """Number of labelled pairs added."""
        return int(self.confusion.sum())

    def _scores(
        self, proba: npt.ArrayLike | None, n: int
    ) -> tuple[npt.NDArray[np.bool_], FloatArray]:
        """Rows that carry a score, and those rows' scores (validated)."""
        if proba is None:
            return np.zeros(n, dtype=bool), np.zeros((0,) if self.binary else (0, self.n_classes))
        p = np.asarray(proba, dtype=np.float64)
        shape = (n,) if self.binary else (n, self.n_classes)
        if p.shape != shape:
            raise ValueError(f"proba must have shape {shape}, got {p.shape}")
        # A matrix product finds NaN rows far faster than isnan(p).any(axis=1) for small k.
        mask = np.logical_not(np.isnan(p if self.binary else p @ np.ones(self.n_classes)))
        if not mask.all():
            p = p[mask]
        if p.size and (p.min() < 0.0 or p.max() > 1.0):
            raise ValueError("probabilities must lie in [0, 1]")
        return mask, p

    def _confidence(self, y_pred: npt.NDArray[np.intp], p: FloatArray) -> FloatArray:
        """Probability given to the predicted class."""
        if self.binary:
            return np.where(y_pred == self.positive, p, 1.0 - p)
        return p[np.arange(p.shape[0]), y_pred]

    def add_predictions(self, y_pred: npt.ArrayLike, proba: npt.ArrayLike | None = None) -> None:
        """Count predictions when they arrive, labelled or not (label-free side only).

        Parameters
        ----------
        y_pred : array_like of int, shape (n,)
            Predicted class indices.
        proba : array_like of float, optional
            ``(n,)`` positive-class probabilities (binary) or ``(n, k)``; NaN rows: no score.
        """
        pred = _labels(y_pred, self.n_classes, "y_pred")
        mask, p = self._scores(proba, pred.size)
        self.predictions += int(pred.size)
        conf = self._confidence(pred[mask], p)
        self.est_acc_sum += float(conf.sum())
        self.est_acc_n += int(conf.size)

    def add(
        self, y_true: npt.ArrayLike, y_pred: npt.ArrayLike, proba: npt.ArrayLike | None = None
    ) -> None:
        """Add a batch of joined pairs; does not touch the label-free sums.

        Parameters
        ----------
        y_true, y_pred : array_like of int, shape (n,)
            True and predicted class indices.
        proba : array_like of float, optional
            As in :meth:`add_predictions`.
        """
        k = self.n_classes
        true = _labels(y_true, k, "y_true")
        pred = _labels(y_pred, k, "y_pred")
        if true.shape != pred.shape:
            raise ValueError("y_true and y_pred must have the same length")
        mask, p = self._scores(proba, true.size)
        self.confusion += np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
        t, yp = true[mask], pred[mask]
        if self.binary:
            is_pos = t == self.positive
            p_true = np.where(is_pos, p, 1.0 - p)
            self.brier_sum += float(np.square(p - is_pos).sum())
            b = self.score_bins
            self.score_hist += np.bincount(t * b + _bin(p, b), minlength=2 * b).reshape(2, b)
        else:
            p_true = p[np.arange(t.size), t]
            # sum_i sum_c (p_ic - onehot_ic)^2 = sum p^2 - 2 sum p_true + n; vdot is one BLAS pass.
            self.brier_sum += float(np.vdot(p, p)) - 2.0 * float(p_true.sum()) + float(t.size)
        self.log_loss_sum -= float(np.log(np.clip(p_true, PROB_CLIP, 1.0 - PROB_CLIP)).sum())
        conf = self._confidence(yp, p)
        m = self.calibration_bins
        idx = _bin(conf, m)
        self.cal_count += np.bincount(idx, minlength=m)
        self.cal_conf_sum += np.bincount(idx, weights=conf, minlength=m)
        self.cal_correct += np.bincount(idx[t == yp], minlength=m)

    # --- merge algebra -------------------------------------------------------------------
    def _check(self, other: ClassificationAccumulator) -> None:
        mine = (self.n_classes, self.positive, self.score_bins, self.calibration_bins)
        theirs = (other.n_classes, other.positive, other.score_bins, other.calibration_bins)
        if mine != theirs:
            raise ValueError(f"incompatible accumulators: {mine} vs {theirs}")

    def _combine(self, other: ClassificationAccumulator, sign: int) -> None:
        self._check(other)
        arrays = {name: getattr(self, name) + sign * getattr(other, name) for name in _CLS_ARRAYS}
        counts = (
            self.predictions + sign * other.predictions,
            self.est_acc_n + sign * other.est_acc_n,
        )
        if min(counts) < 0 or any((a < 0).any() for n, a in arrays.items() if n != "cal_conf_sum"):
            raise ValueError("subtracting more than was added")  # checked before any mutation
        for name, value in arrays.items():
            setattr(self, name, value)
        self.predictions, self.est_acc_n = counts
        self.log_loss_sum += sign * other.log_loss_sum
        self.brier_sum += sign * other.brier_sum
        self.est_acc_sum += sign * other.est_acc_sum
        if sign < 0:
            # Snap float sums whose count fell to zero, so rounding residue cannot linger.
            self.cal_conf_sum[self.cal_count == 0] = 0.0
            if self.cal_count.sum() == 0:
                self.log_loss_sum = self.brier_sum = 0.0
            if self.est_acc_n == 0:
                self.est_acc_sum = 0.0

    def merge(self, other: ClassificationAccumulator) -> None:
        """Add ``other`` into ``self`` (in place)."""
        self._combine(other, 1)

    def subtract(self, other: ClassificationAccumulator) -> None:
        """Remove ``other`` (previously merged in) from ``self``; raises if counts go negative."""
        self._combine(other, -1)

    def __iadd__(self, other: ClassificationAccumulator) -> ClassificationAccumulator:
        self.merge(other)
        return self

    def __isub__(self, other: ClassificationAccumulator) -> ClassificationAccumulator:
        self.subtract(other)
        return self

    def clear(self) -> None:
        self.__post_init__()
        self.log_loss_sum = self.brier_sum = self.est_acc_sum = 0.0
        self.predictions = self.est_acc_n = 0

    def copy(self) -> ClassificationAccumulator:
        return ClassificationAccumulator.from_state(self.to_state())

    def to_state(self) -> dict[str, Any]:
        """Plain dict of ints, floats and lists (JSON-ready; floats round-trip exactly)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ClassificationAccumulator:
        acc = cls(
            int(state["n_classes"]),
            int(state["positive"]),
            int(state["score_bins"]),
            int(state["calibration_bins"]),
        )
        for name in _CLS_ARRAYS:
            old = getattr(acc, name)
            new = np.asarray(state[name], dtype=old.dtype).reshape(old.shape)
            setattr(acc, name, new)
        acc.log_loss_sum = float(state["log_loss_sum"])
        acc.brier_sum = float(state["brier_sum"])
        acc.est_acc_sum = float(state["est_acc_sum"])
        acc.predictions = int(state["predictions"])
        acc.est_acc_n = int(state["est_acc_n"])
        return acc


_CLS_ARRAYS = ("confusion", "score_hist", "cal_count", "cal_conf_sum", "cal_correct")


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


@dataclass(eq=False)
class RegressionAccumulator:
    """Error sums for regression metrics.

    ``sum_abs_pct_err`` and ``n_pct`` cover only pairs with a nonzero target (a percentage
    error of a zero target is undefined; scikit-learn instead divides by machine epsilon and
    reports astronomically large values).

    Examples
    --------
    >>> acc = RegressionAccumulator()
    >>> acc.add([1.0, 2.0, 0.0], [1.5, 2.0, -1.0])
    >>> acc.n, acc.sum_abs_err, acc.sum_sq_err, acc.sum_abs_pct_err, acc.n_pct
    (3, 1.5, 1.25, 0.5, 2)
    """

    n: int = 0
    sum_abs_err: float = 0.0
    sum_sq_err: float = 0.0
    sum_abs_pct_err: float = 0.0
    n_pct: int = 0
    predictions: int = 0  # every prediction passed to add_predictions

    @property
    def labels(self) -> int:
        return self.n

    def add_predictions(self, y_pred: npt.ArrayLike) -> None:
        """Count predictions when they arrive, labelled or not."""
        self.predictions += int(np.asarray(y_pred).size)

    def add(self, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> None:
        """Add a batch of joined (target, prediction) pairs; all values must be finite."""
        t = np.asarray(y_true, dtype=np.float64)
        p = np.asarray(y_pred, dtype=np.float64)
        if t.ndim != 1 or t.shape != p.shape:
            raise ValueError("y_true and y_pred must be 1-D of the same length")
        if not (np.isfinite(t).all() and np.isfinite(p).all()):
            raise ValueError("regression targets and predictions must be finite")
        nz = t != 0.0
        # Finite but extreme values (1e200, or a target of 5e-324) overflow to inf: the honest
        # error, shown while their pane is in the window (see AccumulatorRing._drop after).
        with np.errstate(over="ignore"):
            err = np.abs(t - p)
            total = float(err.sum())
            sq, pct = float(np.square(err).sum()), float((err[nz] / np.abs(t[nz])).sum())
        self.n += int(t.size)
        self.sum_abs_err += total
        self.sum_sq_err += sq
        self.sum_abs_pct_err += pct
        self.n_pct += int(nz.sum())

    def _combine(self, other: RegressionAccumulator, sign: int) -> None:
        n, n_pct, preds = (
            self.n + sign * other.n,
            self.n_pct + sign * other.n_pct,
            self.predictions + sign * other.predictions,
        )
        if min(n, n_pct, preds) < 0:
            raise ValueError("subtracting more than was added")
        self.n, self.n_pct, self.predictions = n, n_pct, preds
        # Snap sums whose count fell to zero, so rounding residue cannot linger.
        self.sum_abs_err = self.sum_abs_err + sign * other.sum_abs_err if n else 0.0
        self.sum_sq_err = self.sum_sq_err + sign * other.sum_sq_err if n else 0.0
        self.sum_abs_pct_err = self.sum_abs_pct_err + sign * other.sum_abs_pct_err if n_pct else 0.0

    def merge(self, other: RegressionAccumulator) -> None:
        """Add ``other`` into ``self`` (in place)."""
        self._combine(other, 1)

    def subtract(self, other: RegressionAccumulator) -> None:
        """Remove ``other`` (previously merged in) from ``self``; raises if counts go negative."""
        self._combine(other, -1)

    def __iadd__(self, other: RegressionAccumulator) -> RegressionAccumulator:
        self.merge(other)
        return self

    def __isub__(self, other: RegressionAccumulator) -> RegressionAccumulator:
        self.subtract(other)
        return self

    def clear(self) -> None:
        self.subtract(self.copy())

    def copy(self) -> RegressionAccumulator:
        return RegressionAccumulator.from_state(self.to_state())

    def to_state(self) -> dict[str, Any]:
        """Plain dict of ints and floats (JSON-ready)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RegressionAccumulator:
        return cls(
            n=int(state["n"]),
            sum_abs_err=float(state["sum_abs_err"]),
            sum_sq_err=float(state["sum_sq_err"]),
            sum_abs_pct_err=float(state["sum_abs_pct_err"]),
            n_pct=int(state["n_pct"]),
            predictions=int(state["predictions"]),
        )
