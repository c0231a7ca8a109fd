"""End to end in group mode: 2 ``modelmon run`` replicas → a real Prometheus → shipped rules
and dashboard, and a handover of the acting replica.

Two real ``modelmon run`` processes with ``coordination.enabled`` share one consumer group over
co-partitioned topics (4 partitions each; predictions and labels keyed by the prediction id) and
reference files (:mod:`tests.support.group`); Debian's ``prometheus`` scrapes both every second
with the shipped rules (their ``for:`` 60 times faster) while the live traffic of the
``fraud`` and ``demand`` models flows (:mod:`tests.support.e2e`). Only the acting replica
exports the model statistics, so Prometheus must see one truth, whatever the replica count:

- after fraud's inputs drift, each alert that fires fires once (one alert per
  alertname/model/window/feature, never one per replica), the operational alerts stay quiet,
  and one ``model.degraded`` webhook is sent for the group;
- every query of the shipped dashboard (variables substituted as Grafana does on opening it)
  returns at most one series per model/window/feature (and whatever else it groups by), at
  least one for each panel of model statistics.

Then the acting replica is stopped (SIGTERM) and the other takes over. Over the whole run,
across the handover (range queries): the value of every rule (recording or alerting) that reads
a model statistic and every dashboard query still has one series per model/window/feature (a
rule keeping the ``instance`` label would show two: one per replica that acted), the ALERTS of
the statistic alerts have one label set each (no ``instance``), the drift alerts fire again
from the new acting replica's figures, and no second ``model.degraded`` is sent.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from monitor.devkit.broker import EmbeddedBroker
from monitor.devkit.receiver import WebhookReceiver
from monitor.devkit.synthetic import FRAUD_DRIFTED
from tests.support.deploy_checks import (
    dashboard_queries,
    load_dashboard,
    metric_names,
    rules,
    substitute,
)
from tests.support.e2e import (
    OPERATIONAL_ALERTS,
    REPLICA_LABELS,
    LiveTraffic,
    Prometheus,
    dashboard_values,
    has_data,
    models,
    save_references,
    series_key,
)
from tests.support.group import ACTING, Group, create_co_partitioned_topics, has_group_mode

pytestmark = [
    pytest.mark.integration,
    pytest.mark.prometheus,
    pytest.mark.skipif(not has_group_mode(), reason="group mode (issue 15) not built"),
]

PARTITIONS = 4
#: Dashboard panels that show one line per replica on purpose (the replica's own state file).
PER_REPLICA = "by (instance)"
COMPARISONS = frozenset({">", "<", ">=", "<=", "==", "!="})


# --- reading rules and results ----------------------------------------------------------------


def statistic_names(families: Iterable[str]) -> set[str]:
    """The model statistic families and every recording rule computed from them."""
    names = set(families)
    recording = [r for r in rules() if "record" in r]
    grew = True
    while grew:
        grew = False
        for rule in recording:
            if rule["record"] not in names and metric_names(rule["expr"]) & names:
                names.add(rule["record"])
                grew = True
    return names


def rule_value(expr: str) -> str:
    """What a rule compares against its threshold: the left side of a top-level comparison
    with a number (``max by (model) (x) > 0.25`` -> ``max by (model) (x)``), else all of it."""
    node = promql_parser.parse(expr)
    if (
        isinstance(node, promql_parser.BinaryExpr)
        and str(node.op) in COMPARISONS
        and isinstance(node.rhs, promql_parser.NumberLiteral)
    ):
        return str(node.lhs)
    return expr


def repeated(result: list[dict[str, Any]], ignore: frozenset[str] = REPLICA_LABELS) -> list[str]:
    """Label sets (without ``ignore``) that more than one series of a result carries."""
    keys = collections.Counter(series_key(s["metric"], ignore) for s in result)
    return [str(dict(k)) for k, n in keys.items() if n > 1]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - started


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def group(broker: EmbeddedBroker, tmp_path: Path, receiver: WebhookReceiver) -> Iterator[Group]:
    topics = create_co_partitioned_topics(broker.bootstrap, PARTITIONS)
    references = save_references(tmp_path)
    g = Group(broker.bootstrap, topics, tmp_path, models=models(receiver.url, references))
    yield g
    g.cleanup()


# --- the test ---------------------------------------------------------------------------------


def test_two_replicas_one_truth_in_prometheus_across_a_handover(
    broker: EmbeddedBroker,
    group: Group,
    receiver: WebhookReceiver,
    prometheus_for: Callable[..., Prometheus],
) -> None:
    started, clock = time.time(), time.monotonic()
    phases: dict[str, float] = {}  # seconds since the start, printed at the end (pytest -s)
    replicas = group.start(2)
    prom = prometheus_for([r.daemon.port for r in replicas])
    instance = {r.name: f"127.0.0.1:{r.daemon.port}" for r in replicas}
    injected = {("fraud", f) for f in FRAUD_DRIFTED}

    def drift_alerts(state: str = "firing") -> set[tuple[str, str]]:
        return {
            (a["labels"]["model"], a["labels"]["feature"])
            for a in prom.alerts()
            if a["labels"]["alertname"] == "ModelmonFeatureDrift" and a["state"] == state
        }

    def degraded_webhooks() -> list[str]:
        return [
            e["type"]
            for e in receiver.received.events
            if e["data"]["model"] == "fraud" and e["type"] == "model.degraded"
        ]

    def exported_by(name: str) -> set[str]:
        return {s["metric"]["instance"] for s in prom.query(name)}

    with LiveTraffic(broker.bootstrap, group.topics) as traffic:
        # Both models' statistics reach Prometheus, from the acting replica only.
        wait_until(
            lambda: (
                {"fraud", "demand"}
                <= {s["metric"]["model"] for s in prom.query("modelmon_feature_psi")}
            ),
            timeout=60,
            what="drift statistics of both models in Prometheus",
        )
        phases["statistics in Prometheus"] = time.monotonic() - clock
        acting = group.acting()
        (passive,) = [r for r in replicas if r is not acting]
        # The model statistic families: what the acting replica exports and the other does not.
        families = {name for name, _ in acting.scrape()} - {name for name, _ in passive.scrape()}
        assert {
            "modelmon_feature_psi",
            "modelmon_window_predictions",
            "modelmon_degraded",
            "modelmon_last_evaluation_timestamp_seconds",
        } <= families, sorted(families)
        assert ACTING not in families
        # Prometheus scrapes each replica on its own schedule: both answer within a scrape or two.
        wait_until(
            lambda: (
                exported_by("modelmon_feature_psi") == {instance[acting.name]}
                and exported_by(ACTING) == set(instance.values())
            ),
            timeout=30,
            what="statistics from the acting replica only, modelmon_acting from both",
        )
        statistics = statistic_names(families)
        stat_alerts = {
            r["alert"]: r for r in rules() if "alert" in r and metric_names(r["expr"]) & statistics
        }
        assert {"ModelmonFeatureDrift", "ModelmonModelDegraded", "ModelmonAccuracyLow"} <= set(
            stat_alerts
        )

        # Drift fraud's inputs: each drift alert fires once for the group.
        traffic.drift.set()
        wait_until(
            lambda: injected <= drift_alerts(),
            timeout=60,
            what=f"ModelmonFeatureDrift firing for {sorted(injected)}",
        )
        phases["drift alerts firing"] = time.monotonic() - clock
        alerts = prom.alerts()
        firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
        assert "ModelmonModelDegraded" in firing, firing
        assert not firing & OPERATIONAL_ALERTS, firing
        per_alert = collections.Counter(
            tuple(a["labels"].get(k) for k in ("alertname", "model", "window", "feature"))
            for a in alerts
        )
        assert all(n == 1 for n in per_alert.values()), per_alert
        assert not [
            a
            for a in alerts
            if a["labels"]["alertname"] in stat_alerts and (a["labels"].keys() & REPLICA_LABELS)
        ], alerts
        wait_until(lambda: len(degraded_webhooks()) >= 1, timeout=30, what="model.degraded")
        assert degraded_webhooks() == ["model.degraded"]

        # Every rule evaluates without error.
        broken = [
            (r.get("name"), r.get("lastError"))
            for g in prom.api("rules")["groups"]
            for r in g["rules"]
            if r["health"] != "ok"
        ]
        assert not broken

        # The dashboard, as it opens: one series per model/window/feature, statistics present.
        values = dashboard_values()
        queries = [
            (where, substitute(expr, values)) for where, expr in dashboard_queries(load_dashboard())
        ]
        assert len(queries) >= 30
        problems: list[str] = []
        for where, expr in queries:
            result = prom.query(expr)
            if PER_REPLICA not in expr and not where.startswith("variable"):
                problems += [f"{where}: {expr}: two series for {k}" for k in repeated(result)]
            if metric_names(expr) & statistics and not has_data({"result": result}):
                problems.append(f"{where}: {expr}: no data")
        assert not problems, "\n".join(problems)
        phases["dashboard checked"] = time.monotonic() - clock

        # Handover: the acting replica stops; the other takes over and exports the statistics.
        code, _ = acting.daemon.terminate()
        assert code == 0, acting.daemon.log()[-3000:]
        stopped = time.monotonic()
        assert group.acting(timeout=60) is passive
        took = wait_until(
            lambda: exported_by("modelmon_feature_psi") == {instance[passive.name]},
            timeout=60,
            what="the statistics from the new acting replica in Prometheus",
        )
        phases["takeover in Prometheus"] = time.monotonic() - clock
        wait_until(
            lambda: injected <= drift_alerts(),
            timeout=60,
            what="ModelmonFeatureDrift firing on the new acting replica's figures",
        )
        phases["drift alerts firing after takeover"] = time.monotonic() - clock
        time.sleep(5.0)  # the new acting replica evaluates (and would send) a few more times
        assert degraded_webhooks() == ["model.degraded"], "the takeover sent the transition again"
        end = time.time()

    # Across the handover (range queries over the whole run): one series per thing.
    problems = []
    for rule in rules():
        name = rule.get("alert") or rule["record"]
        if not metric_names(rule["expr"]) & statistics:
            continue
        expr = rule_value(rule["expr"])
        result = prom.query_range(expr, started, end)["result"]
        problems += [f"rule {name}: {expr}: two series for {k}" for k in repeated(result)]
        if "alert" in rule:
            problems += [
                f"rule {name}: {expr}: a series per replica ({s['metric']})"
                for s in result
                if s["metric"].keys() & REPLICA_LABELS
            ]
    alert_series = prom.query_range('ALERTS{alertname=~"Modelmon.*"}', started, end)["result"]
    for alertname in stat_alerts:
        sets = {
            series_key(s["metric"], {"alertstate"})
            for s in alert_series
            if s["metric"]["alertname"] == alertname
        }
        about = collections.Counter(
            tuple(dict(k).get(x) for x in ("model", "window", "feature")) for k in sets
        )
        problems += [f"ALERTS {alertname} {a}: {n} label sets" for a, n in about.items() if n > 1]
    for where, expr in queries:
        if PER_REPLICA in expr or where.startswith("variable"):
            continue
        result = prom.query_range(expr, started, end)["result"]
        problems += [f"{where}: {expr}: two series for {k}" for k in repeated(result)]
    assert not problems, "\n".join(problems)

    # How long the drift alerts were not firing around the takeover (for the report).
    firing_drift = prom.query_range(
        'ALERTS{alertname="ModelmonFeatureDrift", alertstate="firing", model="fraud"}',
        started,
        end,
    )["result"]
    gaps = {
        s["metric"]["feature"]: max(
            (float(b[0]) - float(a[0]) for a, b in zip(s["values"], s["values"][1:], strict=False)),
            default=0.0,
        )
        for s in firing_drift
    }
    print(
        "\ne2e group phases (s):",
        {k: round(v, 1) for k, v in phases.items()},
        f"statistics from the new replica {took:.1f}s after the takeover was seen",
        f"(stop at {stopped - clock:.1f}s); longest gap in firing drift alerts (s): {gaps}",
    )
