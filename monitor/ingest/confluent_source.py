"""The confluent-kafka (librdkafka) adapter: the same consumer-group member as the kafka-python
one (:mod:`monitor.ingest.kafka_source`), behind the same :class:`~monitor.ingest.source.Source`.

The only production module that makes confluent-kafka clients (``kafka.client: confluent``).
librdkafka serves rebalance, error and log callbacks inside ``consume()``, so here they run on
the consume thread itself: the seeks on assignment are offsets given to ``assign()``, and the
revocation hook (a checkpoint) and its commit block that thread, never an IO thread.

Dead letters go through :class:`~monitor.ingest.dead_letter.DeadLetterWriter` unchanged, through
the producer wrapper of :mod:`monitor.ingest.confluent_producer`.

In group mode the app's takeover (:meth:`~monitor.ingest.source.Hooks.on_assign`: where each
newly assigned partition resumes, from the state topic) runs inside the assignment callback,
before ``assign()``: the partitions start at the positions it gives, nothing is read before.
If it fails, the partitions are assigned paused and the takeover is retried on the next poll.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from monitor.events import DeadLetter, Offsets, RawRecord, RecordBatch
from monitor.ingest.confluent_producer import DeadLetterProducer
from monitor.ingest.dead_letter import FLUSH_TIMEOUT, DeadLetterWriter
from monitor.ingest.progress import Progress
from monitor.ingest.source import Hooks
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import KafkaSettings

log = logging.getLogger(__name__)

#: As in the kafka-python adapter: after an outage, reconnect within a second of the broker.
RECONNECT_BACKOFF_MAX_MS = 1000
#: How long librdkafka's fetcher waits before refilling a partition's queue (its 1 s default
#: keeps a caught-up consumer slow: measured 4x the rate at 10 ms).
FETCH_QUEUE_BACKOFF_MS = 10
#: How long a broker call of the consume thread (lag, offsets-for-times) may block.
CALL_TIMEOUT = 5.0


def client_config(cfg: KafkaSettings) -> dict[str, Any]:
    """Connection settings shared by consumer and producer, in librdkafka's names."""
    conf: dict[str, Any] = {
        "bootstrap.servers": cfg.bootstrap_servers,
        "client.id": cfg.client_id,
        "security.protocol": cfg.security_protocol.lower(),
        "socket.timeout.ms": cfg.request_timeout_ms,
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        "logger": logging.getLogger("monitor.ingest.librdkafka"),
    }
    if cfg.sasl_mechanism:
        conf["sasl.mechanism"] = cfg.sasl_mechanism
    if cfg.sasl_plain_username:
        conf["sasl.username"] = cfg.sasl_plain_username
    if cfg.sasl_plain_password:
        conf["sasl.password"] = cfg.sasl_plain_password.get_secret_value()
    for ours, theirs in (
        ("ssl_cafile", "ssl.ca.location"),
        ("ssl_certfile", "ssl.certificate.location"),
        ("ssl_keyfile", "ssl.key.location"),
    ):
        if (value := getattr(cfg, ours)) is not None:
            conf[theirs] = str(value)
    if cfg.ssl_password:
        conf["ssl.key.password"] = cfg.ssl_password.get_secret_value()
    return conf


def consumer_config(cfg: KafkaSettings) -> dict[str, Any]:
    """The consumer's librdkafka settings: manual commits, offsets stored by the app only."""
    conf = {
        **client_config(cfg),
        # librdkafka needs a group id even to read by assignment (tools: no commits ever).
        "group.id": cfg.group_id or f"{cfg.client_id}-no-group",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": cfg.auto_offset_reset,
        "fetch.wait.max.ms": cfg.fetch_max_wait_ms,
        "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
        "session.timeout.ms": cfg.session_timeout_ms,
        "max.poll.interval.ms": cfg.max_poll_interval_ms,
        "heartbeat.interval.ms": cfg.heartbeat_interval_ms,
    }
    if cfg.group_instance_id:
        conf["group.instance.id"] = cfg.group_instance_id
    return conf


def producer_config(cfg: KafkaSettings) -> dict[str, Any]:
    """The dead-letter producer's settings: acked by all replicas, never queued past an attempt.

    A message not delivered within ``message.timeout.ms`` (just under the writer's flush wait)
    fails with a timeout, so a retry never leaves an older copy queued behind it.
    """
    return {
        **client_config(cfg),
        "acks": "all",
        "linger.ms": 20,
        "message.send.max.retries": 5,
        "message.timeout.ms": int(FLUSH_TIMEOUT * 1000) - 1000,
        "message.max.bytes": max(2**20, cfg.dead_letter_max_bytes + 64 * 1024),
    }


