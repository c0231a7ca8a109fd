"""A pipeline over one churn model and the raw records it reads: the data of the route-guard
and label-time tests. ``churn_settings`` is registered for the suite by ``tests/conftest.py``."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.events import RawRecord
from monitor.ingest.route import Pipeline
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import Settings
from monitor.settings_loader import load_settings
from monitor.state.model_state import ModelState
from tests.support.fault_oracle import CATEGORIES, FEATURES, save_reference

NOW = 1_796_000_000.0
T0 = NOW - 3600


@pytest.fixture
def churn_settings(tmp_path: Any) -> Settings:
    """One churn model (the fault oracle's features) on topics ``p`` and ``l``."""
    save_reference(tmp_path / "churn.json")
    return load_settings(
        None,
        overrides={
            "kafka": {"predictions_topic": "p", "labels_topic": "l"},
            "models": [
                {
                    "name": "churn",
                    "reference": str(tmp_path / "churn.json"),
                    "features": FEATURES,
                    "windows": [{"name": "1h", "length": "1h", "pane": "1m"}],
                }
            ],
        },
    )


def pipeline(settings: Settings) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    states = {m.name: ModelState(m, _reference(m.reference)) for m in settings.models}
    return Pipeline(settings, states, OpsMetrics(registry), wall=lambda: NOW), registry


def _reference(path: Any) -> Any:
    from monitor.reference.profile import ReferenceProfile

    return ReferenceProfile.load(path)


def record(i: int, topic: str = "p", **over: object) -> RawRecord:
    event: dict[str, object] = {
        "id": f"p{i}",
        "model": "churn",
        "timestamp": T0 + i,
        "features": {"x": 0.1 * i, "c": CATEGORIES[i % 4]},
        "prediction": i % 2,
        "score": 0.25 + 0.5 * (i % 2),
    }
    event.update(over)
    return RawRecord(topic, 0, i, T0, None, orjson.dumps(event))
