"""The consume loop under hostile records: honest liveness and lag while dead letters wait for
the broker, and no watermark restored past the wall clock."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.app import App, load_states
from monitor.events import DeadLetter, Offsets, Prediction, RawRecord
from monitor.settings import Settings
from monitor.settings_loader import load_settings
from tests.support.fault_oracle import FEATURES, save_reference

NOW = 1_796_000_000.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    save_reference(tmp_path / "churn.json")
    return load_settings(
        None,
        overrides={
            "kafka": {"predictions_topic": "p", "labels_topic": "l"},
            "http": {"host": "127.0.0.1", "port": 0},
            "state": {"dir": str(tmp_path / "state")},
            "evaluation": {"liveness_timeout": "60s"},
            "models": [
                {"name": "churn", "reference": str(tmp_path / "churn.json"), "features": FEATURES}
            ],
        },
    )


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., App]]:
    """Apps that are never run: their HTTP socket (bound at construction) is closed after."""
    apps: list[App] = []

    def make(**kw: Any) -> App:
        apps.append(App(settings, states=load_states(settings), wall=lambda: NOW, **kw))
        return apps[-1]

    yield make
    for app in apps:
        app.http.stop()  # never started: closes the socket bound at construction


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class WaitingSource:
    """Polls one invalid record; its dead-letter write waits out five transient failures."""

    caught_up = False

    def __init__(self, app: App, clock: Clock) -> None:
        self.app, self.clock = app, clock
        self.lag_updates = 0
        self.health: list[tuple[bool, str]] = []
        self.polled = False

    def poll(self, timeout: float) -> list[RawRecord]:
        if self.polled:
            self.app.request_stop()
            return []
        self.polled = True
        return [RawRecord("p", 0, 0, NOW, None, b"{not json")]

    def dead_letter(
        self,
        items: Sequence[DeadLetter],
        stop: Callable[[], bool],
        waiting: Callable[[], None],
    ) -> None:
        for _ in range(5):
            self.clock.t += 45.0  # each attempt and backoff: 45 s, past 60 s in two
            waiting()
            self.health.append(self.app.liveness())

    def update_lag(self) -> None:
        self.lag_updates += 1

    def mark_processed(self, records: Sequence[RawRecord]) -> None:
        pass

    def positions(self) -> Offsets:
        return {}

    def offset_ranges(self) -> dict[str, dict[str, list[int]]]:
        return {}

    def commit(self, offsets: Offsets) -> None:
        pass

    def close(self) -> None:
        pass


def test_liveness_and_lag_stay_current_while_dead_letters_wait_for_the_broker(
    make_app: Callable[..., App],
) -> None:
    clock = Clock()
    app = make_app(clock=clock)
    source = WaitingSource(app, clock)
    app._consume(source)
    assert source.health == [(True, "ok")] * 5  # 225 s of retries, liveness_timeout 60 s
    assert source.lag_updates == 5 + 1  # once per wait, and the loop's own first refresh


def test_a_restored_watermark_past_the_skew_is_clamped_to_the_wall_clock_and_logged(
    settings: Settings, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    state = app.states["churn"]
    future = Prediction("a", "churn", None, 4.0e9, {"x": 0.1, "c": "a"}, 1, 0.9)
    state.add_predictions([future])  # as a checkpoint from before the bound would hold it
    with caplog.at_level(logging.WARNING, logger="monitor.app"):
        app._clamp_event_time()
    assert state.newest_seen == NOW
    assert "model churn: restored newest event time was 2204000000s ahead" in caplog.text
    near = NOW + settings.time.max_future_skew  # within the skew: left alone
    state.add_predictions([future._replace(id="b", timestamp=near)])
    app._clamp_event_time()
    assert state.newest_seen == near
    assert orjson.dumps(state.newest_seen)


class StubGroup:
    """Group mode as far as the consume loop and ``App.acting`` see it: owns partition 0."""

    acting = True

    def read(self) -> None:
        pass


def test_a_replica_that_has_not_polled_for_max_poll_interval_stops_acting(
    make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    """The group drops it (kafka-python tells the app at the next poll only) and another
    replica may act already: no decisions, no policy published, no model series meanwhile."""
    clock = Clock()
    app = make_app(clock=clock)
    app.group = StubGroup()  # type: ignore[assignment]
    source = WaitingSource(app, clock)
    acting: list[bool] = []
    source.update_lag = lambda: acting.append(app.acting)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="monitor.ingest.poll_watch"):
        app._consume(source)
    # Waits at 45, 90, 135, 180, 225 s (max_poll_interval 60 s), the loop's own lag refresh
    # before its next poll; that poll (which rejoins the group) lets it act again.
    assert acting == [True, False, False, False, False, False]
    assert app.acting
    assert caplog.text.count("stops acting until it has polled and rejoined") == 1
