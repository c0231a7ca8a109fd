"""Performance accumulators and metrics: against scikit-learn, merge algebra, calibration."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm  # type: ignore[import-untyped]

from monitor.stats.accumulators import ClassificationAccumulator, RegressionAccumulator
from monitor.stats.performance import (
    accuracy,
    brier,
    estimated_accuracy,
    estimation_error,
    expected_calibration_error,
    log_loss,
    macro_precision_recall_f1,
    performance_snapshot,
    precision_recall_f1,
    regression_metrics,
    roc_auc_binned,
    roc_auc_binning_bound,
)

Acc = ClassificationAccumulator | RegressionAccumulator
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def binary_data(seed: int, n: int) -> tuple[IntArray, FloatArray]:
    """Calibrated scores: p ~ Beta(2, 2), y ~ Bernoulli(p)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2.0, 2.0, n)
    y = (rng.random(n) < p).astype(np.int64)
    return y, p


def multiclass_data(seed: int, n: int, k: int) -> tuple[IntArray, FloatArray]:
    """Calibrated scores: p ~ Dirichlet(1), y ~ Categorical(p)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k), n)
    y = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1).clip(0, k - 1)
    return y.astype(np.int64), p


def assert_same(a: Acc, b: Acc) -> None:
    """Integer counts exactly equal, float sums within 1e-9."""
    sa, sb = a.to_state(), b.to_state()
    assert sa.keys() == sb.keys()
    for key, va in sa.items():
        arr_a, arr_b = np.asarray(va), np.asarray(sb[key])
        if arr_a.dtype.kind == "f" or arr_b.dtype.kind == "f":
            np.testing.assert_allclose(arr_a, arr_b, rtol=1e-9, atol=1e-9, err_msg=key)
        else:
            np.testing.assert_array_equal(arr_a, arr_b, err_msg=key)


# --- against scikit-learn ------------------------------------------------------------------


@pytest.mark.parametrize("positive", [1, 0])
def test_binary_metrics_match_sklearn(positive: int) -> None:
    y, p1 = binary_data(seed=1, n=5000)
    # Class `positive` is the positive class; proba is its probability.
    score = p1 if positive == 1 else 1.0 - p1
    y_pred = np.where(score >= 0.4, positive, 1 - positive)  # a threshold other than 0.5
    score_nan = score.copy()
    score_nan[::7] = np.nan  # every 7th row carries no score
    acc = ClassificationAccumulator(2, positive=positive)
    acc.add(y, y_pred, score_nan)
    s = ~np.isnan(score_nan)

    assert accuracy(acc.confusion) == pytest.approx(skm.accuracy_score(y, y_pred), abs=1e-12)
    np.testing.assert_array_equal(acc.confusion, skm.confusion_matrix(y, y_pred, labels=[0, 1]))
    prec, rec, f1, _ = skm.precision_recall_fscore_support(
        y, y_pred, pos_label=positive, average="binary"
    )
    assert precision_recall_f1(acc.confusion, positive) == pytest.approx((prec, rec, f1), abs=1e-12)
    # Score metrics use the scored rows only.
    proba_cols = np.column_stack([1.0 - score, score] if positive == 1 else [score, 1.0 - score])
    assert log_loss(acc) == pytest.approx(skm.log_loss(y[s], proba_cols[s]), abs=1e-9)
    assert brier(acc) == pytest.approx(
        skm.brier_score_loss(y[s], score[s], pos_label=positive), abs=1e-9
    )
    exact_auc = skm.roc_auc_score(y[s] == positive, score[s])
    pos, neg = acc.score_hist[positive], acc.score_hist[1 - positive]
    bound = roc_auc_binning_bound(pos, neg)
    assert abs(roc_auc_binned(pos, neg) - exact_auc) <= bound
    assert 0 < bound < 0.01  # the bound is not vacuous for 200 bins


def test_multiclass_metrics_match_sklearn() -> None:
    k = 6
    y, p5 = multiclass_data(seed=2, n=4000, k=5)
    proba = np.column_stack([p5, np.zeros(len(y))])  # class 5: no labels, no predictions
    y_pred = proba.argmax(axis=1)
    y_pred[y_pred == 3] = 0  # class 3: labels but never predicted (precision 0/0)
    y = np.where(y == 2, 1, y)  # class 2: predicted but never labelled (recall 0/0)
    acc = ClassificationAccumulator(k)
    acc.add(y, y_pred, proba)

    assert accuracy(acc.confusion) == pytest.approx(skm.accuracy_score(y, y_pred), abs=1e-12)
    expected = skm.precision_recall_fscore_support(y, y_pred, average="macro", zero_division=0)[:3]
    assert macro_precision_recall_f1(acc.confusion) == pytest.approx(expected, abs=1e-12)
    # The excluded class matters: averaging over all six classes would give a different answer.
    all_k = skm.f1_score(y, y_pred, average="macro", labels=range(k), zero_division=0)
    assert macro_precision_recall_f1(acc.confusion)[2] != pytest.approx(all_k, abs=1e-3)
    labels = list(range(k))
    assert log_loss(acc) == pytest.approx(skm.log_loss(y, proba, labels=labels), abs=1e-9)
    assert brier(acc) == pytest.approx(skm.brier_score_loss(y, proba, labels=labels), abs=1e-9)
    snap = performance_snapshot(acc)
    assert snap.roc_auc is None and snap.precision == pytest.approx(expected[0], abs=1e-12)


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10.0, 5.0, 3000)
    y[::10] = 0.0  # zero targets: skipped by MAPE only
    y_pred = y + rng.normal(0.0, 2.0, y.size)
    acc = RegressionAccumulator()
    acc.add(y, y_pred)
    mae, rmse, mape = regression_metrics(acc)
    nz = y != 0
    assert mae == pytest.approx(skm.mean_absolute_error(y, y_pred), abs=1e-9)
    assert rmse == pytest.approx(skm.root_mean_squared_error(y, y_pred), abs=1e-9)
    assert mape == pytest.approx(
        skm.mean_absolute_percentage_error(y[nz], y_pred[nz]), rel=1e-9, abs=1e-9
    )
    assert (acc.n, acc.n_pct) == (3000, 2700)


# --- binned ROC AUC ------------------------------------------------------------------------


def hist(scores: FloatArray, bins: int) -> IntArray:
    return np.bincount(np.minimum((scores * bins).astype(np.int64), bins - 1), minlength=bins)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("bins", [10, 200])
def test_binned_auc_within_documented_bound(seed: int, bins: int) -> None:
    rng = np.random.default_rng(seed)
    pos = rng.beta(3.0, 2.0, 800)
    neg = rng.beta(2.0, 3.0, 1200)
    exact = skm.roc_auc_score(np.r_[np.ones(800), np.zeros(1200)], np.r_[pos, neg])
    hp, hn = hist(pos, bins), hist(neg, bins)
    assert abs(roc_auc_binned(hp, hn) - exact) <= roc_auc_binning_bound(hp, hn) + 1e-12


def test_binned_auc_bound_is_attained_when_same_bin_pairs_are_ordered() -> None:
    # All in bin 0 of 200; every positive above every negative: exact 1, binned 1/2.
    hp, hn = hist(np.array([0.004, 0.0045]), 200), hist(np.array([0.001, 0.002, 0.003]), 200)
    assert roc_auc_binned(hp, hn) == 0.5
    assert roc_auc_binning_bound(hp, hn) == 0.5


def test_binned_auc_exact_on_bin_centres() -> None:
    rng = np.random.default_rng(4)
    bins = 10
    pos = (rng.integers(3, 10, 700) + 0.5) / bins
    neg = (rng.integers(0, 8, 900) + 0.5) / bins
    exact = skm.roc_auc_score(np.r_[np.ones(700), np.zeros(900)], np.r_[pos, neg])
    assert roc_auc_binning_bound(hist(pos, bins), hist(neg, bins)) > 0.01  # many shared bins
    assert roc_auc_binned(hist(pos, bins), hist(neg, bins)) == pytest.approx(exact, abs=1e-12)


def test_auc_undefined_without_both_classes() -> None:
    assert math.isnan(roc_auc_binned([0, 3], [0, 0]))
    assert math.isnan(roc_auc_binning_bound([0, 0], [1, 0]))


# --- merge algebra -------------------------------------------------------------------------


def batches(draw: st.DrawFn, n: int) -> tuple[list[slice], list[int]]:
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    edges = [0, *cuts, n]
    parts = [slice(a, b) for a, b in itertools.pairwise(edges)]
    order = draw(st.permutations(range(len(parts))))
    return parts, list(order)


@st.composite
def classification_split(draw: st.DrawFn) -> tuple[int, Any, list[slice], list[int]]:
    k = draw(st.sampled_from([2, 4]))
    n = draw(st.integers(0, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    if k == 2:
        y, p = binary_data(seed, n)
        y_pred = (p >= 0.5).astype(np.int64)
    else:
        y, p = multiclass_data(seed, n, k)
        y_pred = p.argmax(axis=1)
    p = p.copy()
    p[np.random.default_rng(seed).random(n) < 0.2] = np.nan  # some unscored rows
    return (k, (y, y_pred, p), *batches(draw, n))


@given(classification_split())
@settings(max_examples=60, deadline=None)
def test_classification_merge_of_any_split_equals_one_batch(
    case: tuple[int, Any, list[slice], list[int]],
) -> None:
    k, (y, y_pred, p), parts, order = case
    whole = ClassificationAccumulator(k)
    whole.add(y, y_pred, p)
    whole.add_predictions(y_pred, p)
    merged = ClassificationAccumulator(k)
    for i in order:  # panes fill in any order and merge in any order
        pane = ClassificationAccumulator(k)
        pane.add(y[parts[i]], y_pred[parts[i]], p[parts[i]])
        pane.add_predictions(y_pred[parts[i]], p[parts[i]])
        merged += pane
    assert_same(merged, whole)
    # Expiring a pane is subtraction: window minus the first pane == the other panes.
    first = ClassificationAccumulator(k)
    first.add(y[parts[0]], y_pred[parts[0]], p[parts[0]])
    first.add_predictions(y_pred[parts[0]], p[parts[0]])
    rest = ClassificationAccumulator(k)
    rest.add(y[parts[0].stop :], y_pred[parts[0].stop :], p[parts[0].stop :])
    rest.add_predictions(y_pred[parts[0].stop :], p[parts[0].stop :])
    merged -= first
    assert_same(merged, rest)


@given(st.integers(0, 2**32 - 1), st.integers(0, 200), st.data())
@settings(max_examples=60, deadline=None)
def test_regression_merge_of_any_split_equals_one_batch(seed: int, n: int, data: Any) -> None:
    rng = np.random.default_rng(seed)
    y = np.round(rng.normal(0.0, 3.0, n))  # many exact zeros
    y_pred = y + rng.normal(0.0, 1.0, n)
    parts, order = batches(data.draw, n)
    whole = RegressionAccumulator()
    whole.add(y, y_pred)
    whole.add_predictions(y_pred)
    merged = RegressionAccumulator()
    for i in order:
        pane = RegressionAccumulator()
        pane.add(y[parts[i]], y_pred[parts[i]])
        pane.add_predictions(y_pred[parts[i]])
        merged.merge(pane)
    assert_same(merged, whole)


@given(classification_split(), st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_merge_then_subtract_restores_the_original(
    case: tuple[int, Any, list[slice], list[int]], seed: int
) -> None:
    k, (y, y_pred, p), _, _ = case
    original = ClassificationAccumulator(k)
    original.add(y, y_pred, p)
    other = ClassificationAccumulator(k)
    y2, p2 = binary_data(seed, 50) if k == 2 else multiclass_data(seed, 50, k)
    other.add(y2, y2, p2)
    other.add_predictions(y2, p2)
    acc = original.copy()
    acc.merge(other)
    acc.subtract(other)
    assert_same(acc, original)


def test_subtracting_what_was_never_added_raises_and_changes_nothing() -> None:
    acc, other = ClassificationAccumulator(2), ClassificationAccumulator(2)
    acc.add([0, 1], [0, 1], [0.2, 0.9])
    other.add([1], [1], [0.9])
    other.add([1], [1], [0.9])
    before = acc.to_state()
    with pytest.raises(ValueError, match="subtracting more"):
        acc.subtract(other)
    assert acc.to_state() == before
    reg = RegressionAccumulator()
    with pytest.raises(ValueError, match="subtracting more"):
        reg.subtract(RegressionAccumulator(n=1, sum_abs_err=1.0))


def test_window_back_to_empty_has_exactly_zero_sums() -> None:
    y, p = binary_data(seed=5, n=1000)
    window, pane = ClassificationAccumulator(2), ClassificationAccumulator(2)
    pane.add(y, (p > 0.5).astype(int), p)
    pane.add_predictions((p > 0.5).astype(int), p)
    for _ in range(3):
        window.merge(pane)
    for _ in range(3):
        window.subtract(pane)
    assert window.to_state() == ClassificationAccumulator(2).to_state()
    assert performance_snapshot(window).metrics() == {}


def test_incompatible_accumulators_do_not_merge() -> None:
    with pytest.raises(ValueError, match="incompatible"):
        ClassificationAccumulator(2).merge(ClassificationAccumulator(2, positive=0))
    with pytest.raises(ValueError, match="incompatible"):
        ClassificationAccumulator(3).merge(ClassificationAccumulator(3, score_bins=100))


@pytest.mark.parametrize("k", [2, 3])
def test_state_round_trips_through_json_exactly(k: int) -> None:
    y, p = binary_data(6, 500) if k == 2 else multiclass_data(6, 500, k)
    acc = ClassificationAccumulator(k, score_bins=64)
    acc.add(y, y, p)
    acc.add_predictions(y, p)
    restored = ClassificationAccumulator.from_state(json.loads(json.dumps(acc.to_state())))
    assert restored.to_state() == acc.to_state()
    assert restored.confusion.dtype == np.int64 and restored.cal_conf_sum.dtype == np.float64
    reg = RegressionAccumulator()
    reg.add([1.0, 0.0], [0.5, 0.25])
    reg_state = json.loads(json.dumps(reg.to_state()))
    assert RegressionAccumulator.from_state(reg_state).to_state() == reg.to_state()


def test_memory_does_not_grow_with_traffic() -> None:
    acc = ClassificationAccumulator(3)
    sizes = {name: getattr(acc, name).nbytes for name in ("confusion", "cal_count", "score_hist")}
    y, p = multiclass_data(7, 20_000, 3)
    acc.add(y, p.argmax(axis=1), p)
    acc.add_predictions(p.argmax(axis=1), p)
    assert {name: getattr(acc, name).nbytes for name in sizes} == sizes
    assert len(json.dumps(acc.to_state())) < 10_000


def test_clear_and_copy() -> None:
    acc = ClassificationAccumulator(2)
    acc.add([1, 0], [1, 1], [0.7, 0.6])
    twin = acc.copy()
    acc.clear()
    assert acc.to_state() == ClassificationAccumulator(2).to_state()
    assert twin.labels == 2
    reg = RegressionAccumulator()
    reg.add([1.0], [2.0])
    reg.clear()
    assert reg.to_state() == RegressionAccumulator().to_state()


# --- calibration and label-free accuracy ---------------------------------------------------


def ece_reference(conf: FloatArray, correct: npt.NDArray[np.bool_], n_bins: int) -> float:
    """Textbook ECE on raw samples (Guo et al. 2017): per-bin |mean conf - accuracy|, weighted."""
    total = 0.0
    for b in range(n_bins):
        in_bin = np.minimum((conf * n_bins).astype(int), n_bins - 1) == b
        if in_bin.any():
            total += in_bin.mean() * abs(conf[in_bin].mean() - correct[in_bin].mean())
    return total


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_calibrated_binary_scores_estimate_accuracy(threshold: float) -> None:
    y, p = binary_data(seed=8, n=20_000)
    y_pred = (p >= threshold).astype(np.int64)
    acc = ClassificationAccumulator(2)
    acc.add_predictions(y_pred, p)
    acc.add(y, y_pred, p)
    conf = np.where(y_pred == 1, p, 1 - p)  # probability of the predicted class
    realised = accuracy(acc.confusion)
    se = math.sqrt(float((conf * (1 - conf)).sum())) / y.size
    assert abs(estimated_accuracy(acc) - realised) < 4 * se
    assert abs(estimation_error(acc)) < 4 * se
    ece = expected_calibration_error(acc)
    assert ece == pytest.approx(ece_reference(conf, y_pred == y, 15), abs=1e-12)
    assert ece < 0.02


def test_calibrated_multiclass_scores_estimate_accuracy() -> None:
    y, p = multiclass_data(seed=9, n=20_000, k=4)
    acc = ClassificationAccumulator(4)
    acc.add_predictions(p.argmax(axis=1), p)
    acc.add(y, p.argmax(axis=1), p)
    conf = p.max(axis=1)
    se = math.sqrt(float((conf * (1 - conf)).sum())) / y.size
    assert abs(estimated_accuracy(acc) - accuracy(acc.confusion)) < 4 * se
    assert expected_calibration_error(acc) < 0.02


def test_overconfident_scores_show_large_calibration_error() -> None:
    y, p = binary_data(seed=10, n=20_000)
    logit = np.log(p / (1 - p))
    sharp = 1.0 / (1.0 + np.exp(-4.0 * logit))  # same ranking, far too confident
    y_pred = (sharp >= 0.5).astype(np.int64)
    acc = ClassificationAccumulator(2)
    acc.add(y, y_pred, sharp)
    assert expected_calibration_error(acc) > 0.1
    assert estimation_error(acc) > 0.1  # optimistic
    conf = np.where(y_pred == 1, sharp, 1 - sharp)
    assert expected_calibration_error(acc) == pytest.approx(
        ece_reference(conf, y_pred == y, 15), abs=1e-12
    )


@given(classification_split())
@settings(max_examples=40, deadline=None)
def test_estimation_error_is_bounded_by_ece(case: tuple[int, Any, list[slice], list[int]]) -> None:
    k, (y, y_pred, p), _, _ = case
    acc = ClassificationAccumulator(k)
    acc.add(y, y_pred, p)
    if acc.cal_count.sum():
        assert abs(estimation_error(acc)) <= expected_calibration_error(acc) + 1e-12


def test_label_free_side_counts_every_prediction_once() -> None:
    acc = ClassificationAccumulator(2)
    acc.add_predictions([1, 0, 1], [0.9, np.nan, 0.3])  # unscored row: a prediction, no estimate
    acc.add([1], [1], [0.9])  # a label arrives: label-free sums untouched
    assert (acc.predictions, acc.est_acc_n, acc.labels) == (3, 2, 1)
    assert estimated_accuracy(acc) == pytest.approx((0.9 + 0.3) / 2)
    assert performance_snapshot(acc).label_coverage == pytest.approx(1 / 3)


# --- edge cases ----------------------------------------------------------------------------


def test_rows_without_scores_count_only_in_the_confusion_matrix() -> None:
    acc = ClassificationAccumulator(2)
    acc.add([1, 0, 1], [1, 0, 0], [0.8, np.nan, np.nan])
    assert acc.labels == 3 and int(acc.cal_count.sum()) == 1 and int(acc.score_hist.sum()) == 1
    assert log_loss(acc) == pytest.approx(-math.log(0.8))
    acc3 = ClassificationAccumulator(3)
    acc3.add([0, 1], [0, 1], [[0.5, 0.5, 0.0], [0.2, np.nan, 0.8]])  # one NaN voids the row
    assert int(acc3.cal_count.sum()) == 1
    no_scores = ClassificationAccumulator(3)
    no_scores.add([0, 1], [0, 2])
    assert math.isnan(log_loss(no_scores)) and accuracy(no_scores.confusion) == 0.5


def test_log_loss_clips_confident_mistakes() -> None:
    acc = ClassificationAccumulator(2)
    acc.add([1, 0], [0, 1], [0.0, 1.0])
    assert log_loss(acc) == pytest.approx(-math.log(1e-15))


def test_empty_and_undefined_metrics_are_nan_or_absent() -> None:
    empty = ClassificationAccumulator(2)
    assert math.isnan(accuracy(empty.confusion))
    assert all(math.isnan(v) for v in macro_precision_recall_f1(np.zeros((3, 3))))
    assert all(math.isnan(v) for v in regression_metrics(RegressionAccumulator()))
    for f in (log_loss, brier, expected_calibration_error, estimated_accuracy, estimation_error):
        assert math.isnan(f(empty))
    snap = performance_snapshot(empty)
    assert snap.metrics() == {} and (snap.labels, snap.predictions) == (0, 0)
    # Never predicted positive: precision undefined, recall and F1 are 0.
    prec, rec, f1 = precision_recall_f1([[5, 0], [2, 0]], positive=1)
    assert math.isnan(prec) and (rec, f1) == (0.0, 0.0)


def test_snapshot_fields_by_task() -> None:
    y, p = binary_data(seed=11, n=2000)
    acc = ClassificationAccumulator(2)
    acc.add_predictions((p >= 0.5).astype(int), p)
    acc.add(y, (p >= 0.5).astype(int), p)
    assert set(performance_snapshot(acc).metrics()) == {
        "label_coverage", "accuracy", "precision", "recall", "f1", "roc_auc", "roc_auc_bound",
        "log_loss", "brier", "ece", "estimated_accuracy", "estimation_error",
    }  # fmt: skip
    reg = RegressionAccumulator()
    reg.add([1.0, 2.0], [1.0, 3.0])
    snap = performance_snapshot(reg)
    assert set(snap.metrics()) == {"mae", "rmse", "mape"}  # no predictions counted: no coverage
    assert snap.labels == 2 and snap.accuracy is None


@pytest.mark.parametrize(
    ("y_true", "y_pred", "proba", "match"),
    [
        ([0, 2], [0, 1], None, "y_true must be class indices"),
        ([0, 1], [0, -1], None, "y_pred must be class indices"),
        ([0, 1], [0], None, "same length"),
        ([0, 1], [0, 1], [0.5], "shape"),
        ([0, 1], [0, 1], [0.5, 1.5], r"\[0, 1\]"),
    ],
)
def test_invalid_input_raises(
    y_true: list[int], y_pred: list[int], proba: list[float] | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        ClassificationAccumulator(2).add(y_true, y_pred, proba)


def test_invalid_configuration_and_regression_values_raise() -> None:
    with pytest.raises(ValueError, match="n_classes"):
        ClassificationAccumulator(1)
    with pytest.raises(ValueError, match="positive"):
        ClassificationAccumulator(2, positive=2)
    with pytest.raises(ValueError, match="finite"):
        RegressionAccumulator().add([1.0, math.nan], [1.0, 2.0])
