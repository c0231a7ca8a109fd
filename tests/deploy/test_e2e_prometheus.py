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

import base64
import heapq
import json
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer

from monitor.devkit.broker import EmbeddedBroker
from monitor.devkit.receiver import WebhookReceiver
from monitor.devkit.synthetic import FRAUD_DRIFTED, Traffic, encode, features_of
from tests.support.deploy_checks import (
    DASHBOARD,
    DATASOURCES,
    DEPLOY,
    RULES,
    dashboard_queries,
    load_dashboard,
    load_yaml,
    substitute,
)
from tests.support.helpers import RunningApp, Topics, make_config, require_prometheus_tool
from tests.support.tls import bcrypt_hash, make_pki, write_web_config

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

RENDER_PREVIEW = DEPLOY / "grafana" / "render_preview.py"
SECRET = "whsec_" + base64.b64encode(b"modelmon-e2e-prometheus-secret!!").decode()
WINDOW = "1m"
FOR_SPEEDUP = 60  # `for:` durations in the test's copy of the rules: 10m -> 10s
BASELINE_SECONDS = 20.0  # undrifted traffic before the drift, with statistics exported
RATE = {"fraud": 200.0, "demand": 100.0}  # predictions per second
BOOTSTRAP_EVENTS = 1000  # each model's reference: its first (undrifted) events, as in compose
# Alerts about the daemon itself, which a healthy daemon under normal load must never fire.
OPERATIONAL_ALERTS = {
    "ModelmonAbsent",
    "ModelmonTargetDown",
    "ModelmonKafkaUnreachable",
    "ModelmonEvaluationStale",
    "ModelmonCheckpointFailing",
    "ModelmonConsumerLagHigh",
    "ModelmonInvalidEventsHigh",
    "ModelmonNoPredictions",
    "ModelmonWebhookDeliveryFailed",
    "ModelmonWebhookBacklog",
}


# --- Prometheus -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for unit in ("ms", "s", "m", "h", "d"):
        if duration.endswith(unit) and duration[: -len(unit)].isdigit():
            return int(duration[: -len(unit)]) * units[unit]
    raise ValueError(f"unsupported duration {duration!r}")


