"""The kafka-python adapter without a broker, against a recording fake consumer (its
``consumer_factory``): seeks on assignment, the replay start and its retry, what is committed
and when. The rebalance callbacks are driven as kafka-python's IO thread would call them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from kafka import OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaConnectionError, KafkaTimeoutError
from kafka.structs import OffsetAndTimestamp
from prometheus_client import CollectorRegistry

from monitor.events import Offsets, RawRecord
from monitor.ingest.kafka_source import KafkaSource
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import KafkaSettings

WALL = 1_800_000_000.0
HORIZON = 3_600.0
START_MS = 1_799_996_400_000  # (WALL - HORIZON) in milliseconds
P0, P1, L0 = TopicPartition("p", 0), TopicPartition("p", 1), TopicPartition("l", 0)


class Rec(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int  # ms, as kafka-python gives it
    key: bytes | None
    value: bytes | None


def rec(tp: TopicPartition, offset: int) -> Rec:
    return Rec(tp.topic, tp.partition, offset, 1_799_999_000_123, b"k", b"{}")


class Coordinator:
    def __init__(self, consumer: FakeConsumer) -> None:
        self._consumer = consumer

    async def _commit_offsets_sync_async(self, offsets: dict[Any, Any]) -> None:
        self._consumer.calls.append(("commit on revoke", offsets))
        if self._consumer.commit_error is not None:
            raise self._consumer.commit_error


class FakeConsumer:
    """Records every call; ``polls`` and ``times`` script what poll/offsets_for_times give."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.calls: list[tuple[Any, ...]] = []
        self.assigned: set[TopicPartition] = set()
        self.polls: list[dict[TopicPartition, list[Rec]]] = []
        self.times: list[dict[TopicPartition, OffsetAndTimestamp | None] | Exception] = []
        self.commit_error: Exception | None = None
        self.listener: Any = None
        self._coordinator = Coordinator(self)

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.calls.append(("subscribe", tuple(topics)))
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Rec]]:
        return self.polls.pop(0) if self.polls else {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.calls.append(("seek", tp, offset))

    def seek_to_end(self, tp: TopicPartition) -> None:
        self.calls.append(("seek_to_end", tp))

    def offsets_for_times(self, wanted: dict[TopicPartition, int], timeout_ms: int) -> Any:
        self.calls.append(("offsets_for_times", dict(wanted), timeout_ms))
        answer = self.times.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def commit(self, offsets: dict[Any, Any], timeout_ms: int) -> None:
        self.calls.append(("commit", offsets, timeout_ms))
        if self.commit_error is not None:
            raise self.commit_error

    def close(self, autocommit: bool = True) -> None:
        self.calls.append(("close", autocommit))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]

    def assign(self, tps: set[TopicPartition]) -> None:
        """What kafka-python does at a rebalance: new assignment, then the listener."""
        self.assigned = set(tps)
        asyncio.run(self.listener.on_partitions_assigned(set(tps)))


class Hooks:
    def __init__(self, offsets: Offsets | None) -> None:
        self.offsets = offsets
        self.revokes = 0

    def on_revoke(self) -> Offsets | None:
        self.revokes += 1
        return self.offsets

    def on_assign(self, partitions: list[tuple[str, int]]) -> Offsets | None:
        return None  # outside group mode the source decides where to resume


def settings(**values: Any) -> KafkaSettings:
    return KafkaSettings.model_validate(
        {"predictions_topic": "p", "labels_topic": "l", "group_id": "g", **values}
    )


class Rig(NamedTuple):
    source: KafkaSource
    consumer: FakeConsumer
    registry: CollectorRegistry
    hooks: Hooks


def make(positions: Offsets | None = None, hooks: Hooks | None = None, **values: Any) -> Rig:
    made: list[FakeConsumer] = []

    def factory(**options: Any) -> FakeConsumer:
        made.append(FakeConsumer(**options))
        return made[-1]

    registry = CollectorRegistry()
    hooks = hooks or Hooks(None)
    source = KafkaSource(
        settings(**values),
        OpsMetrics(registry),
        positions=positions,
        replay_horizon=HORIZON,
        hooks=hooks,
        wall=lambda: WALL,
        consumer_factory=factory,
        producer_factory=lambda **_: pytest.fail("no dead letter in these tests"),
        sleep=lambda _: None,
    )
    return Rig(source, made[0], registry, hooks)


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = make(positions={("p", 0): 42})
    yield r
    r.source.close()


def test_the_consumer_commits_only_by_hand_in_the_configured_group(rig: Rig) -> None:
    options = rig.consumer.options
    assert options["enable_auto_commit"] is False
    assert options["group_id"] == "g"
    assert rig.consumer.of("subscribe") == [("subscribe", ("p", "l"))]
    assert rig.consumer.listener is not None


