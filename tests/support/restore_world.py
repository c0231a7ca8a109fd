"""A checkpointed world for the restore tests: two models (one bootstrapped with labels
joined, one still bootstrapping) and a policy, and the offsets a test checkpoint holds."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.alerting.actions import Actions
from monitor.devkit.synthetic import Traffic, features_of
from monitor.events import Label, Prediction
from monitor.persistence.checkpoint import Checkpoint
from monitor.persistence.store import StateStore
from monitor.settings import Settings
from monitor.settings_loader import load_settings
from monitor.state.model_state import ModelState

OFFSETS = {("predictions", 0): 1200, ("labels", 1): 300}


def _settings(tmp_path: Path) -> Settings:
    window = [{"name": "1h", "length": "1h", "pane": "1m"}]
    return load_settings(
        None,
        overrides={
            "state": {"dir": str(tmp_path / "state")},
            "models": [
                {
                    "name": "fraud",
                    "features": features_of("fraud"),
                    "reference": {"bootstrap_events": 500},
                    "windows": window,
                },
                {
                    "name": "demand",
                    "task": "regression",
                    "features": features_of("demand"),
                    "reference": {"bootstrap_events": 500},
                    "windows": window,
                },
            ],
        },
    )


def _preds(model: str, n: int) -> list[Prediction]:
    events = Traffic(3).events(model, n, 1.8e9, 10.0)
    return [
        Prediction(
            f"{model}-{i}",
            model,
            e["version"],
            e["timestamp"],
            e["features"],
            e["prediction"],
            e.get("score"),
        )
        for i, e in enumerate(events)
    ]


class World:
    """Two models (one bootstrapped with labels joined, one still bootstrapping) and a policy."""

    def __init__(self, tmp_path: Path) -> None:
        cfg = _settings(tmp_path)
        self.states = {m.name: ModelState(m) for m in cfg.models}
        fraud = _preds("fraud", 800)
        self.states["fraud"].add_predictions(fraud)
        self.states["fraud"].add_labels(
            [Label(p.id, "fraud", i % 2, p.timestamp + 5) for i, p in enumerate(fraud[:300])]
        )
        self.states["demand"].add_predictions(_preds("demand", 100))
        self.actions = Actions(cfg, CollectorRegistry(), environ={})
        self.pristine: Checkpoint | None = None
        self.store = StateStore(
            Path(cfg.state.dir), self.states, threading.Lock(), extras={"policy": self.actions}
        )

    def snapshot(self) -> tuple[dict[str, ModelState], dict[str, list[list[int]]], object]:
        totals = {n: [v.total.tolist() for v in s.views()] for n, s in self.states.items()}
        return dict(self.states), totals, self.actions.policy

    def assert_untouched(self, before: tuple[dict[str, ModelState], Any, object]) -> None:
        live, totals, policy = before
        assert all(self.states[n] is live[n] for n in live)
        assert {n: [v.total.tolist() for v in s.views()] for n, s in self.states.items()} == totals
        assert self.actions.policy is policy
