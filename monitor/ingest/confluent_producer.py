"""librdkafka's producer in the shape the dead-letter writer expects (kafka-python's).

:class:`~monitor.ingest.dead_letter.DeadLetterWriter` decides what is permanent, what is
truncated and what is retried from ``kafka.errors`` classes; :func:`as_kafka_error` turns
librdkafka's errors into those classes by their Kafka protocol code, so one writer serves both
clients (:mod:`monitor.ingest.confluent_source` is the only user).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message
from kafka.errors import KafkaError as PyKafkaError
from kafka.errors import KafkaTimeoutError, for_code


def as_kafka_error(err: KafkaError) -> PyKafkaError:
    """The ``kafka.errors`` class of a librdkafka error: broker errors by their protocol code,
    a delivery timeout as a timeout, any other local error as a (transient) ``KafkaError``."""
    code = err.code()
    if code > 0:
        return for_code(code)(err.str())
    if code == KafkaError._MSG_TIMED_OUT:
        return KafkaTimeoutError(err.str())
    return PyKafkaError(err.str())


class _Delivery:
    """A sent message's outcome, shaped as kafka-python's future for the writer."""

    def __init__(self) -> None:
        self.is_done = False
        self.exception: Exception | None = None

    def __call__(self, err: KafkaError | None, _msg: Message) -> None:
        self.is_done = True
        self.exception = None if err is None else as_kafka_error(err)

    def failed(self) -> bool:
        return self.exception is not None


class DeadLetterProducer:
    """librdkafka's producer with the ``send``/``flush``/``close`` the dead-letter writer uses."""

    def __init__(self, conf: dict[str, Any], factory: Callable[..., Any]) -> None:
        try:
            self._producer = factory(conf)
        except KafkaException as exc:
            raise as_kafka_error(exc.args[0]) from exc

    def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> _Delivery:
        done = _Delivery()
        try:
            self._producer.produce(topic, value, key, headers=headers, on_delivery=done)
        except KafkaException as exc:  # refused before sending (e.g. over message.max.bytes)
            raise as_kafka_error(exc.args[0]) from exc
        except BufferError as exc:  # the local queue is full: the broker is not taking them
            raise KafkaTimeoutError(str(exc)) from exc
        self._producer.poll(0)
        return done

    def flush(self, timeout: float) -> None:
        self._producer.flush(timeout)

    def close(self, timeout: float) -> None:
        self._producer.flush(timeout)
