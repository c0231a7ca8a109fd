"""``Actions`` alone (no Kafka, no HTTP): built on a state directory with a fake monotonic clock,
a fixed wall clock and its own registry, its dispatcher never started, so every webhook it
enqueues stays in the outbox for the test to read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from monitor.alerting.actions import Actions
from monitor.alerting.outbox import OutboxEntry
from monitor.settings import ModelSettings, Settings, StateSettings, WebhookSettings
from tests.support.receivers import WH_SECRET
from tests.support.snapshots import FakeClock

#: Nothing listens there; the dispatcher is never started, so nothing is sent either.
URL = "http://127.0.0.1:9/hooks"
WALL = 1_800_000_000.0  # 2027-01-15T08:00:00Z: every body's "timestamp"


def with_webhook(cfg: ModelSettings, url: str = URL) -> ModelSettings:
    hook = WebhookSettings(url=url, secret=SecretStr(WH_SECRET), allow_private_targets=True)
    return cfg.model_copy(update={"webhook": hook})


@dataclass
class ActionsRig:
    actions: Actions
    registry: CollectorRegistry
    clock: FakeClock

    def findings(self, model: str, kind: str, outcome: str) -> float:
        """``modelmon_findings_total`` for one (model, type, outcome); 0 if never counted."""
        labels = {"model": model, "type": kind, "outcome": outcome}
        return self.registry.get_sample_value("modelmon_findings_total", labels) or 0.0

    def all_findings(self) -> dict[tuple[str, str, str], float]:
        """Every counted (model, type, outcome) and its value."""
        return {
            (s.labels["model"], s.labels["type"], s.labels["outcome"]): s.value
            for metric in self.registry.collect()
            if metric.name == "modelmon_findings"
            for s in metric.samples
            if s.name == "modelmon_findings_total"
        }

    def outbox(self) -> list[OutboxEntry]:
        return self.actions.dispatcher.undelivered()

    def outbox_size(self) -> float | None:
        return self.registry.get_sample_value("modelmon_webhook_outbox_size")


def make_actions(
    state_dir: Path, *models: ModelSettings, clock: FakeClock | None = None, **kw: Any
) -> ActionsRig:
    clock = clock or FakeClock()
    settings = Settings(models=list(models), state=StateSettings(dir=state_dir))
    registry = CollectorRegistry()
    actions = Actions(settings, registry, clock=clock, wall=lambda: WALL, **kw)
    return ActionsRig(actions, registry, clock)
