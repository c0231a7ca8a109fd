"""Core benchmark (run on demand, never in the test suite):

    .venv/bin/python bench/bench_core.py [--events 200000] [--repeat 3]

Prints, for one process on this machine, every target of issue 12 (same embedded broker, same
subscription and fetch settings for every consumer; see ``bench_ingest``), medians of
``--repeat`` runs, the stages interleaved run by run:
1. raw ceilings: bare kafka-python + orjson, bare confluent-kafka + orjson (consume + decode,
   nothing of ours);
2. end to end: broker → decode → windows through the daemon's own Source + Pipeline, with
   ``kafka.client: kafka-python`` and with ``confluent``; the three ratios;
3. evaluation time for 10 models × 50 features × 3 windows (and the old 20 × 2 shape);
4. in a fresh interpreter, RSS after 1 M and ``--rss-events`` (10 M) events through the pipeline
   (windows sliding).
Targets (issue 12): e2e / bare ≥ 0.8 (kafka-python), ≥ 0.5 (confluent); e2e confluent /
e2e kafka-python ≥ 4×; evaluation ≤ 20 ms; RSS flat (± 10 %).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import psutil

from monitor.devkit.broker import EmbeddedBroker, create_topics
from monitor.events import Prediction, RawRecord
from monitor.ingest.confluent_source import FETCH_QUEUE_BACKOFF_MS
from monitor.ingest.route import Pipeline
from monitor.reference.build import build_reference
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import Settings
from monitor.settings_loader import load_settings
from monitor.state.evaluate import evaluate
from monitor.state.model_state import ModelState

try:  # a sibling script, imported by path whether run as a script or not
    from bench_ingest import (  # type: ignore[import-not-found]
        backlog_rss,
        bare_confluent,
        bare_kafka_python,
        end_to_end,
        load_topic,
        produce_live,
    )
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_ingest import (
        backlog_rss,
        bare_confluent,
        bare_kafka_python,
        end_to_end,
        load_topic,
        produce_live,
    )


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


WINDOWS_2 = [
    {"name": "5m", "length": "5m", "pane": "10s"},
    {"name": "1h", "length": "1h", "pane": "1m"},
]
WINDOWS_3 = [*WINDOWS_2, {"name": "1d", "length": "1d", "pane": "30m"}]


def settings_for(
    bootstrap: str,
    topic: str,
    models: int = 1,
    features: dict[str, str] | None = None,
    windows: list[dict[str, str]] | None = None,
    client: str = "kafka-python",
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
                "client": client,
            },
            "models": [
                {
                    "name": f"m{i}",
                    "reference": {"bootstrap_events": 1000},
                    "features": feats,
                    "windows": windows or WINDOWS_2,
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


def bench_evaluation(
    rng: np.random.Generator, n_features: int, windows: list[dict[str, str]], events: int = 5000
) -> float:
    """Median ms of 30 evaluations of 10 models, ``n_features`` each (4/5 numeric)."""
    n_num = n_features * 4 // 5
    feats = {f"n{i}": "numeric" for i in range(n_num)}
    feats |= {f"c{i}": "categorical" for i in range(n_features - n_num)}
    settings = settings_for("127.0.0.1:1", "x", models=10, features=feats, windows=windows)
    states = reference_for(settings, rng)
    t0 = time.time() - 200  # inside every window
    cats = {f: "beta" for f, k in feats.items() if k != "numeric"}
    for state in states.values():
        num = rng.normal(103, 15, (events, n_num)).tolist()
        preds = [
            Prediction(
                str(i),
                state.cfg.name,
                "v",
                t0 + i * 0.01,
                dict(zip(feats, row, strict=False)) | cats,
                1,
                0.5,
            )
            for i, row in enumerate(num)
        ]
        state.add_predictions(preds)
    times = []
    for _ in range(30):
        start = time.perf_counter()
        evaluate(states.values(), time.time)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_rss(rng: np.random.Generator, n_total: int = 10_000_000) -> tuple[float, float]:
    settings = settings_for("127.0.0.1:1", "preds")
    pipeline = Pipeline(
        settings,
        reference_for(settings, rng),
        OpsMetrics(__import__("prometheus_client").CollectorRegistry()),
    )
    batch = make_events(2000, 0.0, rng)
    proc = psutil.Process()
    rss_1m = 0.0
    # In the past: n_total events span n_total / 100 s of event time (10M: 100,000 s).
    t0, sent = time.time() - n_total / 100 - 10_000, 0
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


BACKLOG_TOPIC = "bench-backlog"
_sent = [0]  # events in the backlog topic so far (each child reads them all, then live)


def run_backlog(
    bootstrap: str, client: str, args: argparse.Namespace, rng: np.random.Generator
) -> dict[str, float]:
    """Peak RSS consuming a backlog vs the steady state, in a fresh interpreter."""
    if _sent[0] == 0:
        create_topics(bootstrap, {BACKLOG_TOPIC: 1, BACKLOG_TOPIC + "-labels": 1})
        chunk, t0 = 100_000, time.time() - args.backlog * 0.001 - 120
        for i in range(0, args.backlog, chunk):
            load_topic(
                bootstrap,
                BACKLOG_TOPIC,
                make_events(min(chunk, args.backlog - i), t0 + i * 0.001, rng),
            )
        _sent[0] = args.backlog
    cmd = [sys.executable, __file__, "--rss-child", client, bootstrap, BACKLOG_TOPIC]
    cmd += ["--backlog", str(_sent[0]), "--live", str(args.live)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != "caught-up":
            raise RuntimeError(f"backlog child: {line!r}")
        n_live = int(5000 * args.live)
        produce_live(
            bootstrap, BACKLOG_TOPIC, make_events(n_live, time.time() - n_live * 0.001, rng), 5000
        )
        _sent[0] += n_live
        out = child.stdout.read()
    return orjson.loads(out.strip().splitlines()[-1])


def ratio(name: str, num: list[float], den: list[float], target: float) -> None:
    """The median of per-run ratios (the stages of a run share the broker's state) and the gap."""
    r = statistics.median(a / b for a, b in zip(num, den, strict=True))
    gap = "met" if r >= target else f"MISSED by {target - r:.3f} ({r / target:.0%} of target)"
    print(f"  {name:<44} {r:6.3f}  (target >= {target:g}; {gap})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--only-rss", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rss-events", type=int, default=10_000_000, help="RSS from 1M to this")
    ap.add_argument("--backlog", type=int, default=1_000_000, help="0: skip the backlog RSS")
    ap.add_argument("--live", type=float, default=10.0, help="steady phase, s (at 5k events/s)")
    ap.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)  # client bootstrap topic
    args = ap.parse_args()
    if args.rss_child:  # a fresh interpreter per client: nothing earlier inflates its RSS
        client, bootstrap, topic = args.rss_child
        s = settings_for(bootstrap, topic, client=client)
        backlog_rss(s, reference_for(s, np.random.default_rng(1)), args.backlog, args.live)
        return
    if args.only_rss:  # run in a fresh interpreter so earlier phases do not inflate RSS
        rss1, rss_n = bench_rss(np.random.default_rng(0), args.rss_events)
        print(
            f"RSS after 1M events: {rss1:.0f} MiB; after {args.rss_events / 1e6:g}M: "
            f"{rss_n:.0f} MiB; change {100 * (rss_n - rss1) / rss1:+.1f}% (target within ±10%)"
        )
        return
    rng = np.random.default_rng(0)
    import kafka.record.util as ku

    print(f"crc32c C extension: {'yes' if ku.crc32c_c is not None else 'NO (7x slower)'}")
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    with EmbeddedBroker() as broker:
        topic = "bench-preds"
        create_topics(broker.bootstrap, {topic: 1, topic + "-labels": 1})
        events = make_events(args.events, time.time() - 300, rng)
        print(f"event size: median {statistics.median(len(e) for e in events):.0f} bytes")
        load_topic(broker.bootstrap, topic, events)
        del events
        kp = settings_for(broker.bootstrap, topic)
        cf = settings_for(broker.bootstrap, topic, client="confluent")
        k = kp.kafka
        print(
            f"subscription: {k.predictions_topic} + {k.labels_topic}, no group, earliest; "
            f"max_poll_records={k.max_poll_records} fetch_max_wait_ms={k.fetch_max_wait_ms} "
            f"poll_timeout={k.poll_timeout}s (confluent: fetch.queue.backoff.ms="
            f"{FETCH_QUEUE_BACKOFF_MS})"
        )
        stages: dict[str, tuple[str, Callable[[], float]]] = {
            "bare_kp": ("bare kafka-python + orjson", lambda: bare_kafka_python(k, args.events)),
            "bare_cf": ("bare confluent-kafka + orjson", lambda: bare_confluent(k, args.events)),
            "e2e_kp": (
                "end to end, kafka.client: kafka-python",
                lambda: end_to_end(kp, reference_for(kp, np.random.default_rng(1)), args.events),
            ),
            "e2e_cf": (
                "end to end, kafka.client: confluent",
                lambda: end_to_end(cf, reference_for(cf, np.random.default_rng(1)), args.events),
            ),
        }
        runs: dict[str, list[float]] = {key: [] for key in stages}
        for _ in range(args.repeat):
            for key, (_, fn) in stages.items():
                gc.collect()
                runs[key].append(fn())
        if args.backlog:
            rss = [
                run_backlog(broker.bootstrap, client, args, rng)
                for client in ("kafka-python", "confluent")
            ]
    print(f"{args.events} events, {args.repeat} runs (events/s, median):")
    for key, (name, _) in stages.items():
        print(
            f"  {name:<44} {statistics.median(runs[key]):>10,.0f}  "
            f"runs={[round(x) for x in runs[key]]}"
        )
    print("ratios (median of per-run ratios):")
    ratio("e2e / bare, kafka-python client", runs["e2e_kp"], runs["bare_kp"], 0.8)
    ratio("e2e / bare, confluent client", runs["e2e_cf"], runs["bare_cf"], 0.5)
    ratio("e2e confluent / e2e kafka-python", runs["e2e_cf"], runs["e2e_kp"], 4.0)
    for label, n_features, windows, target in (
        ("10 models x 50 features x 3 windows", 50, WINDOWS_3, "<= 20 ms, issue 12"),
        ("10 models x 20 features x 2 windows", 20, WINDOWS_2, "<= 50 ms, issue 2"),
    ):
        ms = bench_evaluation(rng, n_features, windows)
        print(f"evaluation, {label}: {ms:.1f} ms median of 30 (target {target})")
    for client, r in zip(("kafka-python", "confluent"), rss if args.backlog else (), strict=False):
        x = r["catchup_peak"] / r["steady"]
        print(
            f"backlog RSS, {client}: {args.backlog} events: peak {r['catchup_peak']:.0f} MiB while "
            f"catching up, steady {r['steady']:.0f} MiB (median, {r['live_events']} live events; "
            f"{r['before']:.0f} before): {x:.2f}x (target <= 1.5x; "
            f"{'met' if x <= 1.5 else f'MISSED by {x - 1.5:.2f}x'})"
        )
    if not args.skip_rss:
        rss_cmd = [sys.executable, __file__, "--only-rss", "--rss-events", str(args.rss_events)]
        subprocess.run(rss_cmd, check=True)


if __name__ == "__main__":
    main()
