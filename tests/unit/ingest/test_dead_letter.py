"""The dead-letter writer: permanent errors are not retried, oversized copies are truncated,
transient errors are retried with backoff while the app is told it is waiting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka.errors import (
    InvalidTopicError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)
from prometheus_client import CollectorRegistry

from monitor.events import DeadLetter, RawRecord
from monitor.ingest.dead_letter import DeadLetterWriter, fit
from monitor.ingest.source import DeadLetterAbortedError
from monitor.serve.ops_metrics import OpsMetrics

MAX = 900_000


def letter(offset: int, value: bytes = b"{bad", key: bytes | None = b"k") -> DeadLetter:
    rec = RawRecord("predictions", 2, offset, 0.0, key, value)
    return DeadLetter(rec, "predictions", "invalid_json", "unexpected end of input")


@dataclass
class Future:
    error: Exception | None
    is_done: bool = True

    def failed(self) -> bool:
        return self.error is not None

    @property
    def exception(self) -> Exception | None:
        return self.error


@dataclass
class Producer:
    """Answers each send with the next outcome the test scripted for that record's offset."""

    outcomes: dict[int, list[Exception | None]]
    broker_limit: int = 10 * 2**20
    sent: list[tuple[int, bytes | None, dict[str, bytes]]] = field(default_factory=list)
    raise_on_send: list[Exception] = field(default_factory=list)

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Any) -> Future:
        if self.raise_on_send:
            raise self.raise_on_send.pop(0)
        h = dict(headers)
        offset = int(h["modelmon-source-offset"])
        self.sent.append((offset, value, h))
        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers)
        if size > self.broker_limit:
            return Future(MessageSizeTooLargeError("the broker's message.max.bytes"))
        scripted = self.outcomes.get(offset, [])
        return Future(scripted.pop(0) if scripted else None)

    def flush(self, timeout: float) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


@dataclass
class Rig:
    producer: Producer
    writer: DeadLetterWriter
    registry: CollectorRegistry
    sleeps: list[float]
    waits: list[int]

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def write(self, items: list[DeadLetter], stop: Callable[[], bool] = bool) -> None:
        self.writer.write(items, stop, lambda: self.waits.append(len(self.sleeps)))


def rig(outcomes: dict[int, list[Exception | None]] | None = None, **kw: Any) -> Rig:
    registry = CollectorRegistry()
    producer = Producer(outcomes or {}, **kw)
    sleeps: list[float] = []
    writer = DeadLetterWriter("dlq", MAX, OpsMetrics(registry), lambda: producer, sleeps.append)
    return Rig(producer, writer, registry, sleeps, [])


def test_an_oversized_copy_is_truncated_to_the_limit_with_headers_saying_so() -> None:
    value = b"{" + b"x" * (2**20 - 4096)
    r = rig()
    r.write([letter(1, value)])
    [(_, sent, headers)] = r.producer.sent
    assert sent == value[: len(sent or b"")]
    assert fit(letter(1, value), MAX).size <= MAX < len(value)
    assert headers["modelmon-truncated"] == b"1"
    assert headers["modelmon-original-size"] == str(len(value)).encode()
    assert headers["modelmon-reason"] == b"invalid_json"
    assert r.value("modelmon_dead_letter_records_total") == 1
    assert r.sleeps == []


def test_a_small_copy_is_sent_whole_without_truncation_headers() -> None:
    r = rig()
    r.write([letter(1)])
    [(_, sent, headers)] = r.producer.sent
    assert sent == b"{bad" and "modelmon-truncated" not in headers


def test_a_broker_limit_below_the_setting_gets_the_copy_without_its_value() -> None:
    r = rig(broker_limit=10_000)
    r.write([letter(1, b"y" * 500_000), letter(2)])
    # Under the setting: sent whole; refused by the broker: sent again, without its value.
    assert [(o, len(v or b"")) for o, v, _ in r.producer.sent] == [(1, 500_000), (2, 4), (1, 0)]
    last = r.producer.sent[-1][2]
    assert (last["modelmon-truncated"], last["modelmon-original-size"]) == (b"1", b"500000")
    assert r.value("modelmon_dead_letter_records_total") == 2
    assert r.sleeps == []  # a size error is not waited on


@pytest.mark.parametrize(
    "error", [InvalidTopicError("bad name"), TopicAuthorizationFailedError("no ACL")]
)
def test_a_permanent_error_is_counted_and_dropped_never_retried(error: Exception) -> None:
    r = rig({1: [error], 2: []})
    r.write([letter(1), letter(2)])
    assert [o for o, _, _ in r.producer.sent] == [1, 2]
    assert r.sleeps == [] and r.waits == []
    assert r.value("modelmon_dead_letter_records_total") == 1
    assert r.value("modelmon_dead_letter_dropped_records_total", error=type(error).__name__) == 1


def test_transient_errors_are_retried_with_backoff_for_the_failed_records_only() -> None:
    r = rig({2: [LeaderNotAvailableError(), KafkaTimeoutError()], 3: [LeaderNotAvailableError()]})
    r.write([letter(1), letter(2), letter(3)])
    assert [o for o, _, _ in r.producer.sent] == [1, 2, 3, 2, 3, 2]  # each acked once
    assert r.sleeps == [0.5, 1.0]
    assert r.waits == [0, 1], "the app hears before each wait that the loop is alive"
    assert r.value("modelmon_dead_letter_records_total") == 3
    assert r.value("modelmon_dead_letter_errors_total") == 2


def test_no_metadata_fails_the_rest_of_the_attempt_at_once() -> None:
    """A send that blocked for metadata and timed out is not repeated for every record."""
    r = rig(raise_on_send=[KafkaTimeoutError("no metadata after 10s")])
    r.write([letter(1), letter(2), letter(3)])
    assert [o for o, _, _ in r.producer.sent] == [1, 2, 3]  # all in the second attempt
    assert r.sleeps == [0.5]


def test_shutdown_during_transient_errors_aborts() -> None:
    r = rig({1: [LeaderNotAvailableError()] * 10})
    with pytest.raises(DeadLetterAbortedError):
        r.write([letter(1)], stop=lambda: True)
    assert r.value("modelmon_dead_letter_records_total") == 0
