"""Helpers shared by the integration tests: config for a test broker, a daemon in a thread."""

from __future__ import annotations

import os
import shutil
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.app import App
from monitor.devkit.broker import EmbeddedBroker, create_topics
from monitor.settings import Settings
from monitor.settings_loader import load_settings
from tests.support.metrics import Metrics, parse_metrics
from tests.support.wait import wait_for


def require_prometheus_tool(name: str) -> str:
    """Path of promtool/prometheus; in CI (MODELMON_REQUIRE_PROMETHEUS=1) missing is a failure."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("MODELMON_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"{name} is required here (Debian package prometheus)")
        pytest.skip(f"{name} not installed (Debian package prometheus)")
    return path


#: Both Kafka clients (``kafka.client``): the core integration tests run on each.
CLIENTS = ("kafka-python", "confluent")


@dataclass
class Topics:
    predictions: str
    labels: str
    dlq: str


def fresh_topics(bootstrap: str, partitions: int = 3) -> Topics:
    """Topics of a test's own (a random tag), created: predictions and labels with
    ``partitions`` partitions, the dead-letter topic with one."""
    tag = uuid.uuid4().hex[:8]
    t = Topics(f"predictions-{tag}", f"labels-{tag}", f"dlq-{tag}")
    create_topics(bootstrap, {t.predictions: partitions, t.labels: partitions, t.dlq: 1})
    return t


def make_config(
    broker: EmbeddedBroker,
    topics: Topics,
    models: list[dict[str, Any]],
    tmp_path: Path,
    client: str = "kafka-python",
    **extra: Any,
) -> Settings:
    data: dict[str, Any] = {
        "kafka": {
            "client": client,
            "bootstrap_servers": broker.bootstrap,
            "group_id": f"modelmon-{uuid.uuid4().hex[:8]}",
            "predictions_topic": topics.predictions,
            "labels_topic": topics.labels,
            "dead_letter_topic": topics.dlq,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "poll_timeout": 0.2,
        },
        "http": {"host": "127.0.0.1", "port": 0},
        "state": {"dir": str(tmp_path / "state")},
        "evaluation": {"interval": "1s"},
        "models": models,
    }
    data.update(extra)
    return load_settings(None, overrides=data)


class RunningApp:
    def __init__(self, app: App) -> None:
        self.app = app
        self.thread = threading.Thread(
            target=app.run, kwargs={"install_signals": False}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app.http.port}"

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as e:
            return int(e.code), bytes(e.read())

    def metrics(self) -> Metrics:
        _, body = self.get("/metrics")
        return parse_metrics(body.decode())

    def value(self, name: str, **labels: str) -> float | None:
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def wait_for(self, check: Callable[[], bool], timeout: float = 45.0, what: str = "") -> None:
        wait_for(check, timeout, what, every=0.25)
