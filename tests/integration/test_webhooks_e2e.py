"""End to end: real broker → daemon → policy → signed webhooks at a real receiver.

The receiver (:mod:`tests.support.receivers`) verifies every delivery with the
independent ``standardwebhooks`` package and records every POST, repeats included (it does not
deduplicate), so a duplicate would show.
"""

from __future__ import annotations

import base64
import math
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.devkit.broker import EmbeddedBroker
from monitor.devkit.synthetic import FRAUD_DRIFTED, Traffic, features_of
from monitor.reference.build import build_reference
from tests.support.helpers import RunningApp, Topics, make_config
from tests.support.produce import produce
from tests.support.receivers import Receiver

pytestmark = pytest.mark.integration
SECRET = "whsec_" + base64.b64encode(b"modelmon-test-secret-0123456789").decode()


def test_drift_fires_one_degraded_then_recovered_and_respects_cooldown(
    broker: EmbeddedBroker,
    topics: Topics,
    tmp_path: Path,
    scripted_receiver: Receiver,
    run_app: Any,
) -> None:
    hooks = scripted_receiver.route("/retrain", SECRET)  # answers 200 to every verified POST

    def types() -> list[str]:
        return [orjson.loads(body)["type"] for _, _, body in hooks.attempts]

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
            "url": scripted_receiver.url("/retrain"),
            "secret": SECRET,
            "allow_private_targets": True,
            "retry_schedule": ["0.2s", "0.5s"],
        },
    }
    # The test decides when the policy evaluates (evaluate_now, once the phase is consumed and
    # the source caught up), so each window holds exactly the phase it was written for.
    app: RunningApp = run_app(
        make_config(broker, topics, [model], tmp_path, evaluation={"interval": "1h"})
    )
    traffic = Traffic(seed=22)
    # Pane-aligned event time at 100/s: the 1 m window (12 panes of 5 s) ends at the pane of the
    # newest event, so after a phase of at least 6000 it holds that phase's last 6000 exactly.
    t = math.floor((time.time() - 600) / 5) * 5.0
    sent = 0

    def phase(n: int, drifted: bool) -> tuple[float, float]:
        nonlocal t, sent
        begin = t
        events = traffic.events("fraud", n, t, 100.0, drifted=drifted)
        values, keys = [orjson.dumps(e) for e in events], [e["id"].encode() for e in events]
        produce(broker.bootstrap, topics.predictions, values, keys)
        t += n / 100.0
        sent += n
        app.wait_for(
            lambda: app.value("modelmon_events_total", model="fraud", stream="predictions") == sent,
            what=f"{sent} consumed",
        )
        return begin, t

    def decide() -> None:
        """One evaluation the policy decides on (one taken while catching up decides nothing)."""
        app.wait_for(lambda: not app.app.evaluate_now().catching_up, what="a deciding evaluation")

    def findings(kind: str, outcome: str) -> float:
        return app.value("modelmon_findings_total", model="fraud", type=kind, outcome=outcome) or 0

    def counters() -> dict[str, float]:
        """What the daemon did about webhooks: enqueued, pending, attempted, delivered."""
        deliveries = {
            o: app.value("modelmon_webhook_deliveries_total", model="fraud", outcome=o) or 0
            for o in ("delivered", "retry", "failed", "expired", "disabled")
        }
        return {
            "degraded enqueued": findings("model.degraded", "enqueued"),
            "degraded suppressed": findings("model.degraded", "suppressed"),
            "recovered enqueued": findings("model.recovered", "enqueued"),
            "recovered suppressed": findings("model.recovered", "suppressed"),
            "outbox": app.value("modelmon_webhook_outbox_size") or 0,
            "attempts": app.value("modelmon_webhook_attempts_total", model="fraud") or 0,
            **deliveries,
        }

    def expect(degraded: int = 0, suppressed: int = 0, recovered: int = 0) -> dict[str, float]:
        webhooks = degraded + recovered  # the receiver answers 200: one attempt per webhook
        return {
            "degraded enqueued": degraded,
            "degraded suppressed": suppressed,
            "recovered enqueued": recovered,
            "recovered suppressed": 0,
            "outbox": 0,
            "attempts": webhooks,
            "delivered": webhooks,
            "retry": 0,
            "failed": 0,
            "expired": 0,
            "disabled": 0,
        }

    phase(3000, drifted=False)
    for _ in range(3):
        decide()
    # nothing was enqueued, so nothing can still be on its way to the receiver
    assert counters() == expect()
    assert types() == []
    assert app.value("modelmon_degraded", model="fraud") == 0

    begin, end = phase(6000, drifted=True)  # the 1 m window is now all drifted traffic
    decide()
    assert counters() == expect()  # one breach of the two it takes
    decide()
    assert findings("model.degraded", "enqueued") == 1
    app.wait_for(lambda: counters() == expect(degraded=1), what="model.degraded delivered")
    assert types() == ["model.degraded"]
    assert app.value("modelmon_degraded", model="fraud") == 1
    event = orjson.loads(hooks.attempts[0][2])
    data = event["data"]
    assert data["model"] == "fraud" and data["window"] == "1m"
    assert data["predictions"] == 6000
    drifted = {r["feature"] for r in data["reasons"] if r["feature"]}
    assert drifted == set(FRAUD_DRIFTED)  # as the core test: exactly the drifted features
    assert "predictions" in data["kafka"] and data["kafka"]["predictions"]
    utc = "%Y-%m-%dT%H:%M:%SZ"  # whole seconds: the window is pane-aligned
    assert data["window_start"] == time.strftime(utc, time.gmtime(begin))
    assert data["window_end"] == time.strftime(utc, time.gmtime(end))

    phase(7000, drifted=False)  # back to normal: recovered after the hysteresis
    decide()
    assert counters() == expect(degraded=1)
    decide()
    app.wait_for(
        lambda: counters() == expect(degraded=1, recovered=1), what="model.recovered delivered"
    )
    assert types() == ["model.degraded", "model.recovered"]
    assert app.value("modelmon_degraded", model="fraud") == 0

    phase(6000, drifted=True)  # degraded again, but inside the 1 h cooldown: no webhook
    decide()
    decide()
    assert counters() == expect(degraded=1, suppressed=1, recovered=1)
    for _ in range(3):
        decide()
    # still nothing enqueued, nothing pending, nothing attempted since the recovery
    assert counters() == expect(degraded=1, suppressed=1, recovered=1)
    assert types() == ["model.degraded", "model.recovered"]
    assert app.value("modelmon_degraded", model="fraud") == 1
    assert len(set(hooks.attempt_ids)) == len(hooks.attempts)  # one id per event
    assert hooks.rejected == []
    assert app.value("modelmon_webhook_deliveries_total", model="fraud", outcome="delivered") == 2
