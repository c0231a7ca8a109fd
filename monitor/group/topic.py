"""The internal state topic's Kafka I/O (kafka-python): create, publish with acks, read.

One topic partition holds every record, so a replica reads them in the order they were
written; the producer keeps one request in flight so a retry cannot reorder them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from monitor.ingest.kafka_source import client_options
from monitor.settings import Settings

log = logging.getLogger(__name__)

#: The biggest record the producer sends (a partition's windows; the broker must allow it).
MAX_RECORD_BYTES = 16 * 1024**2
#: Producer batch: a whole flush of a partition's changed panes goes in one or a few requests.
BATCH_BYTES = 2 * 1024**2
Record = tuple[bytes, bytes | None, int]  # key, value, offset


def retention_seconds(settings: Settings) -> float:
    """How long the topic keeps records: every window and every pending join, plus an hour."""
    if settings.coordination.retention:
        return settings.coordination.retention
    return 3600.0 + max(
        max(m.longest_window + m.allowed_lateness, m.label_ttl) for m in settings.models
    )


class StateTopic:
    """Publishes records (waiting for the broker's acks) and reads them back in order."""

    def __init__(
        self,
        settings: Settings,
        producer_factory: Callable[..., Any] = KafkaProducer,
        consumer_factory: Callable[..., Any] = KafkaConsumer,
        admin_factory: Callable[..., Any] = KafkaAdminClient,
    ) -> None:
        self.name = settings.state_topic
        self._settings = settings
        self._opts = client_options(settings.kafka)
        self._consumer_factory = consumer_factory
        self._tp = TopicPartition(self.name, 0)
        self._admin_factory = admin_factory
        self._producer = producer_factory(
            acks="all",
            retries=5,
            max_in_flight_requests_per_connection=1,
            linger_ms=5,
            # A flush is tens of pane records of tens of kB: with the default 16 kB batches
            # each went in a request of its own, one at a time (one in flight), and a flush
            # took seconds of round trips.
            batch_size=BATCH_BYTES,
            # No compression: kafka-python gzips at level 9 in Python, 2 s for a 2 MB flush.
            compression_type=None,
            max_request_size=MAX_RECORD_BYTES,
            max_block_ms=10_000,
            **self._opts,
        )
        self._reader = self._consumer(self._tp)

    def _consumer(self, tp: TopicPartition) -> Any:
        consumer = self._consumer_factory(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **self._opts
        )
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        return consumer

    def ensure(self) -> None:
        """Create the topic if missing (one partition, compacted and time-bounded)."""
        admin = self._admin_factory(**self._opts)
        try:
            topic = NewTopic(
                self.name,
                1,
                self._settings.coordination.replication_factor,
                topic_configs={
                    "cleanup.policy": "compact,delete",
                    "retention.ms": str(int(retention_seconds(self._settings) * 1000)),
                    "max.message.bytes": str(MAX_RECORD_BYTES),
                },
            )
            admin.create_topics([topic])
            log.info("created the state topic %s", self.name)
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()

    def publish(self, records: Sequence[tuple[bytes, bytes | None]], timeout: float = 10.0) -> int:
        """Send and wait for every ack (a None value is a tombstone); returns the bytes sent.
        Raises KafkaError on failure."""
        futures = [self._producer.send(self.name, key=k, value=v, partition=0) for k, v in records]
        self._producer.flush(timeout=timeout)
        for f in futures:
            f.get(timeout=timeout)
        return sum(len(k) + len(v or b"") for k, v in records)

    def read(self, timeout: float = 0.0) -> list[Record]:
        """The records written since the last read (an empty list if none came in time)."""
        batches = self._reader.poll(timeout_ms=int(timeout * 1000), max_records=10_000)
        return [(r.key, r.value, r.offset) for recs in batches.values() for r in recs]

    def end(self) -> int:
        return int(self._reader.end_offsets([self._tp], timeout_ms=10_000)[self._tp])

    def position(self) -> int:
        return int(self._reader.position(self._tp))

    def scan(self, until: int, timeout: float = 60.0) -> Iterator[Record]:
        """Every record from the beginning up to offset ``until`` (exclusive), with a reader
        of its own (a new owner's look back at a partition's join journal)."""
        consumer = self._consumer(self._tp)
        try:
            while consumer.position(self._tp) < until:
                batches = consumer.poll(timeout_ms=int(timeout * 1000), max_records=10_000)
                if not batches:
                    raise KafkaError(f"state topic {self.name}: no records before {until}")
                for recs in batches.values():
                    for r in recs:
                        if r.offset < until:
                            yield r.key, r.value, r.offset
        finally:
            consumer.close(autocommit=False)

    def close(self) -> None:
        try:
            self._producer.close(timeout=5)
        finally:
            self._reader.close(autocommit=False)
