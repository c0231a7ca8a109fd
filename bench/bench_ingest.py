"""Broker stages of ``bench_core`` (run on demand, never in the test suite).

Four consumers of the same topic on the same broker, each reading the same subscription
(predictions + labels topics, no group, from the earliest offset) with the same fetch settings
(``max_poll_records``, ``fetch_max_wait_ms``; for librdkafka also ``fetch.queue.backoff.ms``),
all taken from the one :class:`~monitor.settings.KafkaSettings`:

- ``bare_kafka_python``: kafka-python ``poll`` + ``orjson.loads`` per value, nothing of ours;
- ``bare_confluent``: confluent-kafka ``consume`` + ``orjson.loads`` per value, nothing of ours;
- ``end_to_end``: the daemon's own Source (either client) + ``Pipeline.decode``/``apply`` with
  ``mark_processed``, as ``App._consume`` runs them.

Each is timed from the moment its first non-empty batch has been handled (so connection,
metadata and the first fetch's latency are left out alike) to the last of ``n`` records;
the rate counts only the records read in that interval.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from functools import partial

import orjson
import prometheus_client

from monitor.ingest.route import Pipeline
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import KafkaSettings, Settings
from monitor.state.model_state import ModelState

#: Polls that come back empty before a stage gives up (a broken broker, not a slow one).
MAX_EMPTY_POLLS = 40


def _timed(n: int, step: Callable[[], int]) -> float:
    """Events/s of ``step`` (one poll + its handling, returns records read) after the first
    non-empty batch, until ``n`` records in all."""
    got, empty = 0, 0
    while got == 0:
        got = step()
        empty += not got
        if empty > MAX_EMPTY_POLLS:
            raise RuntimeError("no records: is the topic loaded?")
    first, start = got, time.perf_counter()
    while got < n:
        k = step()
        got += k
        empty = 0 if k else empty + 1
        if empty > MAX_EMPTY_POLLS:
            raise RuntimeError(f"only {got} of {n} records")
    return (got - first) / (time.perf_counter() - start)


def bare_kafka_python(cfg: KafkaSettings, n: int) -> float:
    """kafka-python consume + orjson decode: the issue's raw ceiling for that client."""
    from kafka import KafkaConsumer

    from monitor.ingest.kafka_source import client_options

    consumer = KafkaConsumer(
        cfg.predictions_topic,
        cfg.labels_topic,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=cfg.max_poll_records,
        fetch_max_wait_ms=cfg.fetch_max_wait_ms,
        **client_options(cfg),
    )
    loads, limit = orjson.loads, cfg.max_poll_records

    def step() -> int:
        k = 0
        for records in consumer.poll(
            timeout_ms=int(cfg.poll_timeout * 1000), max_records=limit
        ).values():
            for r in records:
                loads(r.value)
            k += len(records)
        return k

    try:
        return _timed(n, step)
    finally:
        consumer.close()


def bare_confluent(cfg: KafkaSettings, n: int) -> float:
    """confluent-kafka consume + orjson decode: the issue's raw ceiling for that client."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from monitor.ingest.confluent_source import consumer_config

    consumer = Consumer(consumer_config(cfg))
    meta = consumer.list_topics(timeout=5)
    consumer.assign(
        [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in (cfg.predictions_topic, cfg.labels_topic)
            for p in sorted(meta.topics[t].partitions)
        ]
    )
    loads, limit, timeout = orjson.loads, cfg.max_poll_records, cfg.poll_timeout

    def step() -> int:
        k = 0
        for m in consumer.consume(limit, timeout):
            if m.error() is None:
                loads(m.value())
                k += 1
        return k

    try:
        return _timed(n, step)
    finally:
        consumer.close()


def end_to_end(settings: Settings, states: dict[str, ModelState], n: int) -> float:
    """The daemon's Source (``settings.kafka.client``) + Pipeline, as the consume loop runs them."""
    metrics = OpsMetrics(prometheus_client.CollectorRegistry())
    pipeline = Pipeline(settings, states, metrics)
    cfg = settings.kafka.model_copy(update={"group_id": None})
    if cfg.client == "confluent":
        from monitor.ingest.confluent_source import ConfluentSource

        source: object = ConfluentSource(cfg, metrics)
    else:
        from monitor.ingest.kafka_source import KafkaSource

        source = KafkaSource(cfg, metrics)
    poll, timeout = source.poll, cfg.poll_timeout  # type: ignore[attr-defined]

    def step() -> int:
        records = poll(timeout)
        if records:
            batch = pipeline.decode(records)
            if batch.dead:
                raise RuntimeError(f"{len(batch.dead)} dead letters: the bench events are valid")
            pipeline.apply(batch, partial(source.mark_processed, records))  # type: ignore[attr-defined]
        return len(records)

    try:
        return _timed(n, step)
    finally:
        source.close()  # type: ignore[attr-defined]


