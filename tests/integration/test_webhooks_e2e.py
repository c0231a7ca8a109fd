"""End to end: real broker → daemon → policy → signed webhooks at a real receiver.

The receiver verifies every delivery with the independent ``standardwebhooks`` package.
"""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from monitor.devkit.broker import EmbeddedBroker
from monitor.devkit.synthetic import Traffic, features_of
from monitor.reference.build import build_reference
from tests.support.helpers import RunningApp, Topics, make_config

pytestmark = pytest.mark.integration
SECRET = "whsec_" + base64.b64encode(b"modelmon-test-secret-0123456789").decode()


class Receiver:
    """Accepts only deliveries that standardwebhooks verifies; records them in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.rejected = 0
        verifier = Webhook(SECRET)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                try:
                    verifier.verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    outer.rejected += 1
                    self.send_response(401)
                else:
                    outer.events.append((self.headers["webhook-id"], orjson.loads(body)))
                    self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/retrain"

    def types(self) -> list[str]:
        return [e["type"] for _, e in self.events]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    yield r
    r.close()


def test_drift_fires_one_degraded_then_recovered_and_respects_cooldown(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path, receiver: Receiver, run_app: Any
) -> None:
    rows = list(Traffic(seed=21).training_rows("fraud", 20_000))
    ref = tmp_path / "fraud.json"
    build_reference(
        "fraud",
        "binary_classification",
        {k: [r.get(k) for r in rows] for k in rows[0]},
        features_of("fraud"),
    ).save(ref)
    model = {
        "name": "fraud",
        "reference": str(ref),
        "features": features_of("fraud"),
        "windows": [{"name": "1m", "length": "1m", "pane": "5s"}],
        "allowed_lateness": "10s",
        "policy": {
            "min_samples": 300,
            "psi_max": 0.2,
            "ks_alpha": 0.01,
            "window": "1m",
            "breaches_to_fire": 2,
            "cooldown": "1h",
        },
        "webhook": {
            "url": receiver.url,
            "secret": SECRET,
            "allow_private_targets": True,
            "retry_schedule": ["0.2s", "0.5s"],
        },
    }
    app: RunningApp = run_app(make_config(broker, topics, [model], tmp_path))
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=10)
    traffic = Traffic(seed=22)
    t = time.time() - 600
    sent = 0

    def phase(n: int, drifted: bool) -> None:
        nonlocal t, sent
        for e in traffic.events("fraud", n, t, 100.0, drifted=drifted):
            producer.send(topics.predictions, key=e["id"].encode(), value=orjson.dumps(e))
        producer.flush()
        t += n / 100.0
        sent += n
        app.wait_for(
            lambda: app.value("modelmon_events_total", model="fraud", stream="predictions") == sent,
            what=f"{sent} consumed",
        )

    def evaluations(k: int) -> None:
        """Wait for k more evaluation ticks (the policy counts evaluations)."""
        start = app.value("modelmon_last_evaluation_timestamp_seconds", model="fraud") or 0
        app.wait_for(
            lambda: (
                (app.value("modelmon_last_evaluation_timestamp_seconds", model="fraud") or 0)
                > start + k - 0.5
            ),
            what="evaluations",
        )

    phase(3000, drifted=False)
    evaluations(3)
    assert receiver.types() == []
    assert app.value("modelmon_degraded", model="fraud") == 0

    phase(6000, drifted=True)  # the 1 m window is now all drifted traffic
    app.wait_for(lambda: receiver.types() == ["model.degraded"], what="model.degraded")
    assert app.value("modelmon_degraded", model="fraud") == 1
    _, event = receiver.events[0]
    data = event["data"]
    assert data["model"] == "fraud" and data["window"] == "1m"
    assert data["predictions"] >= 300
    drifted = {r["feature"] for r in data["reasons"] if r["feature"]}
    assert {"amount", "distance_km", "country"} <= drifted
    assert "predictions" in data["kafka"] and data["kafka"]["predictions"]
    assert data["window_start"].endswith("Z") and data["window_end"].endswith("Z")

    phase(7000, drifted=False)  # back to normal: recovered after the hysteresis
    app.wait_for(
        lambda: receiver.types() == ["model.degraded", "model.recovered"], what="model.recovered"
    )
    assert app.value("modelmon_degraded", model="fraud") == 0

    phase(6000, drifted=True)  # degraded again, but inside the 1 h cooldown: no webhook
    app.wait_for(
        lambda: (
            (
                app.value(
                    "modelmon_findings_total",
                    model="fraud",
                    type="model.degraded",
                    outcome="suppressed",
                )
                or 0
            )
            == 1
        ),
        what="suppressed finding",
    )
    evaluations(3)
    assert receiver.types() == ["model.degraded", "model.recovered"]
    assert app.value("modelmon_degraded", model="fraud") == 1
    assert len({i for i, _ in receiver.events}) == len(receiver.events)  # one id per event
    assert receiver.rejected == 0
    assert app.value("modelmon_webhook_deliveries_total", model="fraud", outcome="delivered") == 2
    producer.close()
