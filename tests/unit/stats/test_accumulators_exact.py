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
    with pytest.raises(ValueError, match=r"^subtracting more than was added$"):
        zero_target.subtract(nonzero_target)  # n stays 0, n_pct would be -1
    predicted = RegressionAccumulator()
    predicted.add_predictions([1.0])
    with pytest.raises(ValueError, match=r"^subtracting more than was added$"):
        RegressionAccumulator().subtract(predicted)  # only predictions would go negative


def test_regression_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match=r"^y_true and y_pred must be 1-D of the same length$"):
        RegressionAccumulator().add([[1.0, 2.0]], [[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"^y_true and y_pred must be 1-D of the same length$"):
        RegressionAccumulator().add([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match=r"^regression targets and predictions must be finite$"):
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


def test_classification_adds_accumulate() -> None:
    acc = ClassificationAccumulator(2, calibration_bins=2, score_bins=2)
    acc.add([1, 0], [1, 1], [0.75, 0.75])  # confidence 0.75 both, one correct
    acc.add([0], [0], [0.25])  # confidence 0.75, correct
    assert acc.confusion.tolist() == [[1, 1], [0, 1]]
    assert acc.score_hist.tolist() == [[1, 1], [0, 1]]  # negatives at 0.25 and 0.75
    assert acc.brier_sum == 0.0625 + 0.5625 + 0.0625
    assert (acc.cal_count.tolist(), acc.cal_correct.tolist()) == ([0, 3], [0, 2])
    assert acc.cal_conf_sum.tolist() == [0.0, 2.25]
    multi = ClassificationAccumulator(3)
    multi.add([0], [0], [[0.5, 0.5, 0.0]])  # (0.5 - 1)^2 + 0.5^2
    multi.add([2], [2], [[0.0, 0.0, 1.0]])  # 0
    assert multi.brier_sum == 0.5
    assert multi.confusion.trace() == 2


def test_log_loss_clips_a_certain_correct_score_below_one() -> None:
    acc = ClassificationAccumulator(2)
    acc.add([1], [1], [1.0])
    assert acc.log_loss_sum == -math.log(1.0 - 1e-15) > 0.0
    with pytest.raises(ValueError, match=r"^y_true and y_pred must have the same length$"):
        acc.add([1, 0], [1])


def test_classification_prediction_counts_accumulate() -> None:
    acc = ClassificationAccumulator(2)
    acc.add_predictions([1, 0], [0.75, 0.25])  # confidence 0.75 each
    acc.add_predictions([1, 1, 1], [0.5, np.nan, 1.0])  # 0.5, no score, 1.0
    assert (acc.predictions, acc.est_acc_n, acc.est_acc_sum) == (5, 4, 3.0)
    with pytest.raises(ValueError, match=r"^y_pred must be class indices in \[0, 2\)$"):
        acc.add_predictions([2])


def test_binary_pairs_without_scores_count_only_in_the_confusion_matrix() -> None:
    acc = ClassificationAccumulator(2)
    acc.add([1, 0, 1], [1, 1, 0])
    assert acc.confusion.tolist() == [[0, 1], [1, 1]]
    assert (acc.score_hist.sum(), acc.cal_count.sum(), acc.brier_sum) == (0, 0, 0.0)


def test_removing_a_pane_keeps_the_sums_of_the_rows_left() -> None:
    # one labelled, scored row left (its count is 1, not 0): its sums must not be snapped away
    window, pane = ClassificationAccumulator(2), ClassificationAccumulator(2)
    window.add([1], [1], [0.75])
    window.add_predictions([1], [0.75])
    pane.add([0], [1], [0.5])
    pane.add_predictions([1], [0.5])
    window.merge(pane)
    window.subtract(pane)
    assert window.brier_sum == 0.0625
    assert window.log_loss_sum == pytest.approx(-math.log(0.75), rel=1e-15)
    assert (window.est_acc_n, window.est_acc_sum) == (1, 0.75)
    with pytest.raises(ValueError, match=r"^subtracting more than was added$"):
        window.subtract(pane)


def test_classification_layout_and_limits() -> None:
    binary = ClassificationAccumulator(2, score_bins=1, calibration_bins=1)
    multi = ClassificationAccumulator(3, score_bins=5, calibration_bins=4)
    assert (binary.score_hist.shape, multi.score_hist.shape) == ((2, 1), (0, 5))
    for acc in (binary, multi):
        assert acc.confusion.dtype == acc.score_hist.dtype == np.int64
        assert acc.cal_count.dtype == acc.cal_correct.dtype == np.int64
        assert acc.cal_conf_sum.dtype == np.float64
    assert multi.cal_count.shape == multi.cal_conf_sum.shape == multi.cal_correct.shape == (4,)
    message = r"^need n_classes >= 2 and at least one score and calibration bin$"
    for bad in ({"n_classes": 1}, {"score_bins": 0}, {"calibration_bins": 0}):
        with pytest.raises(ValueError, match=message):
            ClassificationAccumulator(**{"n_classes": 2, **bad})
    with pytest.raises(ValueError, match=r"^positive must be 0 or 1 for a binary task$"):
        ClassificationAccumulator(2, positive=2)


def test_class_indices_may_come_as_floats_and_scores_as_float32() -> None:
    acc = ClassificationAccumulator(2)
    acc.add(np.array([1.0, 0.0]), np.array([1.0, 1.0]))  # the join keeps predictions as float64
    assert acc.confusion.tolist() == [[0, 1], [0, 1]]
    p32 = np.array([0.1], dtype=np.float32)  # the join keeps scores as float32
    acc.add([0], [0], p32)
    assert acc.brier_sum == float(p32[0]) ** 2  # summed in float64
    with pytest.raises(ValueError, match=r"^y_true must be 1-D, got shape \(1, 2\)$"):
        acc.add([[0, 1]], [0, 1])
    with pytest.raises(ValueError, match=r"^probabilities must lie in \[0, 1\]$"):
        acc.add([0], [0], [1.5])
