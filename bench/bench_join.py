"""Label-join benchmark (issue 3; run on demand, never in the test suite):

    .venv/bin/python bench/bench_join.py [--pending 1000000] [--labels 200000] [--repeat 3]

Every repetition runs in a fresh interpreter, so that one run's freed memory cannot flatter the
next one's RSS. One binary model; predictions and labels in poll-sized batches of 2,000.
1. RSS per pending prediction: process RSS after ``--pending`` predictions went through
   ``LabelJoin.add_predictions`` (insert buffer merges included) minus RSS before, divided by
   the count (target ≤ 150 B); beside it the bytes the store's columns hold (``nbytes``).
2. Join throughput with that many pending, labels/s: ``LabelJoin.add_labels`` on hashed ids
   (the join alone), then ``PerformanceState.add_labels`` on ``Label`` events (id hashing,
   encoding and the window accumulators included), each label finding its prediction.
3. In-process pipeline (decode + windows + join, no broker): events/s with a label for every
   prediction, as a ratio to predictions alone (the issue's target for end to end is ≥ 0.8),
   and the predictions' own rate in both runs (half the events with labels on are labels).
Prints the median of the repetitions.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import psutil
from prometheus_client import CollectorRegistry

from monitor.events import Label, Prediction, RawRecord
from monitor.ingest.route import Pipeline
from monitor.reference.build import build_reference
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import ModelSettings, Settings
from monitor.settings_loader import load_settings
from monitor.state.join import LabelJoin, id_keys
from monitor.state.model_state import ModelState
from monitor.state.performance_state import PerformanceState

BATCH = 2000  # kafka.max_poll_records default
T0 = 1.7e9  # in the past: the pipeline refuses event times ahead of the wall clock
FEATURES = {f"f{i}": "numeric" for i in range(8)} | {"c0": "categorical", "c1": "categorical"}


def model_settings(pending: int) -> ModelSettings:
    return ModelSettings(
        name="m0",
        reference=Path("unused.json"),
        features={"x": "numeric"},
        max_pending=pending,
    )


def bench_store(pending: int, n_labels: int, rng: np.random.Generator) -> dict[str, float]:
    """RSS per pending prediction and labels/s of the join alone."""
    keys = id_keys(f"id-{i:09d}" for i in range(pending))
    ts = T0 + np.arange(pending) * 0.001
    score = rng.random(pending).astype(np.float32).reshape(-1, 1)
    pred = (score[:, 0] >= 0.5).astype(np.float64)
    want = rng.choice(pending, n_labels, replace=False)
    label_keys, y = keys[want], (rng.random(n_labels) < 0.5).astype(np.float64)
    label_ts = ts[want] + 60.0
    proc = psutil.Process()
    gc.collect()
    before = proc.memory_info().rss
    join = LabelJoin(ttl=86400.0, label_wait=600.0, max_pending=pending, proba_width=1)
    start = time.perf_counter()
    for lo in range(0, pending, BATCH):
        hi = lo + BATCH
        join.add_predictions(keys[lo:hi], ts[lo:hi], pred[lo:hi], score[lo:hi])
    insert_s = time.perf_counter() - start
    gc.collect()
    rss = proc.memory_info().rss - before
    assert join.pending() == pending
    start = time.perf_counter()
    joined = 0
    for lo in range(0, n_labels, BATCH):
        hi = lo + BATCH
        joined += join.add_labels(label_keys[lo:hi], y[lo:hi], label_ts[lo:hi])[1].joined
    elapsed = time.perf_counter() - start
    assert joined == n_labels
    return {
        "rss_bytes_per_pending": rss / pending,
        "column_bytes_per_pending": join.nbytes() / pending,
        "inserts_per_s": pending / insert_s,
        "join_labels_per_s": n_labels / elapsed,
    }


def bench_state(pending: int, n_labels: int, rng: np.random.Generator) -> dict[str, float]:
    """Labels/s through PerformanceState: hashing, encoding, join and window accumulators."""
    perf = PerformanceState(model_settings(pending))
    newest = T0
    for lo in range(0, pending, BATCH):
        n = min(BATCH, pending - lo)
        scores = rng.random(n)
        ts = T0 + (lo + np.arange(n)) * 0.001
        preds = [
            Prediction(f"id-{lo + i:09d}", "m0", None, float(ts[i]), {}, None, float(scores[i]))
            for i in range(n)
        ]
        newest = float(ts[-1])
        keys, fresh = perf.unseen(preds)
        kept = [q for q, ok in zip(preds, fresh.tolist(), strict=True) if ok]
        perf.add_predictions(perf.encode(kept), keys[fresh], ts[fresh], newest)
    want = rng.choice(pending, n_labels, replace=False)
    labels = [
        Label(f"id-{i:09d}", "m0", int(rng.random() < 0.5), T0 + i * 0.001 + 60.0)
        for i in want.tolist()
    ]
    start = time.perf_counter()
    joined = 0
    for lo in range(0, n_labels, BATCH):
        result = perf.add_labels(labels[lo : lo + BATCH])
        joined += result.counts.joined
    elapsed = time.perf_counter() - start
    assert joined == n_labels
    return {"state_labels_per_s": n_labels / elapsed}


def pipeline_settings() -> Settings:
    return load_settings(
        None,
        overrides={
            "kafka": {"predictions_topic": "p", "labels_topic": "l"},
            "models": [
                {
                    "name": "m0",
                    "reference": "unused.json",
                    "features": FEATURES,
                    "windows": [
                        {"name": "5m", "length": "5m", "pane": "10s"},
                        {"name": "1h", "length": "1h", "pane": "1m"},
                    ],
                }
            ],
        },
    )


def bench_pipeline(n: int, rng: np.random.Generator) -> dict[str, float]:
    """Events/s of Pipeline.process: predictions alone, then with a label for each."""
    settings = pipeline_settings()
    cols: dict[str, list[object]] = {
        f: (rng.normal(100, 15, 20_000).tolist() if k == "numeric" else ["a", "b"] * 10_000)
        for f, k in FEATURES.items()
    }
    cols["score"] = rng.random(20_000).tolist()
    reference = build_reference("m0", "binary_classification", cols, FEATURES)
    num = rng.normal(100, 15, (n, 8)).round(5)
    scores = rng.random(n).round(4)
    preds, labels = [], []
    for i in range(n):
        feats: dict[str, object] = {f"f{j}": float(num[i, j]) for j in range(8)}
        feats |= {"c0": "a", "c1": "b"}
        t = T0 + i * 0.01
        event = {"id": f"e{i}", "model": "m0", "timestamp": t, "features": feats}
        event |= {"prediction": int(scores[i] >= 0.5), "score": float(scores[i])}
        preds.append(RawRecord("p", 0, i, t, None, orjson.dumps(event)))
        label = {"id": f"e{i}", "model": "m0", "label": int(rng.random() < 0.5), "timestamp": t}
        labels.append(RawRecord("l", 0, i, t + 30, None, orjson.dumps(label)))
    # Labels trail their predictions by 5,000 events (a delay), in mixed poll batches.
    lag = 5000
    mixed: list[RawRecord] = []
    for lo in range(0, n, BATCH // 2):
        mixed += preds[lo : lo + BATCH // 2]
        mixed += labels[max(0, lo - lag) : max(0, lo - lag + BATCH // 2)]
    mixed += labels[max(0, n - lag) :]

    def run(records: list[RawRecord]) -> float:
        states = {"m0": ModelState(settings.models[0], reference)}
        pipeline = Pipeline(settings, states, OpsMetrics(CollectorRegistry()))
        start = time.perf_counter()
        for lo in range(0, len(records), BATCH):
            pipeline.process(records[lo : lo + BATCH])
        elapsed = time.perf_counter() - start
        assert states["m0"].perf.join.pending() == (n if records is preds else 0)
        return len(records) / elapsed

    alone, with_labels = run(preds), run(mixed)
    return {
        "pipeline_predictions_only_events_per_s": alone,
        "pipeline_with_labels_events_per_s": with_labels,
        "pipeline_labels_ratio": with_labels / alone,
        # Half of the events with labels on are labels: the predictions' own rate, compared.
        "pipeline_prediction_rate_ratio": with_labels * n / len(mixed) / alone,
    }


def child(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    out = bench_store(args.pending, args.labels, rng)
    gc.collect()
    out |= bench_state(args.pending, args.labels, rng)
    gc.collect()
    out |= bench_pipeline(args.pipeline_events, rng)
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=200_000)
    parser.add_argument("--pipeline-events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    runs = []
    for r in range(args.repeat):
        cmd = [sys.executable, __file__, "--child", "--seed", str(args.seed + r)]
        cmd += ["--pending", str(args.pending), "--labels", str(args.labels)]
        cmd += ["--pipeline-events", str(args.pipeline_events)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"run {r + 1}: {runs[-1]}", file=sys.stderr)
    med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
    print(f"pending predictions: {args.pending:,}; labels joined per run: {args.labels:,}")
    print(f"median of {args.repeat} runs (each in a fresh interpreter):")
    print(f"  RSS per pending prediction       {med['rss_bytes_per_pending']:10.1f} B (≤ 150)")
    print(f"  store columns per pending        {med['column_bytes_per_pending']:10.1f} B")
    print(f"  inserts (LabelJoin)              {med['inserts_per_s']:10,.0f} /s")
    print(f"  join, hashed ids (LabelJoin)     {med['join_labels_per_s']:10,.0f} labels/s")
    print(f"  join + accumulators (state)      {med['state_labels_per_s']:10,.0f} labels/s")
    print(
        "  pipeline, predictions only       "
        f"{med['pipeline_predictions_only_events_per_s']:10,.0f} events/s"
    )
    print(
        "  pipeline, + a label each         "
        f"{med['pipeline_with_labels_events_per_s']:10,.0f} events/s "
        f"(ratio {med['pipeline_labels_ratio']:.2f}, target ≥ 0.8)"
    )
    print(
        "  predictions/s with labels on, as a ratio to predictions only: "
        f"{med['pipeline_prediction_rate_ratio']:.2f}"
    )


if __name__ == "__main__":
    main()
