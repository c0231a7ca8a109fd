"""Macro metrics on a hand-made confusion matrix where every class sits at a boundary."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm  # type: ignore[import-untyped]

from monitor.stats.accumulators import RegressionAccumulator
from monitor.stats.performance import macro_precision_recall_f1, performance_snapshot


def test_macro_metrics_at_single_counts_match_sklearn() -> None:
    # class 0: 2 labels, 2 predictions, 1 hit   class 1: 3 / 3 / 2
    # class 2: labelled once, never predicted   class 3: predicted once, never labelled
    # class 4: labelled and predicted once      class 5: absent (left out of the means)
    y_true = [0, 0, 1, 1, 1, 2, 4]
    y_pred = [0, 1, 1, 1, 0, 3, 4]
    confusion = np.zeros((6, 6), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    p, r, f, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    assert macro_precision_recall_f1(confusion) == pytest.approx((p, r, f), rel=1e-12)
    # by hand: precision (1/2 + 2/3 + 0 + 0 + 1) / 5, recall (1/2 + 2/3 + 0 + 0 + 1) / 5
    assert p == pytest.approx((0.5 + 2 / 3 + 1) / 5)


def test_regression_snapshot_counts_predictions_and_labels() -> None:
    acc = RegressionAccumulator()
    acc.add_predictions([1.0, 2.0, 3.0, 4.0])
    acc.add([1.0], [3.0])
    snap = performance_snapshot(acc)
    assert (snap.labels, snap.predictions, snap.label_coverage) == (1, 4, 0.25)
    assert (snap.mae, snap.rmse, snap.mape) == (2.0, 2.0, 2.0)