def faster_rules(path: Path) -> dict[str, Any]:
    """The shipped rules with every ``for:`` divided by FOR_SPEEDUP (at least 1 s)."""
    data: dict[str, Any] = load_yaml(RULES)
    for group in data["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{max(1, round(seconds(rule['for']) / FOR_SPEEDUP))}s"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return data


class Prometheus:
    """A real Prometheus server on 127.0.0.1 and a small client for its HTTP API."""

    def __init__(self, binary: str, config: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {timeout}s: {self.log_tail()}")

    def log_tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]

    def api(self, path: str, **params: str | float) -> Any:
        query = urllib.parse.urlencode({k: str(v) for k, v in params.items()})
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._log.close()


def has_data(result: dict[str, Any]) -> bool:
    """At least one series with at least one finite value (NaN is a gap on a panel)."""
    for series in result["result"]:
        values = series["values"] if "values" in series else [series["value"]]
        if any(math.isfinite(float(v)) for _, v in values):
            return True
    return False


# --- live traffic -----------------------------------------------------------------------------


class LiveTraffic:
    """Predictions at RATE in 0.25 s ticks with event time = now; 80 % get a label 1-3 s later
    (keyed by the prediction id, like the predictions); a malformed record every 5 s.
    ``drift`` switches fraud's inputs to the drifted distributions."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.topics = topics
        self.drift = threading.Event()
        self.stop = threading.Event()
        self.sent = 0
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
        self._thread = threading.Thread(target=self._run, name="e2e-traffic", daemon=True)

    def __enter__(self) -> LiveTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=10)
        self._producer.close(timeout=5)

    def _run(self) -> None:
        traffic, rng = Traffic(seed=31), random.Random(31)
        due: list[tuple[float, str, bytes]] = []  # (send at, id, label record): a min-heap
        tick, ticks = 0.25, 0
        while not self.stop.is_set():
            started, now = time.monotonic(), time.time()
            for model, rate in RATE.items():
                n = int(rate * tick)
                drifted = model == "fraud" and self.drift.is_set()
                events = traffic.events(model, n, now, rate, drifted=drifted)
                for event, truth in zip(events, traffic.labels(events), strict=True):
                    key = event["id"].encode()
                    self._producer.send(self.topics.predictions, key=key, value=encode(event))
                    if rng.random() < 0.8:
                        at = event["timestamp"] + rng.uniform(1.0, 3.0)
                        label = {"id": event["id"], "model": model, "label": truth, "timestamp": at}
                        heapq.heappush(due, (at, event["id"], encode(label)))
                self.sent += n
            while due and due[0][0] <= now:
                _, ident, record = heapq.heappop(due)
                self._producer.send(self.topics.labels, key=ident.encode(), value=record)
            ticks += 1
            if ticks % 20 == 0:
                self._producer.send(self.topics.predictions, value=b"{not json")
            self._producer.flush()
            self.stop.wait(max(0.0, tick - (time.monotonic() - started)))


# --- fixtures ---------------------------------------------------------------------------------


def models(webhook_url: str) -> list[dict[str, Any]]:
    webhook = {
        "url": webhook_url,
        "secret": SECRET,
        "allow_private_targets": True,
        "retry_schedule": ["0.5s"],
    }
    common = {
        "windows": [{"name": WINDOW, "length": "1m", "pane": "5s"}],
        "allowed_lateness": "10s",
        "label_wait": "30s",
        "webhook": webhook,
    }
    return [
        {
            "name": "fraud",
            "task": "binary_classification",
            "reference": {"bootstrap_events": BOOTSTRAP_EVENTS},
            "features": features_of("fraud"),
            "policy": {"min_samples": 300, "psi_max": 0.2, "breaches_to_fire": 2},
            **common,
        },
        {
            "name": "demand",
            "task": "regression",
            "reference": {"bootstrap_events": BOOTSTRAP_EVENTS},
            "features": features_of("demand"),
            "policy": {"min_samples": 300, "min_labels": 100},
            **common,
        },
    ]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(SECRET).start()
    yield r
    r.stop()


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Start Prometheus scraping the daemon on a port, with the (faster) shipped rules.

    ``jobs`` adds settings to the modelmon job (``scheme``, ``tls_config``, ``basic_auth``) and
    ``extra_jobs`` adds scrape jobs of its own.
    """
    binary = require_prometheus_tool("prometheus")
    started: list[Prometheus] = []

    def start(
        daemon_port: int,
        job: dict[str, Any] | None = None,
        extra_jobs: list[dict[str, Any]] | None = None,
    ) -> Prometheus:
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        rules = workdir / RULES.name
        faster_rules(rules)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": "modelmon",  # the rules select job="modelmon"
                    "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}],
                    **(job or {}),
                },
                *(extra_jobs or []),
            ],
        }
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        prom = Prometheus(binary, path, workdir)
        started.append(prom)
        prom.wait_ready()
        return prom

    yield start
    for prom in started:
        prom.stop()


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

    def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.5)

    with LiveTraffic(broker.bootstrap, topics) as traffic:
        # Baseline: both models' statistics reach Prometheus; no drift alert fires.
        wait_until(
            lambda: (
                {"fraud", "demand"}
                <= {
                    s["metric"]["model"]
                    for s in prom.api("query", query="modelmon_feature_psi")["result"]
                }
            ),
            timeout=40,
            what="drift statistics of both models in Prometheus",
        )
        phases["statistics in Prometheus"] = time.monotonic() - clock
        baseline_end = time.monotonic() + BASELINE_SECONDS
        while time.monotonic() < baseline_end:
            assert not {m for m, _ in drift_alerts("firing")} & {"fraud"}, "drift before drift"
            time.sleep(1.0)

        # Drift fraud's inputs: the drift alert goes pending, then (10 s later) firing.
        traffic.drift.set()
        injected = {("fraud", f) for f in FRAUD_DRIFTED}
        wait_until(
            lambda: injected <= drift_alerts("firing"),
            timeout=45,
            what=f"ModelmonFeatureDrift firing for {sorted(injected)}",
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
        uid = load_yaml(DATASOURCES)["datasources"][0]["uid"]
        values = {
            "datasource": uid,
            "model": ".+",
            "window": WINDOW,
            "feature": ".+",
            "__rate_interval": "30s",
            "__interval": "1s",
            "__range": "1m",
        }
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
