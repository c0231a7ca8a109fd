"""Group mode (issue 15): several real ``modelmon run`` processes in one consumer group over
co-partitioned topics (6 partitions, a label on its prediction's partition number), judged
against the oracle of the records produced (:mod:`tests.support.group`).

The contract: with ``coordination.enabled``, the replicas split the partitions, publish their
per-partition state to an internal topic and merge every partition into global windows; the
one that owns partition 0 of the predictions topic acts (``modelmon_acting`` 1, the policy and
its webhooks, every model statistic family on ``/metrics``); the others export
``modelmon_acting`` 0 and operational metrics only. After a replica is killed with its disk,
or stopped, or joined by another, the global figures are again exactly the oracle's: window
counts equal (nothing lost, nothing counted twice), statistics to 1e-9, and labels produced
after the handoff still join their predictions. A degradation is sent once for the group.

Until ``monitor.settings`` has the ``coordination`` section these tests are skipped; the
harness test, one replica without coordination on the same topics, runs today and shows the
harness and its oracle are right.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.devkit.broker import EmbeddedBroker, free_port
from monitor.devkit.receiver import WebhookReceiver
from tests.support.fault_oracle import MODEL, degrading_model
from tests.support.fault_tools import wait_for
from tests.support.group import (
    ACTING,
    PARTITIONS,
    Group,
    Oracle,
    Settled,
    create_co_partitioned_topics,
    has_group_mode,
    partition_of,
)
from tests.support.helpers import Topics

pytestmark = [pytest.mark.faults, pytest.mark.integration]

group_mode = pytest.mark.skipif(
    not has_group_mode(),
    reason="group mode (issue 15) not built yet: monitor.settings has no coordination section",
)

RATE = 150.0  # records per second while a feed runs
SECRET = "whsec_" + base64.b64encode(b"group-suite-webhook-secret").decode()


@pytest.fixture
def co_topics(broker: EmbeddedBroker) -> Topics:
    """Fresh co-partitioned topics per test (6 partitions each)."""
    return create_co_partitioned_topics(broker.bootstrap)


@pytest.fixture
def group(broker: EmbeddedBroker, co_topics: Topics, tmp_path: Path) -> Iterator[Group]:
    g = Group(broker.bootstrap, co_topics, tmp_path)
    yield g
    g.cleanup()


def report(what: str, settled: Settled, **extra: str) -> None:
    """The figures, printed (pytest -s) for the closing note."""
    v = settled.verdict
    parts = [f"{k} {x}" for k, x in extra.items()]
    parts.append(f"settled in {settled.took:.1f}s")
    if v is not None and "15m" in v.got:
        parts.append(f"15m expected {v.expected['15m']} got {v.got['15m']}")
        parts.append(f"lost {v.lost('15m')} duplicated {v.duplicated('15m')}")
    print(f"\n[group] {what}: " + "; ".join(parts))


def assert_global(group: Group, settled: Settled, replicas: int) -> None:
    """Exact against the oracle; ``replicas`` live; exactly one acting, which alone exports
    the model statistic families, and its window counts on /metrics are the oracle's."""
    settled.assert_exact()
    assert settled.acting is not None and settled.verdict is not None
    assert len(group.live()) == replicas
    for name, scraped in settled.scrapes.items():
        assert (ACTING, ()) in scraped, f"{name} does not export {ACTING}"
        acting = 1.0 if name == settled.acting.name else 0.0
        assert scraped[(ACTING, ())] == acting, (name, scraped[(ACTING, ())])
        if name != settled.acting.name:
            exported = {n for n, _ in scraped} & settled.families
            assert not exported, f"{name} (not acting) exports {sorted(exported)}"
    metrics = settled.scrapes[settled.acting.name]
    for window, (preds, labels) in settled.verdict.expected.items():
        key = (("model", MODEL), ("window", window))
        assert metrics[("modelmon_window_predictions", key)] == preds, window
        assert metrics[("modelmon_window_labels", key)] == labels, window