class ConfluentSource:
    """A consumer-group member on the predictions and labels topics, with manual commits.

    The semantics of :class:`~monitor.ingest.kafka_source.KafkaSource`: exactly the offsets a
    checkpoint covers are committed, for owned partitions only; on assignment a partition with
    known state resumes at its position and any other is replayed from ``now - replay_horizon``
    (offsets-for-times, a lower bound); on revocation the app checkpoints and the offsets it
    covers are committed; partitions lost to an eviction are not committed.
    """

    def __init__(
        self,
        cfg: KafkaSettings,
        metrics: OpsMetrics,
        *,
        positions: Offsets | None = None,
        replay_horizon: float = 0.0,
        hooks: Hooks | None = None,
        wall: Callable[[], float] = time.time,
        consumer_factory: Callable[..., Any] = Consumer,
        producer_factory: Callable[..., Any] = Producer,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cfg = cfg
        self._metrics = metrics
        self._wall = wall
        self._hooks = hooks
        self._horizon = replay_horizon
        self._progress = Progress(positions)
        self._replay: list[TopicPartition] = []  # assigned, paused, waiting for offsets
        #: Assigned, paused, waiting for the app's takeover (group mode) to succeed.
        self._takeover: list[TopicPartition] = []
        self._closing = False
        self.caught_up = False
        self._consumer = consumer_factory({**consumer_config(cfg), "error_cb": self._on_error})
        topics = [cfg.predictions_topic, cfg.labels_topic]
        if cfg.group_id is None:  # tools and benchmarks: no group, read every partition
            self._assign_all(topics)
        else:
            self._consumer.subscribe(
                topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
        self._dead_letters = DeadLetterWriter(
            cfg.dead_letter_topic,
            cfg.dead_letter_max_bytes,
            metrics,
            partial(DeadLetterProducer, producer_config(cfg), producer_factory),
            sleep,
        )

    def _assign_all(self, topics: list[str]) -> None:
        """Without a group: every partition, from its known position or ``auto_offset_reset``."""
        meta = self._consumer.list_topics(timeout=CALL_TIMEOUT)
        parts = []
        for t in topics:
            for p in sorted(meta.topics[t].partitions) if t in meta.topics else ():
                known = self._progress.get(t, p)
                parts.append(TopicPartition(t, p) if known is None else TopicPartition(t, p, known))
        self._consumer.assign(parts)

    # -- callbacks (served by consume() on the consume thread) -----------------------------
    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._metrics.kafka_up.set(0)
        log.warning("kafka: %s", err.str())

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if self._hooks is not None and not self._take_over(partitions):
            # Read nothing of them until the app knows where to resume (retried in poll).
            consumer.assign(partitions)
            consumer.pause(partitions)
            self._takeover = list(partitions)
            self.caught_up = False
            return
        self._assign(consumer, partitions)

    def _take_over(self, partitions: list[TopicPartition]) -> bool:
        """Ask the app where to resume the partitions just assigned (group mode answers from
        the state topic) and record its answer as their progress; False if it failed."""
        assert self._hooks is not None
        try:
            resume = self._hooks.on_assign([(tp.topic, tp.partition) for tp in partitions])
        except Exception as exc:
            log.warning("taking the assigned partitions over failed (%s); will retry", exc)
            return False
        self._takeover = []
        if resume is not None:
            for tp in partitions:
                pos = resume.get((tp.topic, tp.partition))
                if pos is None:
                    self._progress.forget(tp.topic, tp.partition)
                else:
                    self._progress.set(tp.topic, tp.partition, pos)
        return True

    def _assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Assign ``partitions`` at their known positions; replay the others."""
        replay = []
        for tp in partitions:
            known = self._progress.get(tp.topic, tp.partition)
            if known is not None:
                tp.offset = known
            else:
                replay.append(tp)
        found = self._lookup(replay) if replay else True
        consumer.assign(partitions)
        if not found:  # read nothing of them until their replay offsets are known
            consumer.pause(replay)
            self._replay = replay
        log.info("assigned %s", ", ".join(sorted(map(_name, partitions))) or "nothing")
        self.caught_up = False

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._replay = []
        self._takeover = []
        if self._closing or not partitions:  # closing: the app's final commit came before
            return
        offsets = self._hooks.on_revoke() if self._hooks else None
        if offsets:
            self._commit_owned(offsets, {(tp.topic, tp.partition) for tp in partitions})

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Evicted from the group: another member may own these already; committing now could
        # overwrite its progress, so only the local checkpoint survives.
        self._replay = []
        self._takeover = []
        log.warning("partitions lost (evicted from the group): %s", sorted(map(_name, partitions)))

    def _lookup(self, replay: list[TopicPartition]) -> bool:
        """Set each partition's offset to the first at or after ``now - horizon`` (the end if
        none); False if the broker did not answer."""
        start_ms = int((self._wall() - self._horizon) * 1000)
        query = [TopicPartition(tp.topic, tp.partition, start_ms) for tp in replay]
        try:
            found = self._consumer.offsets_for_times(query, timeout=CALL_TIMEOUT)
        except KafkaException as exc:
            log.warning("offsets-for-times failed (%s); will retry", exc)
            return False
        for tp, hit in zip(replay, found, strict=True):
            tp.offset = hit.offset if hit.error is None and hit.offset >= 0 else OFFSET_END
            log.info(
                "replaying %s from %s (no state for it)",
                _name(tp),
                "the end" if tp.offset == OFFSET_END else f"offset {tp.offset}",
            )
        return True

    # -- consume thread ----------------------------------------------------------------------
    def poll(self, timeout: float) -> RecordBatch:
        if (taken := self._takeover) and self._take_over(taken):
            # Assigned and paused at the failed takeover: positioned now (the known ones
            # sought, the others replayed), then resumed.
            self._assign(self._consumer, [TopicPartition(tp.topic, tp.partition) for tp in taken])
            waiting = {(tp.topic, tp.partition) for tp in self._replay}
            self._consumer.resume([tp for tp in taken if (tp.topic, tp.partition) not in waiting])
        if self._replay and self._lookup(self._replay):
            try:
                for tp in self._replay:
                    self._consumer.seek(tp)
            except KafkaException as exc:
                log.warning("seek for the replay failed (%s); will retry", exc)
            else:
                self._consumer.resume(self._replay)
                self._replay = []
        messages = self._consumer.consume(self._cfg.max_poll_records, timeout)
        if any(map(Message.error, messages)):
            for m in messages:
                if (err := m.error()) is not None and err.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka: %s", err.str())
            messages = [m for m in messages if m.error() is None]
        # A column per field, each read in one C loop: no object per record. (The stubs allow
        # None for topic, partition and offset: only an error message has none.)
        out = RecordBatch(
            list(map(Message.topic, messages)),  # type: ignore[arg-type]
            list(map(Message.partition, messages)),  # type: ignore[arg-type]
            list(map(Message.offset, messages)),  # type: ignore[arg-type]
            [ms / 1e3 for _, ms in map(Message.timestamp, messages)],
            list(map(Message.key, messages)),
            list(map(Message.value, messages)),
        )
        if self._replay:  # fetched before the pause: replayed later
            waiting = {(tp.topic, tp.partition) for tp in self._replay}
            pairs = zip(out.topics, out.partitions, strict=True)
            out = out.take([i for i, tp in enumerate(pairs) if tp not in waiting])
        if not out and self._consumer.assignment() and not self._replay:
            self.caught_up = True
        return out

    def mark_processed(self, records: Sequence[RawRecord]) -> None:
        self._progress.mark(records)

    def offset_ranges(self) -> dict[str, dict[str, list[int]]]:
        """Evidence for webhooks: per stream and partition, [first, last] offset processed."""
        roles = {self._cfg.predictions_topic: "predictions", self._cfg.labels_topic: "labels"}
        return self._progress.ranges(roles)

    def positions(self) -> Offsets:
        return self._progress.positions()

    def dead_letter(
        self,
        items: Sequence[DeadLetter],
        stop: Callable[[], bool] = bool,
        waiting: Callable[[], None] = lambda: None,
    ) -> None:
        """Produce to the dead-letter topic and wait for the broker's acks (see
        :class:`~monitor.ingest.dead_letter.DeadLetterWriter`)."""
        self._dead_letters.write(items, stop, waiting)

    def commit(self, offsets: Offsets) -> None:
        """Commit these offsets (those a checkpoint covers) for the partitions still owned."""
        if self._cfg.group_id is None:
            return
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        self._commit_owned(offsets, owned)

    def _commit_owned(self, offsets: Offsets, owned: set[tuple[str, int]]) -> None:
        mine = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items()) if (t, p) in owned]
        if not mine:
            return
        try:
            self._consumer.commit(offsets=mine, asynchronous=False)
        except KafkaException as exc:
            # A failed commit is as good a sign of an unreachable broker as a failed lag query.
            self._metrics.kafka_up.set(0)
            log.warning("offset commit failed (%s); will retry after the next checkpoint", exc)

    def update_lag(self) -> None:
        """Refresh lag per partition; also the broker reachability signal."""
        assigned: list[TopicPartition] = self._consumer.assignment()
        ends: dict[tuple[str, int], int] = {}
        try:
            if not assigned:  # a metadata round trip says whether a broker answers
                self._consumer.list_topics(timeout=CALL_TIMEOUT)
            for tp in assigned:
                _low, high = self._consumer.get_watermark_offsets(tp, timeout=CALL_TIMEOUT)
                ends[(tp.topic, tp.partition)] = high
        except KafkaException as exc:
            log.warning("broker unreachable: %s", exc)
            self._metrics.kafka_up.set(0)
            return
        self._metrics.kafka_up.set(1)
        total = 0
        for (topic, part), end in ends.items():
            known = self._progress.get(topic, part)
            lag = max(0, end - (end if known is None else known))
            total += lag
            self._metrics.lag.labels(topic, str(part)).set(lag)
        if assigned and total <= self._cfg.max_poll_records and not self._replay:
            self.caught_up = True

    def close(self) -> None:
        self._closing = True
        try:
            self._consumer.close()
        finally:
            self._dead_letters.close()


def _name(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"
