"""A webhook the dispatcher gives up on is dead from the moment its reason is on disk: moved to
``dead/``, or, when the move fails, kept in place marked (the next start moves it), and in both
cases never sent again. Counted once under its outcome."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from monitor.alerting.outbox import DEAD_DIR, Outbox
from tests.support.receivers import WH_SECRET, Receiver
from tests.support.wait import wait_for

OUTCOMES = ("delivered", "retry", "failed", "disabled", "expired")


def move_fails_once(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The rename into ``dead/`` fails once (EIO), as on a disk going bad; returns the paths
    whose move failed."""
    failed: list[Path] = []
    real = Outbox._move_dead

    def flaky(self: Outbox, path: Path) -> Path:
        if not failed:
            failed.append(path)
            raise OSError(errno.EIO, "Input/output error")
        return real(self, path)

    monkeypatch.setattr(Outbox, "_move_dead", flaky)
    return failed


def counters(m: Any, model: str, events: int) -> dict[str, float | None]:
    """The delivery counters once ``events`` events have reached an end (a worker counts an
    outcome just after the outbox lets it go, so ``flush`` can return a moment earlier)."""

    def value(outcome: str) -> float:
        return m.metric("modelmon_webhook_deliveries_total", model=model, outcome=outcome) or 0.0

    wait_for(lambda: sum(value(o) for o in OUTCOMES if o != "retry") >= events, what="outcomes")
    out: dict[str, float | None] = {o: value(o) for o in OUTCOMES}
    out["attempts"] = m.metric("modelmon_webhook_attempts_total", model=model)
    return out


def test_a_permanent_failure_whose_move_fails_is_kept_marked_and_never_sent_again(
    scripted_receiver: Receiver,
    make_dispatcher: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    route = scripted_receiver.route("/bad", WH_SECRET, (400, {}))
    endpoint = scripted_receiver.endpoint("m", "/bad")
    m = make_dispatcher(endpoint, start=False)
    first = m.dispatcher.enqueue(endpoint, "model.degraded", {"n": 1})
    second = m.dispatcher.enqueue(endpoint, "model.recovered", {"n": 2})
    failed = move_fails_once(monkeypatch)
    m.dispatcher.start()
    assert m.dispatcher.flush(5.0)

    # The queue moved on past the dead head; the head was posted once, never again.
    assert route.attempt_ids == [first, second]
    assert route.accepted == [second]
    assert counters(m, "m", 2) == {
        "delivered": 1,
        "retry": 0,
        "failed": 1,
        "disabled": 0,
        "expired": 0,
        "attempts": 2,
    }
    assert m.dispatcher.pending() == 0
    (kept,) = failed
    assert kept.parent == tmp_path / "outbox"  # still in the outbox directory, marked
    record = json.loads(kept.read_bytes())
    assert (record["id"], record["attempts"]) == (first, 1)
    assert record["dead_reason"] == "permanent failure: HTTP 400"
    assert os.listdir(tmp_path / "outbox" / DEAD_DIR) == []

    # The next process moves it to dead/ and does not send it.
    assert m.dispatcher.stop(5.0)
    again = make_dispatcher(endpoint)
    assert again.dispatcher.pending() == 0
    assert not kept.exists()
    moved = json.loads((tmp_path / "outbox" / DEAD_DIR / kept.name).read_bytes())
    assert moved == record
    assert again.dispatcher.flush(1.0)
    assert route.attempt_ids == [first, second]


def test_a_410_whose_move_fails_buries_the_rest_and_sends_nothing_more(
    scripted_receiver: Receiver,
    make_dispatcher: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    route = scripted_receiver.route("/gone", WH_SECRET, (410, {}))
    endpoint = scripted_receiver.endpoint("m", "/gone")
    m = make_dispatcher(endpoint, start=False)
    ids = [m.dispatcher.enqueue(endpoint, "model.degraded", {"n": i}) for i in range(3)]
    failed = move_fails_once(monkeypatch)
    m.dispatcher.start()
    assert m.dispatcher.flush(5.0)
    late = m.dispatcher.enqueue(endpoint, "model.recovered", {"n": 3})  # after the 410
    assert m.dispatcher.flush(5.0)

    assert route.attempt_ids == [ids[0]]
    assert counters(m, "m", 4) == {
        "delivered": 0,
        "retry": 0,
        "failed": 0,
        "disabled": 4,
        "expired": 0,
        "attempts": 1,
    }
    (kept,) = failed
    assert json.loads(kept.read_bytes())["id"] == ids[0]
    dead = sorted(p.name for p in (tmp_path / "outbox" / DEAD_DIR).iterdir())
    assert [n.split("-", 1)[1] for n in dead] == [f"{i}.json" for i in (ids[1], ids[2], late)]
