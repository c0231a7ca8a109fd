"""Fault injection #7: the webhook receiver is down for the whole run and the daemon is
restarted twice (SIGTERM, then kill -9); once the receiver comes up, the pending
``model.degraded`` is delivered, exactly once, signed: counted at a receiver that does not
deduplicate, so a second POST of the same ``webhook-id`` would show.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from monitor.devkit.broker import EmbeddedBroker, free_port
from monitor.devkit.receiver import WebhookReceiver
from tests.support.fault_oracle import MODEL
from tests.support.fault_tools import wait_for
from tests.support.helpers import Topics
from tests.support.webhook_daemon import degrading_daemon

pytestmark = pytest.mark.faults
SECRET = "whsec_" + base64.b64encode(b"fault-suite-webhook-secret").decode()


def test_pending_webhook_survives_two_restarts_and_is_delivered_once(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    hook_port = free_port()  # nothing listens here until the end: connections are refused
    # x centred at 0 in the reference; the stream runs at 0.3: drift, one model.degraded.
    daemon = degrading_daemon(
        broker, topics, tmp_path, f"http://127.0.0.1:{hook_port}/hooks", SECRET
    )
    receiver: WebhookReceiver | None = None
    try:
        daemon.start()

        def enqueued() -> bool:
            return (
                daemon.value(
                    "modelmon_findings_total",
                    model=MODEL,
                    type="model.degraded",
                    outcome="enqueued",
                )
                or 0
            ) == 1

        wait_for(lambda: daemon.get("/metrics") is not None and enqueued(), 60, "degraded")
        wait_for(
            lambda: (
                (
                    daemon.value("modelmon_webhook_deliveries_total", model=MODEL, outcome="retry")
                    or 0
                )
                >= 2
            ),
            30,
            "failed attempts",
        )
        assert daemon.value("modelmon_webhook_outbox_size") == 1

        code, _ = daemon.terminate()  # restart 1: a clean stop
        assert code == 0
        daemon.start()
        daemon.wait_ready()
        wait_for(
            lambda: (
                (
                    daemon.value("modelmon_webhook_deliveries_total", model=MODEL, outcome="retry")
                    or 0
                )
                >= 1
            ),
            30,
            "retrying after restart",
        )
        assert daemon.value("modelmon_webhook_outbox_size") == 1

        daemon.kill()  # restart 2: kill -9
        daemon.start()
        daemon.wait_ready()
        assert daemon.value("modelmon_webhook_outbox_size") == 1

        receiver = WebhookReceiver(SECRET, port=hook_port, dedupe=False).start()
        wait_for(lambda: bool(receiver and receiver.received.events), 30, "delivery")
        wait_for(lambda: daemon.value("modelmon_webhook_outbox_size") == 0, 10, "outbox empty")
        events = receiver.received.events
        assert [e["type"] for e in events] == ["model.degraded"]
        assert events[0]["data"]["model"] == MODEL
        assert receiver.received.rejected == {}  # every attempt that arrived was signed right
        # No run found a second degradation: the policy state survived both restarts.
        assert (
            daemon.value(
                "modelmon_findings_total", model=MODEL, type="model.degraded", outcome="enqueued"
            )
            or 0
        ) == 0
        # This run's counters: one delivery; every other attempt was a refused connection
        # before the receiver came up, retried, never failed or expired.
        delivered = daemon.value(
            "modelmon_webhook_deliveries_total", model=MODEL, outcome="delivered"
        )
        retried = (
            daemon.value("modelmon_webhook_deliveries_total", model=MODEL, outcome="retry") or 0
        )
        assert delivered == 1
        for outcome in ("failed", "expired", "disabled"):
            assert (
                daemon.value("modelmon_webhook_deliveries_total", model=MODEL, outcome=outcome) or 0
            ) == 0, outcome
        assert daemon.value("modelmon_webhook_attempts_total", model=MODEL) == retried + 1
        code, _ = daemon.terminate()
        assert code == 0
        # Nothing is sent after the daemon stopped: the receiver's count is final, and exact.
        assert [e["webhook_id"] for e in receiver.received.events] == [events[0]["webhook_id"]]
    finally:
        daemon.cleanup()
        if receiver is not None:
            receiver.stop()
