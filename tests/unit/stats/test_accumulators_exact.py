"""Accumulators on hand-computed cases: repeated adds, the merge operators, removal to empty,
restore with non-default geometry, and the checks on their input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.stats.accumulators import ClassificationAccumulator, RegressionAccumulator

# --- regression -----------------------------------------------------------------------------


def test_regression_adds_accumulate() -> None:
    acc = RegressionAccumulator()
    acc.add([1.0, 2.0], [1.5, 2.0])  # |err| 0.5, 0     pct 0.5, 0
    acc.add([0.0, -4.0], [1.0, -3.0])  # |err| 1, 1     pct -, 0.25
    acc.add_predictions([1.0, 2.0, 3.0])
    acc.add_predictions([4.0])
    assert (acc.n, acc.n_pct, acc.predictions) == (4, 3, 4)
    assert acc.sum_abs_err == 2.5
    assert acc.sum_sq_err == 2.25
    assert acc.sum_abs_pct_err == 0.75


def test_regression_integers_of_any_size_are_taken_as_floats() -> None:
    acc = RegressionAccumulator()
    acc.add([2**70], [0])
    acc.add([0], [2**70])
    assert acc.sum_abs_err == 2.0 * 2.0**70
    assert acc.sum_sq_err == 2.0 * 2.0**140


def test_regression_operators_merge_and_subtract() -> None:
    a, b = RegressionAccumulator(), RegressionAccumulator()
    a.add([1.0], [3.0])
    b.add([2.0], [2.5])
    b.add_predictions([2.5, 9.0])
    a += b
    assert (a.n, a.n_pct, a.predictions, a.sum_abs_err, a.sum_sq_err) == (2, 2, 2, 2.5, 4.25)
    a -= b
    assert (a.n, a.n_pct, a.predictions, a.sum_abs_err, a.sum_sq_err) == (1, 1, 0, 2.0, 4.0)


def test_regression_emptied_window_has_exactly_zero_sums() -> None:
    # (a + b) - a differs from b by rounding in all three sums; back at n == 0 they must be 0.
    a, b, window = RegressionAccumulator(), RegressionAccumulator(), RegressionAccumulator()
    a.add([1.0], [0.1])
    b.add([1.0], [0.3])
    window.merge(a)
    window.merge(b)
    window.subtract(a)
    window.subtract(b)
    assert window.to_state() == RegressionAccumulator().to_state()


def test_regression_subtract_checks_every_count() -> None:
    zero_target, nonzero_target = RegressionAccumulator(), RegressionAccumulator()
    zero_target.add([0.0], [1.0])
    nonzero_target.add([2.0], [1.0])
    with pytest.raises(ValueError, match="subtracting more than was added"):
        zero_target.subtract(nonzero_target)  # n stays 0, n_pct would be -1
    predicted = RegressionAccumulator()
    predicted.add_predictions([1.0])
    with pytest.raises(ValueError, match="subtracting more than was added"):
        RegressionAccumulator().subtract(predicted)  # only predictions would go negative


def test_regression_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match="y_true and y_pred must be 1-D of the same length"):
        RegressionAccumulator().add([[1.0, 2.0]], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="y_true and y_pred must be 1-D of the same length"):
        RegressionAccumulator().add([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="regression targets and predictions must be finite"):
        RegressionAccumulator().add([1.0], [math.inf])


# --- classification -------------------------------------------------------------------------


def test_classification_state_keeps_non_default_geometry_and_dtypes() -> None:
    acc = ClassificationAccumulator(2, positive=0, score_bins=7, calibration_bins=4)
    acc.add([0, 1, 0], [0, 0, 1], [0.9, 0.6, 0.2])
    state = acc.to_state()
    state["cal_conf_sum"] = [int(v) for v in state["cal_conf_sum"]]  # as a JSON writer may
    restored = ClassificationAccumulator.from_state(state)
    assert (restored.positive, restored.score_bins, restored.calibration_bins) == (0, 7, 4)
    assert restored.cal_conf_sum.dtype == np.float64
    restored.add([1], [1], [0.3])  # float weights add into the float sums
    assert restored.cal_conf_sum.sum() == pytest.approx(int(sum(state["cal_conf_sum"])) + 0.7)