# -- the harness itself, today ------------------------------------------------------------------


def test_harness_one_replica_without_coordination_is_exact(
    broker: EmbeddedBroker, co_topics: Topics, tmp_path: Path
) -> None:
    """The harness on today's modelmon: one replica, no coordination section, the 6-partition
    co-partitioned topics, a live feed with labels held back then released: the replica's
    snapshot and /metrics equal the oracle."""
    group = Group(broker.bootstrap, co_topics, tmp_path, coordination=False)
    try:
        (replica,) = group.start(1)
        feed, gate = group.feed(RATE, gate=True)
        assert gate is not None
        feed.start()
        time.sleep(2.0)
        gate.close()
        time.sleep(2.0)
        gate.open()
        time.sleep(1.5)
        produced = feed.finish()
        settled = group.settle(produced, timeout=60)
        report("harness, 1 replica, no coordination", settled, released=str(len(gate.released)))
        settled.assert_exact()
        assert settled.acting is replica
        # Every record on the partition the co-partitioner chose; all 6 used on both topics.
        placed = set()
        for rec, (part, _) in zip(produced.records, produced.placed, strict=True):
            assert part == partition_of(rec)
            placed.add((rec.topic, part))
        for topic in (co_topics.predictions, co_topics.labels):
            assert {p for t, p in placed if t == topic} == set(range(PARTITIONS))
        # Held-back labels were produced, and they joined (the window label counts are exact).
        assert len(gate.released) > 50
        metrics = settled.scrapes[replica.name]
        assert settled.verdict is not None
        for window, (preds, labels) in settled.verdict.expected.items():
            key = (("model", MODEL), ("window", window))
            assert metrics[("modelmon_window_predictions", key)] == preds
            assert metrics[("modelmon_window_labels", key)] == labels
        # The families a non-acting replica must not export are ones this daemon does export.
        exported = {n for n, _ in metrics} & settled.families
        assert {"modelmon_window_predictions", "modelmon_feature_psi"} <= exported
        assert "modelmon_accuracy_ratio" in exported
        assert replica.daemon.terminate()[0] == 0
    finally:
        group.cleanup()


def test_harness_sees_that_replicas_without_coordination_are_partial(
    broker: EmbeddedBroker, co_topics: Topics, tmp_path: Path
) -> None:
    """Today's modelmon, 3 replicas in one group: each holds its partitions' records only, and
    the judge of the group tests says so for every one of them (the group tests can fail)."""
    group = Group(broker.bootstrap, co_topics, tmp_path, coordination=False)
    try:
        replicas = group.start(3)
        time.sleep(5.0)  # the group settles before anything is produced
        feed, _ = group.feed()
        feed.produce_now(1500)
        produced = feed.finish()
        total = sum(1 for r in produced.records if r.topic == co_topics.predictions)

        def consumed() -> float:
            key = ("modelmon_events_total", (("model", MODEL), ("stream", "predictions")))
            return sum(m.get(key, 0.0) for m in group.scrape().values())

        wait_for(lambda: consumed() >= total, 60, "every prediction consumed by the group")
        oracle = Oracle.of(group.settings, group.reference, produced.records)
        for replica in replicas:
            verdict, problems = group.check(replica, oracle)
            assert verdict is not None, problems
            assert verdict.lost("15m") > 0 and verdict.duplicated("15m") == 0, replica.name
            assert any("window_predictions" in p for p in problems), problems
    finally:
        group.cleanup()


# -- group mode -----------------------------------------------------------------------------------


@group_mode
def test_three_replicas_steady_state_give_the_global_figures_once(group: Group) -> None:
    group.start(3)
    feed, _ = group.feed(RATE)
    feed.start()
    time.sleep(4.0)
    settled = group.settle(feed.finish())
    report("3 replicas, steady state", settled)
    assert_global(group, settled, replicas=3)


