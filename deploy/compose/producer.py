"""Demo traffic for the compose stack: synthetic predictions and their labels into Kafka.

Every second it sends ``--rate`` fraud and ``--rate / 4`` demand predictions stamped with the
current time, and each prediction's label ``--label-delay`` seconds later (ground truth arrives
after the prediction, as in production). After ``--drift-after`` seconds the features drift
(``amount``, ``distance_km``, ``country``; ``temperature``) and demand's ground truth shifts
(a concept drift only the performance metrics can see), so the dashboard and the alerts have
something to show. Records are keyed by prediction id, so a prediction and its label land in
the same partition (modelmon's join needs them co-partitioned).

It runs in the modelmon image, where ``monitor.devkit.synthetic`` and kafka-python are installed::

    python producer.py --bootstrap-servers kafka:9092 --rate 50 --drift-after 900
"""

from __future__ import annotations

import argparse
import collections
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.devkit.synthetic import Traffic, encode

log = logging.getLogger("producer")

# (topic, key, value)
Record = tuple[str, bytes, bytes]


@dataclass
class DemoTraffic:
    """What to send at each tick; pure (no Kafka, no clock), so it can be tested offline."""

    rate: float
    drift_after: float
    label_delay: float
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    seed: int = 7
    _traffic: Traffic = field(init=False)
    # (due time, label record) in due order: the delay is constant, so appends stay sorted
    _pending: collections.deque[tuple[float, Record]] = field(
        init=False, default_factory=collections.deque
    )
    _started: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._traffic = Traffic(seed=self.seed)

    def drifted(self, now: float) -> bool:
        return self._started is not None and now - self._started >= self.drift_after

    def tick(self, now: float, seconds: float = 1.0) -> list[Record]:
        """Predictions for the ``seconds`` ending at ``now`` plus every label now due."""
        if self._started is None:
            self._started = now
        drifted = self.drifted(now)
        out: list[Record] = []
        for model, share in (("fraud", 1.0), ("demand", 0.25)):
            n = max(1, round(self.rate * share * seconds))
            events = self._traffic.events(
                model, n, t0=now - seconds, rate=n / seconds, drifted=drifted
            )
            truths = self._traffic.labels(events, concept_drift=drifted)
            for event, truth in zip(events, truths, strict=True):
                key = event["id"].encode()
                out.append((self.predictions_topic, key, encode(event)))
                label: dict[str, Any] = {
                    "id": event["id"],
                    "model": model,
                    "label": truth,
                    "timestamp": event["timestamp"] + self.label_delay,
                }
                self._pending.append(
                    (now + self.label_delay, (self.labels_topic, key, encode(label)))
                )
        while self._pending and self._pending[0][0] <= now:
            out.append(self._pending.popleft()[1])
        return out


def run(
    traffic: DemoTraffic,
    send: Callable[[Record], None],
    stop: Callable[[], bool],
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send a tick every second until ``stop()``; returns the number of records sent."""
    sent = 0
    next_tick = clock()
    while not stop():
        now = clock()
        for record in traffic.tick(now):
            send(record)
            sent += 1
        if traffic.drifted(now) and not traffic.drifted(now - 1.0):
            log.info("drift injected after %.0fs", traffic.drift_after)
        next_tick += 1.0
        sleep(max(0.0, next_tick - clock()))
    return sent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="kafka:9092")
    parser.add_argument("--rate", type=float, default=50.0, help="fraud predictions per second")
    parser.add_argument("--drift-after", type=float, default=900.0, help="seconds until drift")
    parser.add_argument("--label-delay", type=float, default=30.0, help="seconds until a label")
    parser.add_argument("--duration", type=float, default=None, help="stop after (default: never)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--predictions-topic", default="predictions")
    parser.add_argument("--labels-topic", default="labels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s producer %(message)s")

    # kafka-python is imported here so the pure parts above import without it.
    from kafka import KafkaProducer

    from monitor.devkit.broker import create_topics

    # Same partition count for both topics: keyed by id, a prediction and its label co-locate.
    topics = {args.predictions_topic: args.partitions, args.labels_topic: args.partitions}
    create_topics(args.bootstrap_servers, {**topics, "modelmon-dlq": 1})
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap_servers, client_id="modelmon-demo-producer", linger_ms=50
    )
    stopping = False
    deadline = None if args.duration is None else time.monotonic() + args.duration

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    def stop() -> bool:
        return stopping or (deadline is not None and time.monotonic() >= deadline)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    traffic = DemoTraffic(
        rate=args.rate,
        drift_after=args.drift_after,
        label_delay=args.label_delay,
        predictions_topic=args.predictions_topic,
        labels_topic=args.labels_topic,
    )
    log.info("sending to %s; drift after %.0fs", args.bootstrap_servers, args.drift_after)
    try:
        sent = run(traffic, lambda r: producer.send(r[0], key=r[1], value=r[2]), stop)
    finally:
        producer.flush(timeout=10)
        producer.close(timeout=10)
    log.info("stopped after %d records", sent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
