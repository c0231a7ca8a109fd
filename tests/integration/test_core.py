"""End to end against the real broker: counts, dead letters, drift, promtool-clean metrics."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from monitor.devkit.broker import EmbeddedBroker
from monitor.devkit.synthetic import FRAUD_DRIFTED, Traffic, features_of
from monitor.reference.build import build_reference
from tests.support.helpers import (
    CLIENTS,
    RunningApp,
    Topics,
    make_config,
    require_prometheus_tool,
)
from tests.support.produce import by_index, produce

pytestmark = pytest.mark.integration

MALFORMED = {
    b"{not json": "invalid_json",
    b"[1, 2]": "not_an_object",
    b'{"model": "fraud", "prediction": 1}': "missing_field",
    b'{"id": "x", "model": "fraud", "timestamp": "yesterday", "prediction": 1}': "bad_timestamp",
    b'{"id": "y", "model": "fraud", "features": [1], "prediction": 1}': "wrong_type",
}


def fraud_model(ref: Path, min_samples: int = 500) -> dict[str, Any]:
    return {
        "name": "fraud",
        "task": "binary_classification",
        "reference": str(ref),
        "windows": [
            {"name": "1m", "length": "1m", "pane": "5s"},
            {"name": "10m", "length": "10m", "pane": "1m"},
        ],
        "allowed_lateness": "30s",
        "features": features_of("fraud"),
        "policy": {"min_samples": min_samples, "ks_alpha": 0.01},
    }


@pytest.fixture
def fraud_reference(tmp_path: Path) -> Path:
    rows = list(Traffic(seed=11).training_rows("fraud", 20_000))
    columns = {k: [r.get(k) for r in rows] for k in rows[0]}
    path = tmp_path / "fraud.json"
    build_reference("fraud", "binary_classification", columns, features_of("fraud")).save(path)
    return path


def total(app: RunningApp, name: str, **labels: str) -> float:
    return app.value(name, **labels) or 0.0


@pytest.mark.parametrize("client", CLIENTS)
def test_counts_dead_letters_and_drift(
    broker: EmbeddedBroker,
    topics: Topics,
    tmp_path: Path,
    fraud_reference: Path,
    run_app: Any,
    client: str,
) -> None:
    settings = make_config(broker, topics, [fraud_model(fraud_reference)], tmp_path, client)
    traffic = Traffic(seed=3)
    now = time.time()
    n_valid = 3000
    normal = [orjson.dumps(e) for e in traffic.events("fraud", n_valid, now - 40, 100.0)]
    values = normal + list(MALFORMED)
    produce(broker.bootstrap, topics.predictions, values, by_index(values))
    app = run_app(settings)

    app.wait_for(
        lambda: total(app, "modelmon_events_total", model="fraud", stream="predictions") == n_valid,
        what="valid events counted",
    )
    app.wait_for(
        lambda: (
            sum(
                total(app, "modelmon_invalid_events_total", stream="predictions", reason=r)
                for r in set(MALFORMED.values())
            )
            == len(MALFORMED)
        ),
        what="invalid events counted",
    )
    for reason in set(MALFORMED.values()):
        assert total(
            app, "modelmon_invalid_events_total", stream="predictions", reason=reason
        ) == sum(1 for r in MALFORMED.values() if r == reason)

    # Every malformed record is in the dead-letter topic, with headers that explain it.
    dlq = KafkaConsumer(
        topics.dlq,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    dead = list(dlq)
    dlq.close()
    assert sorted(r.value for r in dead) == sorted(MALFORMED)
    for r in dead:
        headers = dict(r.headers)
        assert headers["modelmon-source-topic"] == topics.predictions.encode()
        assert headers["modelmon-reason"].decode() == MALFORMED[r.value]
        assert int(headers["modelmon-source-offset"]) >= 0

    # No drift yet: statistics present per feature, nothing flagged.
    app.wait_for(
        lambda: app.value("modelmon_window_predictions", model="fraud", window="10m") == n_valid,
        what="window filled",
    )
    app.app.evaluate_now()
    m = app.metrics()
    for f in features_of("fraud"):
        lab = (("feature", f), ("model", "fraud"), ("window", "10m"))
        assert ("modelmon_feature_psi", lab) in m
        assert ("modelmon_feature_chi2_pvalue", lab) in m
        assert m[("modelmon_feature_drift_detected", lab)] == 0, f
        if features_of("fraud")[f] == "numeric":
            assert ("modelmon_feature_ks_statistic", lab) in m
            assert ("modelmon_feature_ks_pvalue", lab) in m

    # Inject drift: the drifted features flag, the others do not.
    drifted = [
        orjson.dumps(e) for e in traffic.events("fraud", 3000, now - 10, 300.0, drifted=True)
    ]
    produce(broker.bootstrap, topics.predictions, drifted, by_index(drifted))
    app.wait_for(
        lambda: (
            total(app, "modelmon_events_total", model="fraud", stream="predictions") == 2 * n_valid
        ),
        what="drifted counted",
    )
    snap = app.app.evaluate_now()
    window = snap.models[0].window("10m")
    assert window is not None
    assert sorted(window.drifted()) == sorted(FRAUD_DRIFTED)
    for f in window.features:
        m_val = app.value(
            "modelmon_feature_drift_detected", model="fraud", window="10m", feature=f.feature
        )
        assert m_val == (1.0 if f.feature in FRAUD_DRIFTED else 0.0), f.feature

    # The other endpoints answer.
    assert app.get("/healthz")[0] == 200
    assert app.get("/readyz")[0] == 200
    status, body = app.get("/api/v1/status")
    assert status == 200
    assert orjson.loads(body)["snapshot"]["models"][0]["model"] == "fraud"
    assert b"fraud" in app.get("/")[1]


def test_statistics_absent_below_min_samples(
    broker: EmbeddedBroker,
    topics: Topics,
    tmp_path: Path,
    fraud_reference: Path,
    run_app: Any,
) -> None:
    settings = make_config(
        broker, topics, [fraud_model(fraud_reference, min_samples=10_000)], tmp_path
    )
    values = [orjson.dumps(e) for e in Traffic(1).events("fraud", 200, time.time(), 100.0)]
    produce(broker.bootstrap, topics.predictions, values, by_index(values))
    app = run_app(settings)
    app.wait_for(
        lambda: app.value("modelmon_window_predictions", model="fraud", window="1m") == 200,
        what="window counted",
    )
    names = {name for name, _ in app.metrics()}
    assert "modelmon_feature_psi" not in names  # a gap, not a false calm
    assert "modelmon_feature_drift_detected" not in names


def test_promtool_accepts_live_metrics(
    broker: EmbeddedBroker,
    topics: Topics,
    tmp_path: Path,
    fraud_reference: Path,
    run_app: Any,
) -> None:
    promtool = require_prometheus_tool("promtool")
    settings = make_config(
        broker, topics, [fraud_model(fraud_reference, min_samples=100)], tmp_path
    )
    values = [orjson.dumps(e) for e in Traffic(2).events("fraud", 500, time.time(), 100.0)]
    values.append(b"garbage")
    produce(broker.bootstrap, topics.predictions, values, by_index(values))
    app = run_app(settings)
    app.wait_for(
        lambda: app.value("modelmon_window_predictions", model="fraud", window="1m") == 500,
        what="window counted",
    )
    _, body = app.get("/metrics")
    assert b"modelmon_feature_psi{" in body and b"modelmon_build_info{" in body
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