def test_assignment_seeks_known_partitions_and_leaves_the_others_to_the_replay(rig: Rig) -> None:
    rig.consumer.assign({P0, P1, L0})
    assert rig.consumer.of("seek") == [("seek", P0, 42)]
    assert rig.consumer.of("offsets_for_times") == []  # blocking: not on the IO thread
    assert rig.source.caught_up is False


def test_replay_starts_at_now_minus_the_horizon_and_drops_what_was_fetched_before(
    rig: Rig,
) -> None:
    rig.consumer.assign({P0, P1, L0})
    rig.consumer.polls.append({P0: [rec(P0, 42), rec(P0, 43)], P1: [rec(P1, 0)]})
    rig.consumer.times.append({P1: OffsetAndTimestamp(17, START_MS + 5, -1), L0: None})
    out = rig.source.poll(0.5)
    # P1's record was fetched from the committed/reset position, before the replay seek.
    assert [(r.topic, r.partition, r.offset) for r in out] == [("p", 0, 42), ("p", 0, 43)]
    assert out[0] == RawRecord("p", 0, 42, 1_799_999_000.123, b"k", b"{}")
    assert rig.consumer.of("offsets_for_times") == [
        ("offsets_for_times", {P1: START_MS, L0: START_MS}, 5000)
    ]
    assert sorted(rig.consumer.calls[-2:], key=str) == sorted(
        [("seek", P1, 17), ("seek_to_end", L0)], key=str
    )
    # Done once: the next poll asks nothing and keeps every record.
    rig.consumer.polls.append({P1: [rec(P1, 17)]})
    assert [r.offset for r in rig.source.poll(0.5)] == [17]
    assert len(rig.consumer.of("offsets_for_times")) == 1


def test_a_failed_offsets_for_times_is_retried_at_the_next_poll_and_blocks_catching_up(
    rig: Rig,
) -> None:
    rig.consumer.assign({P0, P1})
    rig.consumer.polls.append({P0: [rec(P0, 42)], P1: [rec(P1, 0)]})
    rig.consumer.times += [KafkaTimeoutError("no answer"), KafkaTimeoutError("no answer")]
    out = rig.source.poll(0.5)
    assert [(r.partition, r.offset) for r in out] == [(0, 42)]  # P1's record is not counted
    assert [c for c in rig.consumer.calls if c[0] in ("seek", "seek_to_end")] == [("seek", P0, 42)]
    assert list(rig.source.poll(0.5)) == []  # an empty poll, the retry fails again ...
    assert rig.source.caught_up is False  # ... not caught up while a replay is pending
    assert rig.consumer.of("offsets_for_times") == [("offsets_for_times", {P1: START_MS}, 5000)] * 2


def test_the_retry_seeks_once_it_gets_an_answer(rig: Rig) -> None:
    rig.consumer.assign({P0, P1})
    rig.consumer.times += [KafkaTimeoutError("no answer"), {P1: OffsetAndTimestamp(9, 0, -1)}]
    rig.consumer.polls += [{P1: [rec(P1, 0)]}, {P1: [rec(P1, 1)]}, {P1: [rec(P1, 9)]}]
    assert list(rig.source.poll(0.5)) == []
    assert rig.source.caught_up is False
    assert list(rig.source.poll(0.5)) == []  # answered: P1 sought to 9, what it had fetched dropped
    assert rig.consumer.calls[-1] == ("seek", P1, 9)
    assert [r.offset for r in rig.source.poll(0.5)] == [9]
    assert list(rig.source.poll(0.5)) == [] and rig.source.caught_up is True
    assert len(rig.consumer.of("offsets_for_times")) == 2


def test_replay_asks_only_for_partitions_still_assigned(rig: Rig) -> None:
    rig.consumer.assign({P0, P1, L0})
    rig.consumer.assigned = {P0, L0}  # P1 moved away before the consume thread got to it
    rig.consumer.times.append({L0: OffsetAndTimestamp(3, 0, -1)})
    rig.source.poll(0.5)
    assert rig.consumer.of("offsets_for_times") == [("offsets_for_times", {L0: START_MS}, 5000)]
    assert rig.consumer.calls[-1] == ("seek", L0, 3)


def test_commit_covers_only_the_partitions_still_owned(rig: Rig) -> None:
    rig.consumer.assign({P0, L0})
    rig.source.commit({("p", 0): 50, ("p", 1): 7, ("l", 0): 3})
    assert rig.consumer.of("commit") == [
        (
            "commit",
            {P0: OffsetAndMetadata(50, "", -1), L0: OffsetAndMetadata(3, "", -1)},
            10_000,
        )
    ]
    rig.source.commit({("p", 1): 8})  # none owned: no request at all
    assert len(rig.consumer.of("commit")) == 1


