"""Task-specific encoding of predictions, scores and labels into numeric columns.

Binary: class 1 is the configured positive class, anything else is 0; the score is the
positive-class probability. Multiclass: the index of the class in ``classes``; scores are one
column per class. Regression: the value itself. Rows that cannot be encoded (an unknown class,
a non-numeric regression value) come out as NaN and are skipped, and counted, by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.events import Label, Prediction
from monitor.settings import ModelSettings
from monitor.vocabulary import canonical_key

NAN = float("nan")


class TargetEncoder:
    """Encodes one model's predictions and labels for the performance accumulators."""

    def __init__(self, cfg: ModelSettings) -> None:
        self.task = cfg.task
        self._positive = canonical_key(cfg.positive_class)
        self.classes = [k for c in cfg.classes or [] if (k := canonical_key(c)) is not None]
        self._index = {c: float(i) for i, c in enumerate(self.classes)}

    @property
    def n_classes(self) -> int:
        return 2 if self.task == "binary_classification" else len(self.classes)

    @property
    def proba_width(self) -> int:
        return {"binary_classification": 1, "regression": 0}.get(self.task, len(self.classes))

    def _value(self, raw: Any) -> float:
        if self.task == "regression":
            if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
                return float(raw)
            return NAN
        key = canonical_key(raw)
        if key is None:  # missing
            return NAN
        if self.task == "binary_classification":
            return 1.0 if key == self._positive else 0.0
        return self._index.get(key, NAN)

    def predictions(
        self, preds: Sequence[Prediction]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
        """``(y_pred, proba)``; a binary prediction without a value uses ``score >= 0.5``."""
        y = np.empty(len(preds), dtype=np.float64)
        proba = np.full((len(preds), self.proba_width), np.nan, dtype=np.float32)
        for i, p in enumerate(preds):
            y[i] = self._value(p.prediction)
            if self.task == "binary_classification" and isinstance(p.score, float):
                proba[i, 0] = p.score
                if p.prediction is None:
                    y[i] = 1.0 if p.score >= 0.5 else 0.0
            elif self.task == "multiclass_classification" and isinstance(p.score, dict):
                row = [p.score.get(c, NAN) for c in self.classes]
                proba[i] = row
                if p.prediction is None and not any(math.isnan(v) for v in row):
                    y[i] = float(np.argmax(row))
        return y, proba

    def labels(self, labels: Sequence[Label]) -> npt.NDArray[np.float64]:
        return np.fromiter(
            (self._value(lab.label) for lab in labels), dtype=np.float64, count=len(labels)
        )
