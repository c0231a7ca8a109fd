"""SIGTERM: one request to stop, however many times a supervisor repeats it in a hurry."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from monitor.app import REPEAT_SIGNAL_GRACE, App
from monitor.events import DeadLetter, Offsets, RawRecord
from monitor.settings_loader import load_settings


class _IdleSource:
    """A source with nothing to read; remembers what was committed."""

    caught_up = True

    def __init__(self) -> None:
        self.committed: list[Offsets] = []
        self.polling = threading.Event()

    def poll(self, timeout: float) -> list[RawRecord]:
        self.polling.set()
        threading.Event().wait(min(timeout, 0.05))
        return []

    def dead_letter(self, items: Sequence[DeadLetter], stop: Callable[[], bool]) -> None:
        raise AssertionError("nothing to dead-letter")

    def mark_processed(self, records: Sequence[RawRecord]) -> None:
        raise AssertionError("nothing to process")

    def positions(self) -> Offsets:
        return {("predictions", 0): 42}

    def offset_ranges(self) -> dict[str, dict[str, list[int]]]:
        return {}

    def commit(self, offsets: Offsets) -> None:
        self.committed.append(offsets)

    def update_lag(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """``os._exit`` recorded instead of ending the test run; the signal handlers restored."""
    calls: list[int] = []
    monkeypatch.setattr("monitor.app.os._exit", calls.append)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield calls
    for s, handler in saved.items():
        signal.signal(s, handler)


def _app(tmp_path: Path, source: _IdleSource, clock: Callable[[], float] | None = None) -> App:
    settings = load_settings(
        None,
        overrides={
            "http": {"host": "127.0.0.1", "port": 0},
            "state": {"dir": str(tmp_path / "state")},
            "models": [
                {"name": "m", "features": {"a": "numeric"}, "reference": {"bootstrap_events": 100}}
            ],
        },
    )
    extra = {} if clock is None else {"clock": clock}
    return App(settings, source_factory=lambda app, positions: source, **extra)


def test_a_double_sigterm_still_writes_the_final_checkpoint(
    tmp_path: Path, exits: list[int]
) -> None:
    source = _IdleSource()
    app = _app(tmp_path, source)

    def terminate_twice() -> None:  # what GNU timeout does
        source.polling.wait(10)
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_twice, daemon=True).start()
    assert app.run() == 0  # signals reach the main thread, which runs the daemon here
    assert exits == []
    assert (tmp_path / "state" / "checkpoint.mmc").is_file()
    assert source.committed[-1] == {("predictions", 0): 42}


def test_a_second_signal_after_the_grace_exits_at_once(tmp_path: Path, exits: list[int]) -> None:
    now = [100.0]
    app = _app(tmp_path, _IdleSource(), clock=lambda: now[0])
    try:
        app._on_signal(signal.SIGTERM, None)
        assert app.stopping and exits == []
        now[0] += REPEAT_SIGNAL_GRACE * 0.9
        app._on_signal(signal.SIGTERM, None)
        assert exits == []
        now[0] += REPEAT_SIGNAL_GRACE * 0.2
        app._on_signal(signal.SIGINT, None)
        assert exits == [1]
    finally:
        app.http.stop()  # bound at construction; never started here
