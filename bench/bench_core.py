"""Core benchmark (run on demand, never in the test suite): `make bench` or

    .venv/bin/python bench/bench_core.py [--events 200000] [--repeat 3]

Prints, for one process on this machine:
1. raw ceiling: kafka-python consume + decode only (no windows), events/s;
2. end to end: broker → decode → windows through the daemon's own KafkaSource + Pipeline;
3. evaluation time for 10 models × 20 features × 2 windows (median of 30);
4. RSS after 1 M and 3 M events through the pipeline (windows sliding), and the change.
Targets (issue 2): end-to-end ≥ 60 % of raw; evaluation ≤ 50 ms; RSS flat (± 10 %).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
import uuid

import numpy as np
import orjson
import psutil
from kafka import KafkaConsumer, KafkaProducer

from monitor.devkit.broker import EmbeddedBroker, create_topics
from monitor.events import RawRecord
from monitor.ingest.decode import Decoder
from monitor.ingest.kafka_source import KafkaSource
from monitor.ingest.route import Pipeline
from monitor.reference.build import build_reference
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import Settings
from monitor.settings_loader import load_settings
from monitor.state.evaluate import evaluate
from monitor.state.model_state import ModelState

FEATURES = {f"f{i}": "numeric" for i in range(8)} | {"c0": "categorical", "c1": "categorical"}


def make_events(n: int, t0: float, rng: np.random.Generator) -> list[bytes]:
    """~300-byte JSON predictions with 10 features."""
    num = rng.normal(100, 15, (n, 8)).round(5)
    cats = rng.choice(["alpha", "beta", "gamma", "delta"], (n, 2))
    out = []
    for i in range(n):
        feats: dict[str, object] = {f"f{j}": float(num[i, j]) for j in range(8)}
        feats["c0"], feats["c1"] = str(cats[i, 0]), str(cats[i, 1])
        out.append(
            orjson.dumps(
                {
                    "id": uuid.uuid4().hex,
                    "model": "m0",
                    "version": "v1",
                    "timestamp": t0 + i * 0.001,
                    "features": feats,
                    "prediction": int(i % 2),
                    "score": round(float(i % 97) / 97, 4),
                }
            )
        )
    return out


def settings_for(
    bootstrap: str, topic: str, models: int = 1, features: dict[str, str] | None = None
) -> Settings:
    feats = features or FEATURES
    return load_settings(
        None,
        overrides={
            "kafka": {
                "bootstrap_servers": bootstrap,
                "predictions_topic": topic,
                "labels_topic": topic + "-labels",
                "group_id": f"bench-{uuid.uuid4().hex[:6]}",
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
            },
            "models": [
                {
                    "name": f"m{i}",
                    "reference": {"bootstrap_events": 1000},
                    "features": feats,
                    "windows": [
                        {"name": "5m", "length": "5m", "pane": "10s"},
                        {"name": "1h", "length": "1h", "pane": "1m"},
                    ],
                }
                for i in range(models)
            ],
        },
    )


def reference_for(settings: Settings, rng: np.random.Generator) -> dict[str, ModelState]:
    states = {}
    for m in settings.models:
        cols: dict[str, list[object]] = {}
        for f, kind in m.features.items():
            cols[f] = (
                rng.normal(100, 15, 20_000).tolist()
                if kind == "numeric"
                else rng.choice(["alpha", "beta", "gamma", "delta"], 20_000).tolist()
            )
        cols["score"] = rng.random(20_000).tolist()
        states[m.name] = ModelState(m, build_reference(m.name, m.task, cols, dict(m.features)))
    return states


def consume_raw(bootstrap: str, topic: str, n: int, settings: Settings) -> float:
    decoder = Decoder(settings.fields, max_future_skew=settings.time.max_future_skew)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    got = 0
    start = time.perf_counter()
    while got < n:
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                decoder.prediction(r.value, r.timestamp / 1000.0, now=time.time())
            got += len(records)
    elapsed = time.perf_counter() - start
    consumer.close()
    return n / elapsed


def consume_pipeline(settings: Settings, n: int, rng: np.random.Generator) -> float:
    metrics = OpsMetrics(__import__("prometheus_client").CollectorRegistry())
    pipeline = Pipeline(settings, reference_for(settings, rng), metrics)
    source = KafkaSource(settings.kafka.model_copy(update={"group_id": None}), metrics)
    got = 0
    start = time.perf_counter()
    while got < n:
        records = source.poll(0.5)
        pipeline.process(records)
        got += len(records)
    elapsed = time.perf_counter() - start
    source.close()
    return n / elapsed


def bench_evaluation(rng: np.random.Generator) -> float:
    feats = {f"n{i}": "numeric" for i in range(16)} | {f"c{i}": "categorical" for i in range(4)}
    settings = settings_for("127.0.0.1:1", "x", models=10, features=feats)
    states = reference_for(settings, rng)
    t0 = 1.8e9
    for state in states.values():
        from monitor.events import Prediction

        preds = [
            Prediction(
                str(i),
                state.cfg.name,
                "v",
                t0 + i * 0.05,
                {
                    f: (float(rng.normal(103, 15)) if k == "numeric" else "beta")
                    for f, k in feats.items()
                },
                1,
                0.5,
            )
            for i in range(20_000)
        ]
        state.add_predictions(preds)
    times = []
    for _ in range(30):
        start = time.perf_counter()
        evaluate(states.values(), time.time)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_rss(rng: np.random.Generator, n_total: int = 3_000_000) -> tuple[float, float]:
    settings = settings_for("127.0.0.1:1", "preds")
    pipeline = Pipeline(
        settings,
        reference_for(settings, rng),
        OpsMetrics(__import__("prometheus_client").CollectorRegistry()),
    )
    batch = make_events(2000, 0.0, rng)
    proc = psutil.Process()
    rss_1m = 0.0
    t0, sent = time.time() - 40_000, 0  # in the past: 3M events span 30,000 s of event time
    while sent < n_total:
        # Re-stamp timestamps so event time moves on and the windows slide.
        pipeline.process(_retimed(batch, t0 + sent * 0.01))
        sent += len(batch)
        if sent == 1_000_000:
            gc.collect()
            rss_1m = proc.memory_info().rss / 2**20
    gc.collect()
    return rss_1m, proc.memory_info().rss / 2**20


def _retimed(batch: list[bytes], t: float) -> list[RawRecord]:
    out = []
    for i, v in enumerate(batch):
        e = orjson.loads(v)
        e["timestamp"] = t + i * 0.01
        out.append(RawRecord("preds", 0, i, t, None, orjson.dumps(e)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--only-rss", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.only_rss:  # run in a fresh interpreter so earlier phases do not inflate RSS
        rss1, rss3 = bench_rss(np.random.default_rng(0))
        print(
            f"RSS after 1M events: {rss1:.0f} MiB; after 3M: {rss3:.0f} MiB; "
            f"change {100 * (rss3 - rss1) / rss1:+.1f}% (target within ±10%)"
        )
        return
    rng = np.random.default_rng(0)
    import kafka.record.util as ku

    print(f"crc32c C extension: {'yes' if ku.crc32c_c is not None else 'NO (7x slower)'}")
    with EmbeddedBroker() as broker:
        topic = "bench-preds"
        create_topics(broker.bootstrap, {topic: 1, topic + "-labels": 1})
        events = make_events(args.events, time.time() - 300, rng)
        print(f"event size: median {statistics.median(len(e) for e in events):.0f} bytes")
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap, linger_ms=50, batch_size=1 << 20
        )
        for e in events:
            producer.send(topic, value=e)
        producer.flush()
        producer.close()
        settings = settings_for(broker.bootstrap, topic)
        raw, e2e = [], []
        for _ in range(args.repeat):
            raw.append(consume_raw(broker.bootstrap, topic, args.events, settings))
            e2e.append(consume_pipeline(settings, args.events, rng))
        r, e = statistics.median(raw), statistics.median(e2e)
        print(f"raw ceiling (consume + decode): {r:,.0f} events/s  runs={[round(x) for x in raw]}")
        print(
            f"end to end (consume + decode + windows): {e:,.0f} events/s  "
            f"runs={[round(x) for x in e2e]}"
        )
        print(f"end-to-end / raw: {e / r:.0%} (target >= 60%)")
    ms = bench_evaluation(rng)
    print(f"evaluation, 10 models x 20 features x 2 windows: {ms:.1f} ms median (target <= 50)")
    if not args.skip_rss:
        subprocess.run([sys.executable, __file__, "--only-rss"], check=True)


if __name__ == "__main__":
    main()