@group_mode
def test_a_fourth_replica_joins_and_the_figures_stay_exact(group: Group) -> None:
    group.start(3)
    feed, _ = group.feed(RATE)
    feed.start()
    time.sleep(2.0)
    group.start(1)  # a rebalance while records keep coming
    time.sleep(2.0)
    assert feed.running
    settled = group.settle(feed.finish())
    report("a 4th replica joins", settled)
    assert_global(group, settled, replicas=4)


@group_mode
def test_kill_9_with_its_disk_then_a_fresh_replica_loses_and_doubles_nothing(
    group: Group,
) -> None:
    """The acting replica (the role, its partitions, their pending joins) is killed and its
    state directory deleted; the replacement starts empty. Labels held back since before the
    kill, for predictions produced before it, are produced after it: they still join."""
    kill_9_with_its_disk(group)


@group_mode
def test_the_same_on_the_confluent_client(
    broker: EmbeddedBroker, co_topics: Topics, tmp_path: Path
) -> None:
    """Group mode on ``kafka.client: confluent``: the takeover runs in librdkafka's assignment
    callback; the same kill -9 with the disk, the same exact figures."""
    group = Group(broker.bootstrap, co_topics, tmp_path, client="confluent")
    try:
        kill_9_with_its_disk(group)
    finally:
        group.cleanup()


def kill_9_with_its_disk(group: Group) -> None:
    group.start(3)
    feed, gate = group.feed(RATE, gate=True)
    assert gate is not None
    feed.start()
    time.sleep(2.0)
    gate.close()  # from here labels wait; predictions keep coming
    time.sleep(2.0)
    victim = group.acting()
    victim.kill_and_wipe()
    killed_at = time.monotonic()
    time.sleep(1.0)
    victim.daemon.start()  # a new pod: same config, empty disk
    victim.daemon.wait_ready()
    gate.open()  # the held labels go first
    time.sleep(2.0)
    assert feed.running
    settled = group.settle(feed.finish())
    report(
        f"kill -9 the acting replica, state dir deleted ({group.client})",
        settled,
        after_kill=f"{time.monotonic() - killed_at:.1f}s",
        released=str(len(gate.released)),
    )
    assert_global(group, settled, replicas=3)
    # Not vacuous: labels produced after the kill, on every partition (so on the killed
    # replica's), and their predictions are in the window whose label count is exact.
    assert len(gate.released) > 50
    assert {partition_of(r) for r in gate.released} == set(range(PARTITIONS))


@group_mode
def test_sigterm_one_replica_and_the_figures_stay_exact(group: Group) -> None:
    group.start(3)
    feed, _ = group.feed(RATE)
    feed.start()
    time.sleep(2.0)
    acting = group.acting()
    leaving = next(r for r in group.live() if r is not acting)
    code, took = leaving.daemon.terminate()
    assert code == 0, leaving.daemon.log()[-2000:]
    time.sleep(2.0)
    assert feed.running
    settled = group.settle(feed.finish())
    report("SIGTERM one replica", settled, exit=f"{took:.1f}s")
    assert_global(group, settled, replicas=2)


@group_mode
def test_a_rolling_restart_of_every_replica_keeps_the_figures_exact(group: Group) -> None:
    replicas = group.start(3)
    feed, _ = group.feed(RATE)
    feed.start()
    time.sleep(2.0)
    # A rolling restart, as a rollout does it: every replica stops (SIGTERM) and comes back
    # while the others run. (Stopping all of them at once leaves the group empty, and the
    # embedded broker then takes from 17 s to over two minutes to assign anything to the
    # next members, with or without group mode: measured with bare kafka-python consumers.)
    for r in replicas:
        assert r.daemon.terminate()[0] == 0, r.daemon.log()[-2000:]
        r.daemon.start()
        r.daemon.wait_ready(90)
    time.sleep(2.0)
    settled = group.settle(feed.finish())
    report("all 3 replicas restarted", settled)
    assert_global(group, settled, replicas=3)


