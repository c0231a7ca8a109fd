"""Writing records to the dead-letter topic without ever wedging the consume loop.

The second module allowed to import ``kafka`` (for its error classes; the producer itself is
made by :mod:`monitor.ingest.kafka_source`). A dead letter is written at least once, acked by
the broker, before its offset counts as processed, except when writing it cannot succeed:

- too large for the broker: a copy larger than ``kafka.dead_letter_max_bytes`` is truncated
  before it is sent (headers ``modelmon-truncated`` and ``modelmon-original-size``); if the
  broker still refuses its size (its limit is lower), the value is dropped, keeping the headers;
- refused for good (an invalid topic, no authorisation, a record the broker calls invalid):
  logged, counted in ``modelmon_dead_letter_dropped_records_total{error}``, not retried;
- anything else (the broker away, no leader, a timeout) is retried with backoff; between
  attempts ``waiting()`` lets the app show it is alive and refresh the lag and ``kafka_up``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kafka.errors import (
    AuthorizationError,
    ClusterAuthorizationFailedError,
    CorruptRecordError,
    InvalidRecordError,
    InvalidRequiredAcksError,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)

from monitor.events import DeadLetter
from monitor.ingest.source import DeadLetterAbortedError
from monitor.serve.ops_metrics import OpsMetrics

log = logging.getLogger(__name__)

TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
#: Errors that the same record would get again however often it is sent.
PERMANENT = (
    *TOO_LARGE,
    AuthorizationError,
    ClusterAuthorizationFailedError,
    TopicAuthorizationFailedError,
    InvalidTopicError,
    InvalidRecordError,
    CorruptRecordError,
    InvalidRequiredAcksError,
    InvalidTimestampError,
    PolicyViolationError,
)
#: Bytes a record costs beyond its key, value and header bytes (batch and record framing,
#: varints): generous, so that a copy fitted to the limit is never refused for its framing.
FRAMING = 512
#: A key is kept whole unless the copy must be truncated; then at most this much of it.
KEY_MAX = 1024
#: How long one attempt waits for the broker's acks before the loop looks up again.
FLUSH_TIMEOUT = 10.0
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Message:
    """A dead letter as it will be sent."""

    letter: DeadLetter
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        return (
            len(self.key or b"")
            + len(self.value or b"")
            + sum(len(k) + len(v) for k, v in self.headers)
            + FRAMING
        )

    def emptied(self) -> Message:
        """The same message without its value (the broker refused even the truncated size)."""
        return replace(self, value=b"", headers=_truncated(self.letter, self.headers))


def _truncated(letter: DeadLetter, headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    kept = [(k, v) for k, v in headers if not k.startswith("modelmon-original-")]
    kept = [(k, v) for k, v in kept if k != "modelmon-truncated"]
    original = letter.record
    return [
        *kept,
        ("modelmon-truncated", b"1"),
        ("modelmon-original-size", str(len(original.value or b"")).encode()),
        ("modelmon-original-key-size", str(len(original.key or b"")).encode()),
    ]


def fit(letter: DeadLetter, max_bytes: int) -> Message:
    """The dead-letter copy of a record, truncated to ``max_bytes`` if it is larger.

    >>> from monitor.events import RawRecord
    >>> rec = RawRecord("p", 0, 7, 0.0, b"k", b"x" * 5000)
    >>> m = fit(DeadLetter(rec, "predictions", "invalid_json", "bad"), 2048)
    >>> m.size <= 2048, dict(m.headers)["modelmon-original-size"]
    (True, b'5000')
    """
    whole = Message(letter, letter.record.key, letter.record.value, letter.headers())
    if whole.size <= max_bytes:
        return whole
    headers = _truncated(letter, whole.headers)
    key = None if letter.record.key is None else letter.record.key[:KEY_MAX]
    bare = Message(letter, key, b"", headers)
    room = max(0, max_bytes - bare.size)
    return replace(bare, value=(letter.record.value or b"")[:room])


class DeadLetterWriter:
    """Sends dead letters through a producer made on first use (most runs never need one)."""

    def __init__(
        self,
        topic: str,
        max_bytes: int,
        metrics: OpsMetrics,
        make_producer: Callable[[], Any],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._topic = topic
        self._max_bytes = max_bytes
        self._metrics = metrics
        self._make_producer = make_producer
        self._sleep = sleep
        self._producer: Any = None

    def write(
        self,
        items: Sequence[DeadLetter],
        stop: Callable[[], bool] = bool,
        waiting: Callable[[], None] = lambda: None,
    ) -> None:
        """Write ``items``; returns once each is acked or dropped for a permanent error.

        Raises :class:`DeadLetterAbortedError` if ``stop()`` turns true while a transient error
        keeps some from being written (they are then re-read after a restart).
        """
        pending = [fit(d, self._max_bytes) for d in items]
        delay = 0.5
        while pending:
            retry: list[Message] = []
            transient: Exception | None = None
            for msg, exc in self._attempt(pending):
                if exc is None:
                    self._metrics.dead_lettered.inc()
                elif isinstance(exc, TOO_LARGE) and msg.value:
                    retry.append(msg.emptied())
                elif isinstance(exc, PERMANENT) or not isinstance(exc, KafkaError):
                    self._drop(msg, exc)
                else:
                    retry.append(msg)
                    transient = exc
            pending = retry
            if transient is None:
                continue  # only emptied copies left (if any): send them at once
            self._metrics.dead_letter_errors.inc()
            log.warning(
                "dead-letter produce of %d records to %s failed (%s); retrying in %.1fs",
                len(pending),
                self._topic,
                transient,
                delay,
            )
            if stop():
                raise DeadLetterAbortedError(str(transient)) from transient
            waiting()
            self._sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    def _attempt(self, pending: list[Message]) -> list[tuple[Message, Exception | None]]:
        """Send each message and wait for its ack; the outcome of each, in order."""
        out: list[tuple[Message, Exception | None]] = []
        try:
            if self._producer is None:
                self._producer = self._make_producer()
        except KafkaError as exc:
            return [(m, exc) for m in pending]
        futures: list[tuple[Message, Any]] = []
        send = self._producer.send
        for i, m in enumerate(pending):
            try:
                futures.append((m, send(self._topic, key=m.key, value=m.value, headers=m.headers)))
            except Exception as exc:
                out.append((m, exc))
                if isinstance(exc, KafkaError) and not isinstance(exc, PERMANENT):
                    # No metadata (the broker is away): the rest would each block as long.
                    out.extend((rest, exc) for rest in pending[i + 1 :])
                    break
        with contextlib.suppress(KafkaError):  # the futures not done are retried below
            self._producer.flush(timeout=FLUSH_TIMEOUT)
        for m, f in futures:
            if not f.is_done:
                out.append((m, KafkaTimeoutError("not acknowledged in time")))
            elif f.failed():
                error = f.exception
                out.append((m, error if isinstance(error, Exception) else KafkaError(str(error))))
            else:
                out.append((m, None))
        return out

    def _drop(self, msg: Message, exc: Exception) -> None:
        rec = msg.letter.record
        self._metrics.dead_letter_dropped.labels(type(exc).__name__).inc()
        log.error(
            "dead letter %s[%d]@%d (%s, %d bytes) dropped: %s refused it for good (%s)",
            rec.topic,
            rec.partition,
            rec.offset,
            msg.letter.reason,
            msg.size,
            self._topic,
            exc,
        )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
