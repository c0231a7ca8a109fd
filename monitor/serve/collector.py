"""The statistics as Prometheus metric families, built at scrape time.

Pull, not push: :class:`SnapshotCollector` builds the statistic families at scrape time from the
latest immutable :class:`~monitor.snapshot.Snapshot` (swapped whole by the evaluator), so a
scrape never sees half an evaluation. A window below ``min_samples`` exports no statistics at
all: dashboards show a gap, not a false calm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.snapshot import Snapshot

# (metric suffix, help, FeatureDrift attribute)
_FEATURE_METRICS = (
    ("feature_psi", "Population stability index of the feature vs the reference.", "psi"),
    (
        "feature_ks_statistic",
        "Binned two-sample KS statistic (lower bound of exact).",
        "ks_statistic",
    ),
    (
        "feature_ks_pvalue",
        "Two-sample KS p-value (asymptotic Kolmogorov distribution).",
        "ks_pvalue",
    ),
    (
        "feature_chi2_pvalue",
        "Chi-square p-value of window vs reference bin frequencies.",
        "chi2_pvalue",
    ),
    (
        "feature_js_distance",
        "Jensen-Shannon distance (base 2) of categorical frequencies vs the reference.",
        "js_distance",
    ),
)
# (window metric suffix, reference metric suffix, help, FeatureQuality attribute): the
# window's ratio, and the reference's own, so rules can alert on the excess over it.
_QUALITY_METRICS = (
    (
        "feature_missing_ratio",
        "feature_reference_missing_ratio",
        "Share of the feature's values absent or null.",
        "missing",
    ),
    (
        "feature_out_of_range_ratio",
        "feature_reference_out_of_range_ratio",
        "Share of the numeric feature's values outside the reference's [min, max].",
        "out_of_range",
    ),
    (
        "feature_unseen_ratio",
        "feature_reference_unseen_ratio",
        "Share of the categorical feature's values outside the reference's categories.",
        "unseen",
    ),
    (
        "feature_type_mismatch_ratio",
        "feature_reference_type_mismatch_ratio",
        "Share of the feature's values of the wrong JSON type (counted as missing for drift).",
        "type_mismatch",
    ),
)
# (metric name, help, key in WindowResult.performance)
PERFORMANCE_METRICS = (
    ("modelmon_accuracy_ratio", "Accuracy on labelled predictions.", "accuracy"),
    (
        "modelmon_precision_ratio",
        "Precision (positive class, or macro for multiclass).",
        "precision",
    ),
    ("modelmon_recall_ratio", "Recall (positive class, or macro for multiclass).", "recall"),
    ("modelmon_f1_ratio", "F1 (positive class, or macro for multiclass).", "f1"),
    ("modelmon_roc_auc_ratio", "ROC AUC from binned score histograms.", "roc_auc"),
    ("modelmon_log_loss", "Mean log loss of labelled predictions.", "log_loss"),
    ("modelmon_brier_score", "Brier score of labelled predictions.", "brier"),
    ("modelmon_mean_absolute_error", "Mean absolute error (regression).", "mae"),
    ("modelmon_root_mean_squared_error", "Root mean squared error (regression).", "rmse"),
    (
        "modelmon_mean_absolute_percentage_error_ratio",
        "Mean absolute percentage error, zero targets skipped (regression).",
        "mape",
    ),
    (
        "modelmon_estimated_accuracy_ratio",
        "Label-free accuracy estimate from scores.",
        "estimated_accuracy",
    ),
    ("modelmon_estimation_error_ratio", "Estimated minus realised accuracy.", "estimation_error"),
    ("modelmon_calibration_error_ratio", "Expected calibration error.", "ece"),
    (
        "modelmon_label_coverage_ratio",
        "Share of the window's predictions with a label.",
        "label_coverage",
    ),
)


def _ok(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


class SnapshotCollector(Collector):
    """Statistic families from the latest snapshot, rebuilt on every scrape."""

    def __init__(self, latest: Callable[[], Snapshot | None]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self._latest()
        if snap is None:
            return
        fam = {
            suffix: GaugeMetricFamily(
                f"modelmon_{suffix}", doc, labels=["model", "window", "feature"]
            )
            for suffix, doc, _ in _FEATURE_METRICS
        }
        for suffix, ref_suffix, doc, _ in _QUALITY_METRICS:
            for name, what in ((suffix, doc), (ref_suffix, f"In the reference: {doc}")):
                fam[name] = GaugeMetricFamily(
                    f"modelmon_{name}", what, labels=["model", "window", "feature"]
                )
        detected = GaugeMetricFamily(
            "modelmon_feature_drift_detected",
            "1 when the feature's test is significant after the multiple-testing correction "
            "and its effect size (KS D or JS distance) reaches the policy's floor.",
            labels=["model", "window", "feature"],
        )
        mw = ["model", "window"]
        pred_psi = GaugeMetricFamily(
            "modelmon_prediction_psi", "PSI of the prediction/score distribution.", labels=mw
        )
        n_pred = GaugeMetricFamily(
            "modelmon_window_predictions", "Predictions in the window.", labels=mw
        )
        n_lab = GaugeMetricFamily(
            "modelmon_window_labels", "Labelled predictions in the window.", labels=mw
        )
        perf = {
            key: GaugeMetricFamily(name, doc, labels=mw) for name, doc, key in PERFORMANCE_METRICS
        }
        degraded = GaugeMetricFamily(
            "modelmon_degraded", "1 while the model is in the degraded state.", labels=["model"]
        )
        last_eval = GaugeMetricFamily(
            "modelmon_last_evaluation_timestamp_seconds",
            "Wall-clock time of the model's last evaluation.",
            labels=["model"],
        )
        breaches = GaugeMetricFamily(
            "modelmon_policy_breaches",
            "Breaching evaluations counted toward firing, per rule.",
            labels=["model", "rule"],
        )
        ref_ready = GaugeMetricFamily(
            "modelmon_reference_ready",
            "1 once the model's reference profile is loaded or bootstrapped.",
            labels=["model"],
        )
        for m in snap.models:
            degraded.add_metric([m.model], float(m.degraded))
            last_eval.add_metric([m.model], m.evaluated_at)
            ref_ready.add_metric([m.model], float(m.reference_ready))
            for rule, count in sorted(m.breaches.items()):
                breaches.add_metric([m.model, rule], count)
            for w in m.windows:
                lv = [m.model, w.window]
                n_pred.add_metric(lv, w.predictions)
                n_lab.add_metric(lv, w.labels)
                if not w.enough_samples:
                    continue
                if _ok(w.prediction_psi):
                    pred_psi.add_metric(lv, w.prediction_psi)  # type: ignore[arg-type]
                for key, value in w.performance.items():
                    if key in perf and _ok(value):
                        perf[key].add_metric(lv, value)
                for f in w.features:
                    lf = [*lv, f.feature]
                    for suffix, _, attr in _FEATURE_METRICS:
                        value = getattr(f, attr)
                        if _ok(value):
                            fam[suffix].add_metric(lf, value)
                    for suffix, ref_suffix, _, attr in _QUALITY_METRICS:
                        for name, q in ((suffix, f.quality), (ref_suffix, f.reference_quality)):
                            ratio = None if q is None else getattr(q, attr)
                            if ratio is not None and _ok(ratio):
                                fam[name].add_metric(lf, ratio)
                    detected.add_metric(lf, float(f.drift_detected))
        yield from fam.values()
        yield from (detected, pred_psi, n_pred, n_lab, *perf.values(), degraded, last_eval)
        yield ref_ready
        yield breaches