@group_mode
def test_one_signed_degraded_webhook_per_transition_for_the_group(
    broker: EmbeddedBroker, co_topics: Topics, tmp_path: Path
) -> None:
    """Three replicas see the drifting stream; the group sends one ``model.degraded`` (counted
    at a receiver that does not deduplicate, so a second POST of the same id would show, as
    would another replica's). The acting replica is then killed with its disk: its successor
    knows the model is degraded and sends nothing more."""
    receiver = WebhookReceiver(SECRET, dedupe=False).start()
    model = degrading_model(tmp_path / "churn.json", receiver.url, SECRET, ["0.5s", "1s"])
    group = Group(broker.bootstrap, co_topics, tmp_path, model=model)
    try:
        feed, _ = group.feed()
        feed.produce_now(3000)
        group.start(3)
        wait_for(lambda: bool(receiver.received.events), 60, "a model.degraded webhook")
        first = group.acting()
        for _ in range(3):  # evaluations on every replica, none sends another
            first.daemon.status_after(time.time())
        assert [e["type"] for e in receiver.received.events] == ["model.degraded"]

        first.kill_and_wipe()
        first.daemon.start()
        first.daemon.wait_ready()
        feed.produce_now(1500)  # still drifting: still degraded, nothing new to say
        feed.finish()
        successor = group.acting()
        for _ in range(4):
            successor.daemon.status_after(time.time())
        degraded = ("modelmon_degraded", (("model", MODEL),))
        assert successor.scrape().get(degraded) == 1.0, "the policy state did not travel"
        time.sleep(2.0)
        events = receiver.received.events
        assert [e["type"] for e in events] == ["model.degraded"], events
        assert events[0]["data"]["model"] == MODEL
        assert receiver.received.rejected == {}  # every POST that arrived was signed right
        print(
            f"\n[group] webhooks: {len(events)} model.degraded, acting {first.name} -> "
            f"{successor.name}"
        )
    finally:
        group.cleanup()
        receiver.stop()


@group_mode
def test_a_webhook_stored_by_an_acting_replica_that_dies_with_its_disk_is_still_delivered(
    broker: EmbeddedBroker, co_topics: Topics, tmp_path: Path
) -> None:
    """The receiver is down when the group decides ``model.degraded``: the acting replica
    stores the webhook in its outbox and publishes it, undelivered, with the policy state. It
    is then killed with its disk; the replica that takes the role over adopts the webhook and
    delivers it, once, with the same id, when the receiver comes up."""
    port = free_port()
    model = degrading_model(
        tmp_path / "churn.json", f"http://127.0.0.1:{port}/hooks", SECRET, ["1s"] * 120
    )
    group = Group(broker.bootstrap, co_topics, tmp_path, model=model)
    receiver = None
    try:
        feed, _ = group.feed()
        feed.produce_now(3000)
        feed.finish()
        group.start(2)
        first = group.acting()
        stored = (
            "modelmon_findings_total",
            (("model", MODEL), ("outcome", "enqueued"), ("type", "model.degraded")),
        )
        wait_for(lambda: first.scrape().get(stored) == 1.0, 60, "model.degraded stored")
        time.sleep(3.0)  # a few evaluations: the P record carries the undelivered webhook
        first.kill_and_wipe()
        successor = group.acting()
        assert successor is not first
        receiver = WebhookReceiver(SECRET, dedupe=False, port=port).start()
        wait_for(lambda: bool(receiver.received.events), 60, "the adopted webhook")
        time.sleep(3.0)  # and nothing more: no second decision, no second copy
        events = receiver.received.events
        assert [e["type"] for e in events] == ["model.degraded"], events
        assert receiver.received.rejected == {}
        assert successor.scrape().get(stored) in (None, 0.0), "decided again instead of adopting"
    finally:
        group.cleanup()
        if receiver is not None:
            receiver.stop()
