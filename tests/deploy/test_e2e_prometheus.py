"""End to end with a real Prometheus: broker → daemon → Prometheus (shipped rules) → dashboard.

The real Kafka-protocol broker, the daemon in-process, and Debian's ``prometheus`` server
scraping it every second with the shipped recording and alert rules (evaluated every second).
Live traffic for two models (``fraud``, binary; ``demand``, regression) with labels, a few
malformed records, and a verifying webhook receiver. After drift is injected into fraud's
inputs, the Prometheus API shows the drift alert firing for every injected feature, the
operational alerts stay quiet, and every PromQL expression of the Grafana dashboard, with its
variables substituted as Grafana would on opening it (all models, all features), returns data.
Finally deploy/grafana/render_preview.py draws the dashboard from this Prometheus.

The shipped alerts hold for minutes (``for: 10m``); the rules are loaded from a copy in which
every ``for:`` runs 60 times faster (10m → 10s, 1m → 1s) and nothing else changes.
``MODELMON_PREVIEW_OUT=docs/dashboard.png`` also writes the picture the README shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.devkit.broker import EmbeddedBroker
from monitor.devkit.receiver import WebhookReceiver
from monitor.devkit.synthetic import FRAUD_DRIFTED, features_of
from tests.support.deploy_checks import (
    DASHBOARD,
    DEPLOY,
    RULES,
    dashboard_queries,
    load_dashboard,
    substitute,
)
from tests.support.e2e import (
    OPERATIONAL_ALERTS,
    WINDOW,
    LiveTraffic,
    Prometheus,
    dashboard_values,
    has_data,
    models,
)
from tests.support.helpers import RunningApp, Topics, make_config
from tests.support.tls import bcrypt_hash, make_pki, write_web_config
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

RENDER_PREVIEW = DEPLOY / "grafana" / "render_preview.py"
BASELINE_SECONDS = 20.0  # undrifted traffic before the drift, with statistics exported
# --- the test ---------------------------------------------------------------------------------


def test_drift_alert_fires_and_every_dashboard_query_returns_data(
    broker: EmbeddedBroker,
    topics: Topics,
    tmp_path: Path,
    receiver: WebhookReceiver,
    run_app: Callable[..., RunningApp],
    prometheus_for: Callable[..., Prometheus],
) -> None:
    test_started, clock = time.time(), time.monotonic()
    phases: dict[str, float] = {}  # seconds since the start, printed at the end (pytest -s)
    settings = make_config(
        broker,
        topics,
        models(receiver.url),
        tmp_path,
        state={"dir": str(tmp_path / "state"), "checkpoint_interval": "2s"},
    )
    app = run_app(settings)
    app.wait_for(lambda: app.app.http.port > 0 and app.get("/healthz")[0] == 200, what="http")
    prom = prometheus_for(app.app.http.port)

    def drift_alerts(state: str) -> set[tuple[str, str]]:
        return {
            (a["labels"]["model"], a["labels"]["feature"])
            for a in prom.alerts()
            if a["labels"]["alertname"] == "ModelmonFeatureDrift" and a["state"] == state
        }

    with LiveTraffic(broker.bootstrap, topics) as traffic:
        # Baseline: both models' statistics reach Prometheus; no drift alert fires.
        wait_for(
            lambda: (
                {"fraud", "demand"}
                <= {
                    s["metric"]["model"]
                    for s in prom.api("query", query="modelmon_feature_psi")["result"]
                }
            ),
            timeout=40,
            what="drift statistics of both models in Prometheus",
            every=0.5,
        )
        phases["statistics in Prometheus"] = time.monotonic() - clock
        baseline_end = time.monotonic() + BASELINE_SECONDS
        while time.monotonic() < baseline_end:
            assert not {m for m, _ in drift_alerts("firing")} & {"fraud"}, "drift before drift"
            time.sleep(1.0)

        # Drift fraud's inputs: the drift alert goes pending, then (10 s later) firing.
        traffic.drift.set()
        injected = {("fraud", f) for f in FRAUD_DRIFTED}
        wait_for(
            lambda: injected <= drift_alerts("firing"),
            timeout=45,
            what=f"ModelmonFeatureDrift firing for {sorted(injected)}",
            every=0.5,
        )
        phases["drift alert firing"] = time.monotonic() - clock
        firing = {a["labels"]["alertname"] for a in prom.alerts() if a["state"] == "firing"}
        assert "ModelmonModelDegraded" in firing, firing
        assert not firing & OPERATIONAL_ALERTS, firing
        assert [e["type"] for e in receiver.received.events if e["data"]["model"] == "fraud"] == [
            "model.degraded"
        ]

        # Every rule evaluates without error (recording rules included).
        groups = prom.api("rules")["groups"]
        broken = [
            (r.get("name"), r.get("lastError"))
            for g in groups
            for r in g["rules"]
            if r["health"] != "ok"
        ]
        assert not broken
        assert {g["file"] for g in groups} == {str(tmp_path / "prometheus" / RULES.name)}

        # Every dashboard expression returns data, variables as Grafana substitutes them on
        # opening the dashboard: all models, all features, a window, the provisioned datasource.
        values = dashboard_values()
        empty = []
        queries = list(dashboard_queries(load_dashboard()))
        for where, expr in queries:
            concrete = substitute(expr, values)
            if not has_data(prom.api("query", query=concrete)):
                empty.append(f"{where}: {concrete}")
        assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
        assert len(queries) >= 30
        phases["dashboard queries answered"] = time.monotonic() - clock

        # The dashboard picture, from this Prometheus' data.
        outputs = [tmp_path / "dashboard.png"]
        if os.environ.get("MODELMON_PREVIEW_OUT"):
            outputs.append(Path(os.environ["MODELMON_PREVIEW_OUT"]).resolve())
        for out in outputs:
            result = subprocess.run(
                [
                    sys.executable,
                    str(RENDER_PREVIEW),
                    "--prometheus",
                    prom.url,
                    "--dashboard",
                    str(DASHBOARD),
                    "--start",
                    str(test_started),
                    "--end",
                    str(time.time()),
                    "--window",
                    WINDOW,
                    "--rate-interval",
                    "15",  # smoother than Grafana's 4 x 1 s scrape interval, for the picture
                    "--out",
                    str(out),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            png = out.read_bytes()
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            assert 50_000 < len(png) < 400_000, len(png)
        phases["picture drawn"] = time.monotonic() - clock
    print("e2e phases (s):", {k: round(v, 1) for k, v in phases.items()})


# --- TLS and basic auth -----------------------------------------------------------------------

SCRAPE_PASSWORD = "e2e-scrape-password"


def test_prometheus_scrapes_over_tls_with_basic_auth(
    broker: EmbeddedBroker,
    topics: Topics,
    tmp_path: Path,
    run_app: Callable[..., RunningApp],
    prometheus_for: Callable[..., Prometheus],
) -> None:
    """node_exporter's web config format: Prometheus scrapes with ``scheme: https``, the CA and
    basic auth; the series arrive. A job with a wrong password is down with a 401."""
    pki = make_pki(tmp_path / "tls")
    web_config = write_web_config(
        tmp_path / "web-config.yml",
        {
            "tls_server_config": {"cert_file": "tls/server.crt", "key_file": "tls/server.key"},
            "basic_auth_users": {"prometheus": bcrypt_hash(SCRAPE_PASSWORD)},
        },
    )
    password_file = tmp_path / "scrape-password"
    password_file.write_text(SCRAPE_PASSWORD, encoding="utf-8")
    model = {
        "name": "fraud",
        "features": features_of("fraud"),
        "reference": {"bootstrap_events": 500},
    }
    http = {"host": "127.0.0.1", "port": 0, "web_config_file": str(web_config)}
    app = run_app(make_config(broker, topics, [model], tmp_path, http=http))
    app.wait_for(lambda: app.app.http.port > 0, what="http")
    port = app.app.http.port
    tls = {"scheme": "https", "tls_config": {"ca_file": str(pki.ca)}}
    prom = prometheus_for(
        port,
        job={**tls, "basic_auth": {"username": "prometheus", "password_file": str(password_file)}},
        extra_jobs=[
            {
                "job_name": "modelmon-wrong-password",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                "basic_auth": {"username": "prometheus", "password": "not-the-password"},
                **tls,
            }
        ],
    )

    def targets() -> dict[str, dict[str, Any]]:
        active = prom.api("targets", state="active")["activeTargets"]
        return {t["labels"]["job"]: t for t in active if t["lastScrape"] != "0001-01-01T00:00:00Z"}

    deadline = time.monotonic() + 30
    while not {"modelmon", "modelmon-wrong-password"} <= targets().keys():
        assert time.monotonic() < deadline, f"targets never scraped: {targets()}"
        time.sleep(0.5)
    scraped = targets()
    assert scraped["modelmon"]["health"] == "up", scraped["modelmon"]["lastError"]
    assert scraped["modelmon"]["scrapeUrl"] == f"https://127.0.0.1:{port}/metrics"
    assert scraped["modelmon-wrong-password"]["health"] == "down"
    assert "401" in scraped["modelmon-wrong-password"]["lastError"]

    series = prom.api("query", query='count({job="modelmon", __name__=~"modelmon_.+"})')
    assert int(series["result"][0]["value"][1]) >= 10, series
    build = prom.api("query", query='modelmon_build_info{job="modelmon"}')["result"]
    assert len(build) == 1, build
    assert not prom.api("query", query='{job="modelmon-wrong-password", __name__!~"up|scrape_.+"}')[
        "result"
    ], "no series through a wrong password"