def test_a_failed_commit_marks_kafka_down_and_does_not_raise(rig: Rig) -> None:
    rig.consumer.assign({P0})
    rig.source._metrics.kafka_up.set(1)
    rig.consumer.commit_error = KafkaConnectionError()
    rig.source.commit({("p", 0): 50})
    assert rig.registry.get_sample_value("modelmon_kafka_up") == 0.0


def test_without_a_group_nothing_is_committed() -> None:
    r = make(group_id=None)
    r.consumer.assigned = {P0}
    r.source.commit({("p", 0): 50})
    assert r.consumer.of("commit") == []
    assert r.consumer.listener is None


def test_revocation_checkpoints_then_commits_what_the_checkpoint_covers() -> None:
    r = make(hooks=Hooks({("p", 0): 44, ("l", 0): 2}))
    r.consumer.assign({P0, L0})
    asyncio.run(r.consumer.listener.on_partitions_revoked({P0, L0}))
    assert r.hooks.revokes == 1
    assert r.consumer.of("commit on revoke") == [
        ("commit on revoke", {P0: OffsetAndMetadata(44, "", -1), L0: OffsetAndMetadata(2, "", -1)})
    ]
    # Nothing revoked (the first rebalance): no checkpoint, no commit.
    asyncio.run(r.consumer.listener.on_partitions_revoked(set()))
    assert r.hooks.revokes == 1
    # A checkpoint with nothing to commit commits nothing; a failed commit does not raise.
    r.hooks.offsets = None
    asyncio.run(r.consumer.listener.on_partitions_revoked({P0}))
    assert len(r.consumer.of("commit on revoke")) == 1
    r.hooks.offsets = {("p", 0): 45}
    r.consumer.commit_error = KafkaTimeoutError("coordinator gone")
    asyncio.run(r.consumer.listener.on_partitions_revoked({P0}))
    assert len(r.consumer.of("commit on revoke")) == 2


def test_revocation_commits_only_the_partitions_given_up() -> None:
    """A checkpoint covers partitions owned earlier (or restored from disk) too; another
    member may own one now and have committed past it: its offset must not go back."""
    r = make(hooks=Hooks({("p", 0): 42, ("p", 1): 7}))
    r.consumer.assign({P0})
    asyncio.run(r.consumer.listener.on_partitions_revoked({P0}))
    assert r.consumer.of("commit on revoke") == [
        ("commit on revoke", {P0: OffsetAndMetadata(42, "", -1)})
    ]


def test_lost_partitions_are_neither_checkpointed_nor_committed() -> None:
    r = make(hooks=Hooks({("p", 0): 44}))
    r.consumer.assign({P0})
    asyncio.run(r.consumer.listener.on_partitions_lost({P0}))
    assert r.hooks.revokes == 0
    assert r.consumer.of("commit") == r.consumer.of("commit on revoke") == []


def test_close_never_autocommits(rig: Rig) -> None:
    rig.source.close()
    assert rig.consumer.of("close") == [("close", False)]


# -- dead letters through the adapter --------------------------------------------------------


def dead_rig(outcomes: dict[int, list[Exception | None]]) -> tuple[KafkaSource, list[Any], Any]:
    """A source whose producer factory records each producer it makes and its options."""
    from tests.unit.ingest.test_dead_letter import Producer

    made: list[Any] = []
    producer = Producer(outcomes)

    def producer_factory(**options: Any) -> Any:
        made.append(options)
        return producer

    source = KafkaSource(
        settings(dead_letter_topic="dlq"),
        OpsMetrics(CollectorRegistry()),
        wall=lambda: WALL,
        consumer_factory=FakeConsumer,
        producer_factory=producer_factory,
        sleep=lambda _: None,
    )
    return source, made, producer


def test_the_dead_letter_producer_is_made_on_first_use_only_and_acks_all() -> None:
    from tests.unit.ingest.test_dead_letter import letter

    source, made, producer = dead_rig({})
    assert made == []  # most runs never dead-letter: no idle producer
    source.dead_letter([letter(1)])
    source.dead_letter([letter(2)])
    assert len(made) == 1
    assert (made[0]["acks"], made[0]["max_block_ms"]) == ("all", 10_000)
    assert [o for o, _, _ in producer.sent] == [1, 2]
    source.close()


def test_a_dead_letter_write_aborted_by_shutdown_raises_to_the_loop() -> None:
    from kafka.errors import LeaderNotAvailableError

    from monitor.ingest.source import DeadLetterAbortedError
    from tests.unit.ingest.test_dead_letter import letter

    source, _, producer = dead_rig({1: [LeaderNotAvailableError()] * 10})
    waits: list[int] = []
    with pytest.raises(DeadLetterAbortedError):
        source.dead_letter(
            [letter(1)], stop=lambda: len(waits) >= 2, waiting=lambda: waits.append(1)
        )
    # attempt, wait, attempt, wait, attempt: the stop is seen after the third failure
    assert len(waits) == 2
    assert len(producer.sent) == 3
    source.close()
