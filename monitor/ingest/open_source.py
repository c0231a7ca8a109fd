"""The record source the configuration asks for (``kafka.client``), made for the app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from monitor.events import Offsets
from monitor.ingest.kafka_source import KafkaSource
from monitor.ingest.source import Hooks, Source
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import ConfigError, Settings
from monitor.settings_loader import CONFLUENT_MISSING


class Host(Hooks, Protocol):
    """What a source needs of the app that runs it."""

    settings: Settings
    metrics: OpsMetrics
    wall: Callable[[], float]


def open_source(app: Host, positions: Offsets | None) -> Source:
    """A consumer-group member of the configured client, resuming at ``positions``; partitions
    without a position are replayed from the longest window plus lateness ago."""
    horizon = max(m.longest_window + m.allowed_lateness for m in app.settings.models)
    make: Callable[..., Source] = KafkaSource
    if app.settings.kafka.client == "confluent":
        try:
            from monitor.ingest.confluent_source import ConfluentSource
        except ImportError as exc:
            raise ConfigError(CONFLUENT_MISSING) from exc
        make = ConfluentSource
    return make(
        app.settings.kafka,
        app.metrics,
        positions=positions,
        replay_horizon=horizon,
        hooks=app,
        wall=app.wall,
    )
