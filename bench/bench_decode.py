"""Decoding and extraction micro-benchmark (run on demand, never in the test suite):

    .venv/bin/python bench/bench_decode.py [--events 100000] [--repeat 5]

From memory, no broker: ``--events`` records of the ``bench_core`` event shape (10 features,
~300 bytes) through each stage of the daemon's own path, events/s, median of ``--repeat`` runs:

1. parse only: ``orjson.loads`` against the typed envelope and the typed features of a
   configured model (:mod:`monitor.ingest.fast_decode`);
2. ``Pipeline.decode``: bytes → columns grouped by model and partition (what the consume loop
   runs);
3. extraction: decoded columns → every feature's cells (:func:`monitor.state.layout.columns`);
4. id keys: xxh3-64 (the join's key) against blake2b-64 (the key before issue 12);
5. decode + apply (``Pipeline.process`` into a fresh state: dedupe, join, windows), also with a
   key of the producer's own in every event, and the labels of every prediction.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import prometheus_client
from xxhash import xxh3_64_intdigest

from monitor.events import RawRecord
from monitor.ingest.route import Pipeline
from monitor.serve.ops_metrics import OpsMetrics
from monitor.state.id_hash import blake2b_keys, id_keys
from monitor.state.layout import columns

try:  # a sibling script, imported by path whether run as a script or not
    from bench_core import make_events, reference_for, settings_for  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_core import make_events, reference_for, settings_for


def rate(n: int, fn: Callable[[], Any], repeat: int) -> tuple[float, list[float]]:
    """Median events/s of ``repeat`` timed calls of ``fn`` (each over ``n`` events)."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(n / (time.perf_counter() - start))
    return statistics.median(runs), runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, repeat = args.events, args.repeat
    rng = np.random.default_rng(0)
    values = make_events(n, time.time() - 200, rng)
    records = [RawRecord("preds", 0, i, time.time(), None, v) for i, v in enumerate(values)]
    settings = settings_for("127.0.0.1:1", "preds")

    def pipeline() -> Pipeline:
        registry = prometheus_client.CollectorRegistry()
        return Pipeline(
            settings, reference_for(settings, np.random.default_rng(1)), OpsMetrics(registry)
        )

    def show(name: str, result: tuple[float, list[float]]) -> float:
        print(f"{name:<44} {result[0]:>12,.0f} events/s  runs={[round(x) for x in result[1]]}")
        return result[0]

    print(f"{n} events, median {statistics.median(map(len, values)):.0f} bytes, {repeat} runs")
    show("parse: orjson.loads", rate(n, lambda: [orjson.loads(v) for v in values], repeat))
    from monitor.ingest.fast_decode import TypedPredictions, fast_paths

    paths = fast_paths(settings.fields)
    assert paths is not None
    typed = paths[0]
    show("parse: typed envelope (msgspec)", rate(n, lambda: [typed(v) for v in values], repeat))
    features = TypedPredictions({m.name: m.features for m in settings.models}, typed.keys)
    show("parse: typed features (msgspec)", rate(n, lambda: [features(v) for v in values], repeat))
    pipe = pipeline()
    decoded = pipe.decode(records)
    assert not decoded.dead
    show("Pipeline.decode (decode + group)", rate(n, lambda: pipe.decode(records), repeat))
    state = pipe.states["m0"]
    preds = decoded.predictions["m0", 0]
    show(
        "extraction: layout.columns",
        rate(n, lambda: columns(state.cfg, state.slots, preds), repeat),
    )
    ids = preds.ids
    show("id keys: xxh3-64 (id_keys)", rate(n, lambda: id_keys(ids), repeat))
    show(
        "id keys: blake2b-64 (blake2b_keys, before issue 12)",
        rate(n, lambda: blake2b_keys(ids), repeat),
    )
    show(
        "id keys: xxh3-64 into np.array(list)",
        rate(n, lambda: np.array([xxh3_64_intdigest(i.encode()) for i in ids], np.uint64), repeat),
    )
    show(
        "decode + extract (decode, columns)",
        rate(
            n,
            lambda: columns(state.cfg, state.slots, pipe.decode(records).predictions["m0", 0]),
            repeat,
        ),
    )
    fresh = [pipeline() for _ in range(repeat)]
    show("decode + apply (Pipeline.process)", rate(n, lambda: fresh.pop().process(records), repeat))
    # Each event with a key of the producer's own (decoded again, skipping it, after orjson).
    own = [r._replace(value=r.value[:-1] + b',"request_id":"r-1"}') for r in records]
    fresh = [pipeline() for _ in range(repeat)]
    show(
        "decode + apply, a key of the producer's own",
        rate(n, lambda: fresh.pop().process(own), repeat),
    )
    # Every prediction's label, after the predictions (the steady state of the join).
    labels = [
        RawRecord(
            "preds-labels",
            0,
            i,
            time.time(),
            None,
            b'{"id":"%s","model":"m0","label":%d}' % (p.encode(), i % 2),
        )
        for i, p in enumerate(ids)
    ]
    fresh = [pipeline() for _ in range(repeat)]
    for p in fresh:
        p.process(records)
    show(
        "labels: decode + join (Pipeline.process)",
        rate(n, lambda: fresh.pop().process(labels), repeat),
    )


if __name__ == "__main__":
    main()
