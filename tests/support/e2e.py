"""A real Prometheus for the end-to-end tests (tests/deploy/test_e2e_*prometheus.py).

- :class:`Prometheus`: Debian's ``prometheus`` server on 127.0.0.1 and a small client for its
  HTTP API; the ``prometheus_for`` fixture starts one scraping modelmon targets (job
  ``modelmon``, every second) with the shipped rules, their ``for:`` sped up
  (:func:`faster_rules`). Without the binary the tests skip, or fail under
  ``MODELMON_REQUIRE_PROMETHEUS=1``.
- :class:`LiveTraffic`: the synthetic ``fraud`` and ``demand`` models' live predictions and
  labels (both keyed by the prediction id, so co-partitioned topics stay co-partitioned), with
  a switch to drift fraud's inputs.
- :func:`models`: the two models' config (a webhook each), with bootstrapped references or
  reference files (:func:`save_references`, for group mode); the ``receiver`` fixture verifies
  the webhooks.
- :func:`dashboard_values`: the dashboard's variables as Grafana substitutes them on opening it.
- :func:`series_key`, :func:`has_data`: reading query results.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
import random
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kafka import KafkaProducer

from monitor.devkit.receiver import WebhookReceiver
from monitor.devkit.synthetic import Traffic, encode, features_of
from monitor.reference.build import build_reference
from monitor.vocabulary import FeatureKind
from tests.support.deploy_checks import DATASOURCES, RULES, load_yaml
from tests.support.helpers import Topics, require_prometheus_tool

SECRET = "whsec_" + base64.b64encode(b"modelmon-e2e-prometheus-secret!!").decode()
WINDOW = "1m"  # the models' one window (panes of 5 s)
BOOTSTRAP_EVENTS = 1000  # each model's reference: its first (undrifted) events, as in compose
# Alerts about the daemon itself, which a healthy daemon under normal load must never fire.
OPERATIONAL_ALERTS = frozenset(
    {
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
)
FOR_SPEEDUP = 60  # `for:` durations in the tests' copy of the rules: 10m -> 10s
RATE = {"fraud": 200.0, "demand": 100.0}  # predictions per second of LiveTraffic
#: Labels that tell replicas (scrape targets) apart, not what a series is about.
REPLICA_LABELS = frozenset({"instance", "pod"})


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

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The series of an instant query, now."""
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> Any:
        """A range query's data (``resultType`` and ``result``)."""
        return self.api("query_range", query=expr, start=start, end=end, step=step)

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


def series_key(
    labels: Mapping[str, str], ignore: Collection[str] = REPLICA_LABELS
) -> tuple[tuple[str, str], ...]:
    """A series' labels without ``ignore`` (by default those naming the replica), sorted: two
    series with one key are one thing reported twice."""
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ignore))


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Start Prometheus scraping the daemon(s) on a port or ports (one target each, job
    ``modelmon``), with the (faster) shipped rules.

    ``jobs`` adds settings to the modelmon job (``scheme``, ``tls_config``, ``basic_auth``) and
    ``extra_jobs`` adds scrape jobs of its own.
    """
    binary = require_prometheus_tool("prometheus")
    started: list[Prometheus] = []

    def start(
        daemon_port: int | Sequence[int],
        job: dict[str, Any] | None = None,
        extra_jobs: list[dict[str, Any]] | None = None,
    ) -> Prometheus:
        ports = [daemon_port] if isinstance(daemon_port, int) else list(daemon_port)
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
                    "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}],
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


# --- the models -------------------------------------------------------------------------------


def save_references(directory: Path, rows: int = 20_000) -> dict[str, str]:
    """Reference files of both models, from their undrifted training distributions (group mode
    takes reference files only); model name -> path."""
    paths: dict[str, str] = {}
    for seed, (model, task) in enumerate(
        (("fraud", "binary_classification"), ("demand", "regression")), start=41
    ):
        training = list(Traffic(seed).training_rows(model, rows))
        columns = {key: [row.get(key) for row in training] for key in training[0]}
        path = directory / f"{model}.reference.json"
        kinds = cast("dict[str, FeatureKind]", features_of(model))
        build_reference(model, task, columns, kinds).save(path)
        paths[model] = str(path)
    return paths


def models(webhook_url: str, references: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """``fraud`` (binary, drifts) and ``demand`` (regression), one 1m window each, with a
    webhook; references bootstrapped from the first events unless ``references`` gives files."""
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

    def reference(model: str) -> str | dict[str, int]:
        return references[model] if references else {"bootstrap_events": BOOTSTRAP_EVENTS}

    return [
        {
            "name": "fraud",
            "task": "binary_classification",
            "reference": reference("fraud"),
            "features": features_of("fraud"),
            "policy": {"min_samples": 300, "psi_max": 0.2, "breaches_to_fire": 2},
            **common,
        },
        {
            "name": "demand",
            "task": "regression",
            "reference": reference("demand"),
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


def dashboard_values(window: str = WINDOW) -> dict[str, str]:
    """The dashboard's variables as Grafana substitutes them on opening it: all models, all
    features, a window, the provisioned datasource."""
    return {
        "datasource": load_yaml(DATASOURCES)["datasources"][0]["uid"],
        "model": ".+",
        "window": window,
        "feature": ".+",
        "__rate_interval": "30s",
        "__interval": "1s",
        "__range": "1m",
    }
