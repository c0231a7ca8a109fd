"""The kafka-python adapter: a consumer-group member that polls, seeks, commits and dead-letters.

It is the only production module that makes kafka-python clients (:mod:`monitor.ingest.dead_letter`,
which writes through the producer made here, imports only ``kafka``'s error classes).
Everything past it sees :class:`~monitor.events.RawRecord` (in columns: a
:class:`~monitor.events.RecordBatch`); the other client, confluent-kafka,
is :mod:`monitor.ingest.confluent_source`, another implementation of
:class:`~monitor.ingest.source.Source` (``kafka.client: confluent``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from operator import attrgetter
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.errors import KafkaError

from monitor.events import DeadLetter, Offsets, RawRecord, RecordBatch
from monitor.ingest.dead_letter import DeadLetterWriter
from monitor.ingest.progress import Progress
from monitor.ingest.source import Hooks
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import KafkaSettings

log = logging.getLogger(__name__)
#: A kafka-python ``ConsumerRecord``'s fields.
_TOPIC, _PARTITION, _OFFSET, _TIMESTAMP, _KEY, _VALUE = map(
    attrgetter, ("topic", "partition", "offset", "timestamp", "key", "value")
)


def check_brokers(cfg: KafkaSettings, timeout: float = 4.0) -> tuple[bool, str, list[str]]:
    """Ask the brokers for metadata: (reachable, detail, the configured topics missing).

    An unreachable cluster is reported after about ``timeout`` seconds (kafka-python would wait
    30 s to bootstrap): a person is waiting for the answer.
    """
    wait_ms = max(1000, int(timeout * 1000))
    options = {
        **client_options(cfg),
        "bootstrap_timeout_ms": wait_ms,
        "request_timeout_ms": min(cfg.request_timeout_ms, wait_ms),
    }
    try:
        consumer = KafkaConsumer(**options)
        try:
            topics = consumer.topics()
        finally:
            consumer.close()
    except KafkaError as exc:
        return False, str(exc), []
    wanted = (cfg.predictions_topic, cfg.labels_topic, cfg.dead_letter_topic)
    return True, "ok", [t for t in wanted if t not in topics]


#: kafka-python 3 backs reconnects off exponentially up to 30 s, so after an outage the daemon
#: stayed blind for up to that long once the broker was back (measured: 27 s after a 30 s cut).
#: The Java client caps it at 1 s too.
RECONNECT_BACKOFF_MAX_MS = 1000


def client_options(cfg: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by consumer and producer, named as kafka-python names them."""
    opts: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers.split(","),
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
        "request_timeout_ms": cfg.request_timeout_ms,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
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


