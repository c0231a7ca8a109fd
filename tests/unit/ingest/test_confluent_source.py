"""The confluent-kafka adapter without a broker: settings in librdkafka's names, errors in
kafka-python's classes, and the rebalance semantics against a recording fake consumer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_END, Consumer, KafkaError, Producer, TopicPartition
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, TopicAuthorizationFailedError
from prometheus_client import CollectorRegistry

from monitor.events import RawRecord
from monitor.ingest.confluent_producer import as_kafka_error
from monitor.ingest.confluent_source import (
    ConfluentSource,
    client_config,
    consumer_config,
    producer_config,
)
from monitor.ingest.dead_letter import PERMANENT
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import ConfigError, KafkaSettings, Settings
from monitor.settings_loader import check_kafka_client, load_settings


def kafka(**values: Any) -> KafkaSettings:
    return KafkaSettings.model_validate({"predictions_topic": "p", "labels_topic": "l", **values})


def test_security_settings_map_to_librdkafka_names() -> None:
    conf = client_config(
        kafka(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username="mon",
            sasl_plain_password="s3cret",
            ssl_cafile="/etc/ca.pem",
            ssl_certfile="/etc/me.pem",
            ssl_keyfile="/etc/me.key",
            ssl_password="keypw",
            bootstrap_servers="a:9092,b:9092",
        )
    )
    assert {k: v for k, v in conf.items() if k != "logger"} == {
        "bootstrap.servers": "a:9092,b:9092",
        "client.id": "modelmon",
        "security.protocol": "sasl_ssl",
        "socket.timeout.ms": 30_000,
        "reconnect.backoff.max.ms": 1000,
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "mon",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/me.pem",
        "ssl.key.location": "/etc/me.key",
        "ssl.key.password": "keypw",
    }


def test_plaintext_sets_no_security_keys() -> None:
    conf = client_config(kafka())
    assert conf["security.protocol"] == "plaintext"
    assert not any(k.startswith(("sasl.", "ssl.")) for k in conf)


def test_consumer_commits_only_by_hand_and_keeps_the_group_settings() -> None:
    conf = consumer_config(
        kafka(
            group_id="g", group_instance_id="pod-0", fetch_max_wait_ms=50, session_timeout_ms=7000
        )
    )
    assert conf["group.id"] == "g"
    assert conf["group.instance.id"] == "pod-0"
    assert conf["enable.auto.commit"] is False
    assert conf["enable.auto.offset.store"] is False
    assert conf["fetch.wait.max.ms"] == 50
    assert conf["session.timeout.ms"] == 7000
    assert consumer_config(kafka(group_id=None))["group.id"] == "modelmon-no-group"


def test_producer_acks_all_and_lets_a_full_dead_letter_through() -> None:
    conf = producer_config(kafka(dead_letter_max_bytes=4 * 2**20))
    assert conf["acks"] == "all"
    assert conf["message.max.bytes"] == 4 * 2**20 + 64 * 1024
    assert conf["message.timeout.ms"] < 10_000  # under the writer's flush wait


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_librdkafka_accepts_every_key(protocol: str) -> None:
    """The real client parses the config (it connects only when asked)."""
    cfg = kafka(
        bootstrap_servers="127.0.0.1:1",
        security_protocol=protocol,
        sasl_mechanism="PLAIN" if protocol != "PLAINTEXT" else None,
        sasl_plain_username="u" if protocol != "PLAINTEXT" else None,
        sasl_plain_password="p" if protocol != "PLAINTEXT" else None,
        group_instance_id="pod-0",
    )
    Consumer(consumer_config(cfg)).close()
    Producer(producer_config(cfg)).flush(0)


def test_librdkafka_errors_become_the_writers_classes() -> None:
    too_large = as_kafka_error(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert isinstance(too_large, MessageSizeTooLargeError)
    denied = as_kafka_error(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    assert isinstance(denied, TopicAuthorizationFailedError) and isinstance(denied, PERMANENT)
    timeout = as_kafka_error(KafkaError(KafkaError._MSG_TIMED_OUT))
    assert isinstance(timeout, KafkaTimeoutError) and not isinstance(timeout, PERMANENT)
    away = as_kafka_error(KafkaError(KafkaError._TRANSPORT))
    assert not isinstance(away, PERMANENT)


class FakeConsumer:
    """Records what the adapter asks of librdkafka."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.assigned: list[TopicPartition] = []
        self.commits: list[list[tuple[str, int, int]]] = []
        self.callbacks: dict[str, Any] = {}
        self.times: list[tuple[str, int, int]] = []
        self.paused: set[tuple[str, int]] = set()

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def assign(self, parts: list[TopicPartition]) -> None:
        self.assigned = list(parts)

    def assignment(self) -> list[TopicPartition]:
        return self.assigned

    def pause(self, parts: list[TopicPartition]) -> None:
        self.paused |= {(p.topic, p.partition) for p in parts}

    def resume(self, parts: list[TopicPartition]) -> None:
        self.paused -= {(p.topic, p.partition) for p in parts}

    def consume(self, n: int, timeout: float) -> list[Any]:
        return []

    def offsets_for_times(self, parts: list[TopicPartition], timeout: float) -> Any:
        self.times = [(p.topic, p.partition, p.offset) for p in parts]
        return [TopicPartition(p.topic, p.partition, 40 if p.partition == 0 else -1) for p in parts]

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous is False
        self.commits.append([(p.topic, p.partition, p.offset) for p in offsets])

    def close(self) -> None:
        self.callbacks["on_revoke"](self, self.assigned)


