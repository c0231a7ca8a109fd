"""Operational metrics: every configured model has its series from the start, at zero."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.devkit.synthetic import features_of
from monitor.ingest.route import Pipeline
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings_loader import load_settings
from monitor.state.model_state import ModelState


def test_configured_models_export_zero_series_before_any_event() -> None:
    """Dashboards and rate() see 0, not "no data", for a model that has had no late events."""
    settings = load_settings(
        None,
        overrides={
            "models": [
                {"name": m, "features": features_of(m), "reference": {"bootstrap_events": 500}}
                for m in ("fraud", "demand")
            ]
        },
    )
    registry = CollectorRegistry()
    states = {m.name: ModelState(m) for m in settings.models}
    Pipeline(settings, states, OpsMetrics(registry))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    for model in ("fraud", "demand"):
        for stream in ("predictions", "labels"):
            for name in (
                "modelmon_events_total",
                "modelmon_late_events_total",
                "modelmon_duplicate_events_total",
            ):
                assert value(name, model=model, stream=stream) == 0.0, (name, model, stream)
        for name in (
            "modelmon_orphan_labels_total",
            "modelmon_evicted_predictions_total",
            "modelmon_unlabelled_predictions_total",
            "modelmon_unusable_labels_total",
            "modelmon_unknown_features_total",
            "modelmon_pending_predictions",
        ):
            assert value(name, model=model) == 0.0, (name, model)
    # nothing for models that are not configured: cardinality stays bounded
    assert value("modelmon_events_total", model="other", stream="predictions") is None
