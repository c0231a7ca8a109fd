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

    def _values(self, raws: Sequence[Any]) -> npt.NDArray[np.float64]:
        """:meth:`_value` of each, computed once per distinct value (a batch has few)."""
        n = len(raws)
        types = set(map(type, raws))
        if self.task == "regression" and types <= {float, int}:
            y = np.array(raws, dtype=np.float64)
            y[~np.isfinite(y)] = NAN
            return y
        # A table keyed by value is exact while equal values have one key: strings, None and
        # one number type (2**53 == 2.0**53, but they are spelled apart). A NaN is looked up
        # by identity, so each keeps its own (equal) encoding.
        if len(numbers := types - {str, type(None)}) <= 1 and numbers <= {int, float, bool}:
            table = {raw: self._value(raw) for raw in set(raws)}
            return np.fromiter(map(table.__getitem__, raws), dtype=np.float64, count=n)
        return np.fromiter(map(self._value, raws), dtype=np.float64, count=n)

    def predictions(
        self, values: Sequence[Any], scores: Sequence[float | dict[str, float] | None]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
        """``(y_pred, proba)`` of each prediction value and score; a binary prediction without
        a value uses ``score >= 0.5``."""
        n = len(values)
        y = self._values(values)
        proba = np.full((n, self.proba_width), np.nan, dtype=np.float32)
        if self.task == "binary_classification":
            if set(map(type, scores)) <= {float}:
                score = np.array(scores, dtype=np.float64)
            else:
                score = np.array(
                    [s if isinstance(s, float) else NAN for s in scores], dtype=np.float64
                )
            proba[:, 0] = score
            if None in values:
                unvalued = np.fromiter((v is None for v in values), dtype=bool, count=n)
                unvalued &= ~np.isnan(score)
                y[unvalued] = score[unvalued] >= 0.5
        elif self.task == "multiclass_classification":
            for i, (value, s) in enumerate(zip(values, scores, strict=True)):
                if isinstance(s, dict):
                    row = [s.get(c, NAN) for c in self.classes]
                    proba[i] = row
                    if value is None and not any(math.isnan(v) for v in row):
                        y[i] = float(np.argmax(row))
        return y, proba

    def labels(self, values: Sequence[Any]) -> npt.NDArray[np.float64]:
        """Each label value encoded (NaN: unusable)."""
        return self._values(values)