class Hooks:
    """The app's side: a checkpoint on revocation; on assignment, the source decides (None),
    or group mode's answer (``resume``), or a failing takeover (``fail`` times)."""

    def __init__(self, resume: dict[tuple[str, int], int] | None = None, fail: int = 0) -> None:
        self.calls = 0
        self.resume, self.fail = resume, fail
        self.assigned: list[list[tuple[str, int]]] = []

    def on_assign(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int] | None:
        self.assigned.append(partitions)
        if self.fail:
            self.fail -= 1
            raise OSError("state topic unreachable")
        return self.resume

    def on_revoke(self) -> dict[tuple[str, int], int]:
        self.calls += 1
        return {("p", 0): 12, ("p", 1): 5, ("l", 9): 3}


def make(hooks: Hooks) -> tuple[ConfluentSource, FakeConsumer]:
    made: list[FakeConsumer] = []

    def factory(conf: dict[str, Any]) -> FakeConsumer:
        made.append(FakeConsumer(conf))
        return made[0]

    source = ConfluentSource(
        kafka(group_id="g"),
        OpsMetrics(CollectorRegistry()),
        positions={("p", 1): 7},
        replay_horizon=100.0,
        hooks=hooks,
        wall=lambda: 1000.0,
        consumer_factory=factory,
    )
    return source, made[0]


def test_assignment_resumes_known_partitions_and_replays_the_others() -> None:
    source, consumer = make(Hooks())
    parts = [TopicPartition("p", 0), TopicPartition("p", 1), TopicPartition("p", 2)]
    consumer.callbacks["on_assign"](consumer, parts)
    assert [(p.partition, p.offset) for p in consumer.assigned] == [
        (0, 40),
        (1, 7),
        (2, OFFSET_END),
    ]
    assert consumer.times == [("p", 0, 900_000), ("p", 2, 900_000)]  # now - horizon, in ms
    assert source.caught_up is False


PARTS = [("p", 0), ("p", 1), ("p", 2)]


def test_group_mode_resumes_where_the_state_topic_says_and_replays_what_it_lacks() -> None:
    # Partition 1 has a local position (7), but the state topic knows better: 1 and 2 have
    # state elsewhere (their owner's), 0 has none anywhere: replayed, its local position gone.
    hooks = Hooks(resume={("p", 1): 30, ("p", 2): 55})
    source, consumer = make(hooks)
    consumer.callbacks["on_assign"](consumer, [TopicPartition(t, p) for t, p in PARTS])
    assert hooks.assigned == [PARTS]
    assert [(p.partition, p.offset) for p in consumer.assigned] == [(0, 40), (1, 30), (2, 55)]
    assert consumer.times == [("p", 0, 900_000)] and consumer.paused == set()
    assert source.positions() == {("p", 1): 30, ("p", 2): 55}


def test_a_failed_takeover_reads_nothing_until_it_succeeds_on_a_later_poll() -> None:
    hooks = Hooks(resume={("p", 0): 5}, fail=2)
    source, consumer = make(hooks)
    consumer.callbacks["on_assign"](consumer, [TopicPartition(t, p) for t, p in PARTS])
    assert consumer.paused == set(PARTS) and consumer.times == []
    assert list(source.poll(0.0)) == [] and consumer.paused == set(PARTS)  # fails a second time
    source.poll(0.0)
    assert hooks.assigned == [PARTS] * 3
    assert [(p.partition, p.offset) for p in consumer.assigned] == [
        (0, 5),
        (1, OFFSET_END),  # no state in the topic: replayed (none in range: from the end)
        (2, OFFSET_END),
    ]
    assert consumer.paused == set() and source.positions() == {("p", 0): 5}
    source.poll(0.0)
    assert len(hooks.assigned) == 3  # taken over once


def test_revocation_checkpoints_then_commits_the_revoked_partitions_only() -> None:
    hooks = Hooks()
    _source, consumer = make(hooks)
    revoked = [TopicPartition("p", 0), TopicPartition("p", 1)]
    consumer.callbacks["on_revoke"](consumer, revoked)
    assert hooks.calls == 1
    assert consumer.commits == [[("p", 0, 12), ("p", 1, 5)]]


def test_lost_partitions_are_not_committed() -> None:
    hooks = Hooks()
    _source, consumer = make(hooks)
    consumer.callbacks["on_lost"](consumer, [TopicPartition("p", 0)])
    assert hooks.calls == 0 and consumer.commits == []


def test_commit_covers_owned_partitions_and_close_does_not_checkpoint_again() -> None:
    hooks = Hooks()
    source, consumer = make(hooks)
    consumer.assigned = [TopicPartition("p", 1)]
    source.mark_processed([RawRecord("p", 1, 7, 0.0, None, b"{}")])
    source.commit({("p", 0): 3, ("p", 1): 8})
    assert consumer.commits == [[("p", 1, 8)]]
    assert source.positions() == {("p", 1): 8}
    assert source.offset_ranges() == {"predictions": {"1": [7, 7]}}
    source.close()
    assert hooks.calls == 0 and len(consumer.commits) == 1


def test_a_missing_confluent_package_is_one_config_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings: Settings = load_settings(
        None,
        overrides={
            "kafka": {"client": "confluent"},
            "state": {"dir": str(tmp_path)},
            "models": [{"name": "m", "reference": "ref.json", "features": {"x": "numeric"}}],
        },
    )
    check_kafka_client(settings)  # installed here
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"modelmon\[confluent\]") as err:
        check_kafka_client(settings)
    assert "\n" not in str(err.value)
