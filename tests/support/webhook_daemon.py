"""A real ``modelmon run`` whose model degrades on the stream already in its topics and sends
its one ``model.degraded`` webhook to a given URL (for the webhook fault tests)."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

from monitor.devkit.broker import EmbeddedBroker, free_port
from tests.support.fault_oracle import MODEL, degrading_model, save_reference, traffic
from tests.support.fault_tools import Daemon, daemon_config, write_config
from tests.support.helpers import Topics
from tests.support.produce import produce

RECORDS = 3000  # predictions and labels: past min_samples (300), so the first decision fires


def degrading_daemon(
    broker: EmbeddedBroker,
    topics: Topics,
    tmp_path: Path,
    url: str,
    secret: str,
    *,
    seed: int = 7,
    **extra: Any,
) -> Daemon:
    """Produce the stream (x drifted against the reference), write the config (``extra``
    merged into it, e.g. ``state={"checkpoint_interval": "10m"}``), return the daemon
    unstarted."""
    save_reference(tmp_path / "churn.json")
    model = degrading_model(tmp_path / "churn.json", url, secret, ["0.5s", "1s"])
    model["webhook"]["timeout"] = "30s"  # a held reply is still pending when the test kills
    port = free_port()
    data = daemon_config(
        bootstrap=broker.bootstrap,
        group=f"hooks-{uuid.uuid4().hex[:8]}",
        topics=(topics.predictions, topics.labels, topics.dlq),
        port=port,
        state_dir=tmp_path / "state",
        reference=tmp_path / "churn.json",
        **extra,
    )
    data["models"] = [model]
    config = tmp_path / "modelmon.yaml"
    write_config(config, data)
    records = list(itertools.islice(traffic(topics.predictions, topics.labels, seed), RECORDS))
    for topic in (topics.predictions, topics.labels):
        mine = [r for r in records if r.topic == topic]
        produce(broker.bootstrap, topic, [r.value for r in mine], [r.key for r in mine])
    return Daemon(config, port, tmp_path / "logs")


def findings(daemon: Daemon, kind: str = "model.degraded") -> dict[str, float]:
    """This run's ``modelmon_findings_total`` of ``kind`` per outcome (counted ones only)."""
    out = {}
    for outcome in ("enqueued", "suppressed", "no_webhook", "outbox_error", "already_pending"):
        value = daemon.value("modelmon_findings_total", model=MODEL, type=kind, outcome=outcome)
        if value:
            out[outcome] = value
    return out


def deliveries(daemon: Daemon) -> dict[str, float]:
    """This run's delivery counters: each outcome, and the attempts."""
    out = {
        outcome: daemon.value("modelmon_webhook_deliveries_total", model=MODEL, outcome=outcome)
        or 0.0
        for outcome in ("delivered", "retry", "failed", "disabled", "expired")
    }
    out["attempts"] = daemon.value("modelmon_webhook_attempts_total", model=MODEL) or 0.0
    return out