def load_topic(bootstrap: str, topic: str, events: list[bytes]) -> None:
    """Produce ``events`` to ``topic`` (librdkafka if installed: much faster than kafka-python)."""
    try:
        from confluent_kafka import Producer
    except ImportError:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=1 << 20)
        for e in events:
            producer.send(topic, value=e)
        producer.flush()
        producer.close()
        return
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1 << 20})
    for e in events:
        while True:
            try:
                p.produce(topic, e)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    if p.flush(60):
        raise RuntimeError("events not all delivered")


class PeakRss:
    """Samples this process's RSS every 10 ms on a thread; ``take()`` returns (peak, median)
    MiB since the last ``take()``."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self._samples.append(self._proc.memory_info().rss / 2**20)

    def take(self) -> tuple[float, float]:
        samples, self._samples = self._samples, []
        return max(samples), statistics.median(samples)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def backlog_rss(
    settings: Settings, states: dict[str, ModelState], backlog: int, live: float
) -> None:
    """In a fresh interpreter: consume a ``backlog`` already in the topic through the daemon's
    Source + Pipeline (RSS sampled), say ``caught-up`` on stdout, then consume the live traffic
    the parent produces for ``live`` seconds. Prints one JSON line: peak RSS while catching up,
    and the median RSS in the live (steady) phase."""
    import gc

    metrics = OpsMetrics(prometheus_client.CollectorRegistry())
    pipeline = Pipeline(settings, states, metrics)
    cfg = settings.kafka.model_copy(update={"group_id": None})
    if cfg.client == "confluent":
        from monitor.ingest.confluent_source import ConfluentSource

        source: object = ConfluentSource(cfg, metrics)
    else:
        from monitor.ingest.kafka_source import KafkaSource

        source = KafkaSource(cfg, metrics)
    poll = source.poll  # type: ignore[attr-defined]
    gc.collect()
    rss = PeakRss()
    time.sleep(0.05)
    _, before = rss.take()
    got = 0

    def step() -> int:
        records = poll(cfg.poll_timeout)
        if records:
            pipeline.apply(pipeline.decode(records), partial(source.mark_processed, records))  # type: ignore[attr-defined]
        return len(records)

    while got < backlog:
        got += step()
    catchup_peak, _ = rss.take()
    print("caught-up", flush=True)
    end = time.monotonic() + live
    live_got = 0
    while time.monotonic() < end:
        live_got += step()
    live_peak, steady = rss.take()
    rss.close()
    source.close()  # type: ignore[attr-defined]
    print(
        orjson.dumps(
            {
                "before": before,
                "catchup_peak": catchup_peak,
                "steady": steady,
                "live_peak": live_peak,
                "live_events": live_got,
            }
        ).decode(),
        flush=True,
    )


def produce_live(bootstrap: str, topic: str, events: list[bytes], rate: float) -> None:
    """Produce ``events`` at about ``rate`` per second (re-stamped to now by the caller)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    start = time.monotonic()
    for i, e in enumerate(events):
        p.produce(topic, e)
        if i % 100 == 0:
            p.poll(0)
            ahead = i / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    p.flush(30)