class _Rebalance(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on kafka-python's IO thread: seeks only; blocking work is the app's quick hook."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._source._on_assigned(assigned)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            await self._source._on_revoked(revoked)

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        # Evicted from the group: another member may own these already; committing now could
        # overwrite its progress, so only the local checkpoint survives.
        log.warning("partitions lost (evicted from the group): %s", sorted(map(str, lost)))


class KafkaSource:
    """A consumer-group member on the predictions and labels topics, with manual commits.

    It tracks the next offset to process per partition (``mark_processed``, called under the
    same lock as the state update) and commits exactly the offsets a checkpoint covers. On
    assignment, a partition it already holds state for is sought to that offset; any other
    partition is replayed from ``now - replay_horizon`` (offsets-for-times, treated as a lower
    bound) so its windows are rebuilt.
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
        consumer_factory: Callable[..., Any] = KafkaConsumer,
        producer_factory: Callable[..., Any] = KafkaProducer,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cfg = cfg
        self._metrics = metrics
        self._wall = wall
        self._hooks = hooks
        self._horizon = replay_horizon
        self._progress = Progress(positions)
        self._replay: set[TopicPartition] = set()
        #: Assigned, not yet resumed where the app says (None: nothing to ask).
        self._takeover: list[TopicPartition] | None = None
        self.caught_up = False
        opts = client_options(cfg)
        self._consumer = consumer_factory(
            group_id=cfg.group_id,
            group_instance_id=cfg.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset=cfg.auto_offset_reset,
            max_poll_records=cfg.max_poll_records,
            fetch_max_wait_ms=cfg.fetch_max_wait_ms,
            session_timeout_ms=cfg.session_timeout_ms,
            max_poll_interval_ms=cfg.max_poll_interval_ms,
            heartbeat_interval_ms=cfg.heartbeat_interval_ms,
            **opts,
        )
        topics = [cfg.predictions_topic, cfg.labels_topic]
        if cfg.group_id is None:  # tools and benchmarks: no group, read every partition
            self._consumer.subscribe(topics)
        else:
            self._consumer.subscribe(topics, listener=_Rebalance(self))
        # The dead-letter producer is made on first use: most runs never need one, and an idle
        # client still keeps a connection and metadata refreshes going. A send blocks at most
        # max_block_ms for metadata, so a broker outage cannot hold the loop for a minute; the
        # request limit lets a copy of dead_letter_max_bytes through the client's own check.
        self._dead_letters = DeadLetterWriter(
            cfg.dead_letter_topic,
            cfg.dead_letter_max_bytes,
            metrics,
            partial(
                producer_factory,
                linger_ms=20,
                acks="all",
                retries=5,
                max_block_ms=10_000,
                max_request_size=max(2**20, cfg.dead_letter_max_bytes + 64 * 1024),
                **opts,
            ),
            sleep,
        )

    # -- rebalance (IO thread) ------------------------------------------------------------------
    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            known = self._progress.get(tp.topic, tp.partition)
            if known is not None:
                self._consumer.seek(tp, known)
            else:
                self._replay.add(tp)  # offsets-for-times blocks: done on the consume thread
        log.info("assigned %s", ", ".join(sorted(str(tp) for tp in assigned)) or "nothing")
        self._takeover = list(assigned) if self._hooks is not None else None
        self.caught_up = False

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        offsets = self._hooks.on_revoke() if self._hooks else None
        # Only the partitions given up: a checkpoint also covers partitions owned earlier (or
        # restored from disk) which another member may have committed past since.
        mine = {(tp.topic, tp.partition) for tp in revoked}
        offsets = {tp: o for tp, o in (offsets or {}).items() if tp in mine}
        if offsets:
            coordinator = getattr(self._consumer, "_coordinator", None)
            commit = getattr(coordinator, "_commit_offsets_sync_async", None)
            try:
                if commit is not None:  # kafka-python 3.0: the IO thread must await, not block
                    await commit(self._as_commit(offsets))
                else:  # pragma: no cover - other client versions
                    self._consumer.commit_async(self._as_commit(offsets))
            except KafkaError as exc:
                log.warning("commit on revocation failed (%s); the checkpoint keeps them", exc)

    # -- consume thread -------------------------------------------------------------------------
    def poll(self, timeout: float) -> RecordBatch:
        batches = self._consumer.poll(
            timeout_ms=int(timeout * 1000), max_records=self._cfg.max_poll_records
        )
        if self._takeover is not None:
            batches = self._take_over(batches, self._takeover)
        if self._replay:
            batches = self._start_replays(batches)
        out = RecordBatch([], [], [], [], [], [])
        for records in batches.values():  # a column per field, each read in one C loop
            out.topics.extend(map(_TOPIC, records))
            out.partitions.extend(map(_PARTITION, records))
            out.offsets.extend(map(_OFFSET, records))
            out.timestamps.extend([ms / 1e3 for ms in map(_TIMESTAMP, records)])
            out.keys.extend(map(_KEY, records))
            out.values.extend(map(_VALUE, records))
        if not out and self._consumer.assignment() and not self._replay:
            self.caught_up = True
        return out

    def _take_over(
        self, batches: dict[Any, list[Any]], tps: list[TopicPartition]
    ) -> dict[Any, list[Any]]:
        """Ask the app where to resume the partitions just assigned (group mode answers from
        the state topic); drop what they fetched before the seek."""
        assert self._hooks is not None
        try:
            resume = self._hooks.on_assign([(tp.topic, tp.partition) for tp in tps])
        except Exception as exc:
            log.warning("taking the assigned partitions over failed (%s); will retry", exc)
            return {tp: recs for tp, recs in batches.items() if tp not in tps}
        self._takeover = None
        if resume is None:
            return batches
        for tp in tps:
            pos = resume.get((tp.topic, tp.partition))
            if pos is None:
                self._progress.forget(tp.topic, tp.partition)
                self._replay.add(tp)
            else:
                self._consumer.seek(tp, pos)
                self._progress.set(tp.topic, tp.partition, pos)
                self._replay.discard(tp)
        return {tp: recs for tp, recs in batches.items() if tp not in tps}

    def _start_replays(self, batches: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
        """Seek partitions without state to ``now - horizon``; drop what they already fetched."""
        start_ms = int((self._wall() - self._horizon) * 1000)
        pending = [tp for tp in self._replay if tp in self._consumer.assignment()]
        try:
            found = self._consumer.offsets_for_times(
                dict.fromkeys(pending, start_ms), timeout_ms=5000
            )
        except KafkaError as exc:
            log.warning("offsets-for-times failed (%s); will retry", exc)
            return {tp: recs for tp, recs in batches.items() if tp not in self._replay}
        for tp in pending:
            hit = found.get(tp)
            if hit is None:
                self._consumer.seek_to_end(tp)
            else:
                self._consumer.seek(tp, hit.offset)
            log.info(
                "replaying %s from %s (no state for it)",
                tp,
                "the end" if hit is None else f"offset {hit.offset}",
            )
        self._replay.clear()
        return {tp: recs for tp, recs in batches.items() if tp not in pending}

    def mark_processed(self, records: Sequence[RawRecord]) -> None:
        self._progress.mark(records)

    def offset_ranges(self) -> dict[str, dict[str, list[int]]]:
        """Evidence for webhooks: per stream and partition, [first, last] offset processed
        by this process (a window's events lie within them)."""
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
        :class:`~monitor.ingest.dead_letter.DeadLetterWriter`): transient errors are retried
        with backoff, calling ``waiting()`` between attempts, until written or ``stop()``
        (then :class:`~monitor.ingest.source.DeadLetterAbortedError`: the records are not marked
        processed and are re-read on restart); permanent ones are not retried.
        """
        self._dead_letters.write(items, stop, waiting)

    @staticmethod
    def _as_commit(offsets: Offsets) -> dict[TopicPartition, OffsetAndMetadata]:
        return {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}

    def commit(self, offsets: Offsets) -> None:
        """Commit these offsets (those a checkpoint covers) for the partitions still owned."""
        if self._cfg.group_id is None:
            return
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        mine = {k: v for k, v in offsets.items() if k in owned}
        if not mine:
            return
        try:
            self._consumer.commit(self._as_commit(mine), timeout_ms=10_000)
        except KafkaError as exc:
            # A failed commit is as good a sign of an unreachable broker as a failed lag query.
            self._metrics.kafka_up.set(0)
            log.warning("offset commit failed (%s); will retry after the next checkpoint", exc)

    def update_lag(self) -> None:
        """Refresh lag per partition; also the broker reachability signal."""
        assigned = list(self._consumer.assignment())
        try:
            if assigned:
                ends = self._consumer.end_offsets(assigned, timeout_ms=5000)
            else:
                self._consumer.topics()  # a metadata round trip says whether a broker answers
                ends = {}
        except KafkaError as exc:
            log.warning("broker unreachable: %s", exc)
            self._metrics.kafka_up.set(0)
            return
        self._metrics.kafka_up.set(1)
        total = 0
        for tp in assigned:
            end = ends.get(tp)
            if end is None:
                continue
            # The position can pass the reported end offset on brokers that report it late.
            known = self._progress.get(tp.topic, tp.partition)
            done = end if known is None else known
            lag = max(0, end - done)
            total += lag
            self._metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
        if assigned and total <= self._cfg.max_poll_records and not self._replay:
            self.caught_up = True

    def assignment(self) -> list[TopicPartition]:
        return list(self._consumer.assignment())

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        finally:
            self._dead_letters.close()
