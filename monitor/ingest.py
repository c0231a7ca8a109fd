"""The only module that imports ``kafka``: poll batches, dead-letter produce, commit, lag.

Everything past this module sees :class:`~monitor.events.RawRecord`, so a second client
(confluent-kafka, say) only needs another class with the same five methods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from monitor.events import DeadLetter, RawRecord
from monitor.metrics import OpsMetrics
from monitor.settings import KafkaSettings

log = logging.getLogger(__name__)


class Source(Protocol):
    """What the app needs from a record source."""

    def poll(self, timeout: float) -> list[RawRecord]: ...
    def dead_letter(self, items: Sequence[DeadLetter]) -> None: ...
    def commit(self) -> None: ...
    def update_lag(self) -> None: ...
    def close(self) -> None: ...


def client_options(cfg: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by consumer and producer, named as kafka-python names them."""
    opts: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers.split(","),
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
        "request_timeout_ms": cfg.request_timeout_ms,
    }
    if cfg.sasl_mechanism:
        opts["sasl_mechanism"] = cfg.sasl_mechanism
    if cfg.sasl_plain_username:
        opts["sasl_plain_username"] = cfg.sasl_plain_username
    if cfg.sasl_plain_password:
        opts["sasl_plain_password"] = cfg.sasl_plain_password.get_secret_value()
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if (value := getattr(cfg, name)) is not None:
            opts[name] = str(value)
    if cfg.ssl_password:
        opts["ssl_password"] = cfg.ssl_password.get_secret_value()
    return opts


class KafkaSource:
    """A consumer-group member on the predictions and labels topics, with manual commits.

    Offsets are committed only for records already processed (and dead-lettered), so a crash
    re-reads rather than loses. ``metrics.kafka_up`` follows the broker requests made here.
    """

    def __init__(
        self,
        cfg: KafkaSettings,
        metrics: OpsMetrics,
        consumer_factory: Callable[..., Any] = KafkaConsumer,
        producer_factory: Callable[..., Any] = KafkaProducer,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cfg = cfg
        self._metrics = metrics
        self._sleep = sleep
        opts = client_options(cfg)
        self._consumer = consumer_factory(
            cfg.predictions_topic,
            cfg.labels_topic,
            group_id=cfg.group_id,
            enable_auto_commit=False,
            auto_offset_reset=cfg.auto_offset_reset,
            max_poll_records=cfg.max_poll_records,
            fetch_max_wait_ms=cfg.fetch_max_wait_ms,
            session_timeout_ms=cfg.session_timeout_ms,
            heartbeat_interval_ms=cfg.heartbeat_interval_ms,
            **opts,
        )
        self._producer = producer_factory(linger_ms=20, acks="all", retries=5, **opts)
        self._dirty = False

    def poll(self, timeout: float) -> list[RawRecord]:
        batches = self._consumer.poll(
            timeout_ms=int(timeout * 1000), max_records=self._cfg.max_poll_records
        )
        out: list[RawRecord] = []
        for records in batches.values():
            out.extend(
                RawRecord(r.topic, r.partition, r.offset, r.timestamp / 1000.0, r.key, r.value)
                for r in records
            )
        if out:
            self._dirty = True
        return out

    def dead_letter(self, items: Sequence[DeadLetter], stop: Callable[[], bool] = bool) -> None:
        """Produce to the dead-letter topic and wait for the broker's ack, retrying with backoff.

        Blocks until written (or ``stop()`` says the daemon is shutting down, in which case the
        offsets of these records are never committed and they are re-read on restart).
        """
        delay = 0.5
        while items:
            try:
                futures = [
                    self._producer.send(
                        self._cfg.dead_letter_topic,
                        key=d.record.key,
                        value=d.record.value,
                        headers=d.headers(),
                    )
                    for d in items
                ]
                self._producer.flush(timeout=30)
                for f in futures:
                    f.get(timeout=0)
                self._metrics.dead_lettered.inc(len(items))
                return
            except KafkaError as exc:
                self._metrics.dead_letter_errors.inc()
                log.warning(
                    "dead-letter produce to %s failed (%s); retrying in %.1fs",
                    self._cfg.dead_letter_topic,
                    exc,
                    delay,
                )
                if stop():
                    raise
                self._sleep(delay)
                delay = min(delay * 2, 30.0)

    def commit(self) -> None:
        """Commit the positions of everything polled so far (all of it is processed)."""
        if not self._dirty or self._cfg.group_id is None:
            return
        try:
            self._consumer.commit()
            self._dirty = False
        except KafkaError as exc:
            log.warning("offset commit failed (%s); will retry at the next commit", exc)

    def update_lag(self) -> None:
        """Refresh lag per partition; also the broker reachability signal."""
        assigned = list(self._consumer.assignment())
        try:
            if assigned:
                ends = self._consumer.end_offsets(assigned)
            else:
                self._consumer.topics()  # a metadata round trip says whether a broker answers
                ends = {}
        except KafkaError as exc:
            log.warning("broker unreachable: %s", exc)
            self._metrics.kafka_up.set(0)
            return
        self._metrics.kafka_up.set(1)
        for tp in assigned:
            end = ends.get(tp)
            if end is None:
                continue
            # The position can pass the reported end offset on brokers that report it late.
            lag = max(0, end - self._consumer.position(tp))
            self._metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

    def assignment(self) -> list[TopicPartition]:
        return list(self._consumer.assignment())

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._consumer.close(autocommit=False)
            self._producer.close(timeout=5)
