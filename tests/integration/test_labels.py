"""Labels end to end against the real broker (issue 3): predictions on one topic, labels on the
other with random delays, some labels before their predictions, duplicates of both, orphans.
The exported accuracy equals the direct computation and every counter matches what was sent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn import metrics as skm  # type: ignore[import-untyped]

from monitor.devkit.broker import EmbeddedBroker
from monitor.reference.build import build_reference
from tests.support.helpers import RunningApp, Topics, make_config
from tests.support.produce import produce

pytestmark = pytest.mark.integration

LABEL_WAIT = 5.0  # event-time seconds a label waits for its prediction


def count(app: RunningApp, name: str, **labels: str) -> float:
    return app.value(name, **labels) or 0.0


def test_labels_join_and_every_counter_matches_what_was_sent(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path, run_app: Any
) -> None:
    rng = np.random.default_rng(2026)
    ref_path = tmp_path / "fraud.json"
    build_reference(
        "fraud", "binary_classification", {"x": rng.normal(0, 1, 5000).tolist()}, {"x": "numeric"}
    ).save(ref_path)
    model = {
        "name": "fraud",
        "task": "binary_classification",
        "reference": str(ref_path),
        "windows": [{"name": "10m", "length": "10m", "pane": "10s"}],
        "allowed_lateness": "10m",
        "label_ttl": "1h",
        "label_wait": f"{LABEL_WAIT:g}s",
        "features": {"x": "numeric"},
        "policy": {"min_samples": 10},
    }
    app = run_app(make_config(broker, topics, [model], tmp_path))
    base = time.time() - 600.0

    def predictions(prefix: str, n: int, t0: float) -> list[dict[str, Any]]:
        score = rng.beta(2.0, 2.0, n)
        return [
            {
                "id": f"{prefix}{i}",
                "model": "fraud",
                "timestamp": t0 + 0.25 * i,
                "features": {"x": float(rng.normal())},
                "prediction": int(score[i] >= 0.5),
                "score": float(score[i]),
            }
            for i in range(n)
        ]

    def labels_for(preds: list[dict[str, Any]], min_delay: float) -> list[dict[str, Any]]:
        """Ground truth drawn from the score (calibrated), after a random event-time delay."""
        return [
            {
                "id": p["id"],
                "model": "fraud",
                "label": int(rng.random() < p["score"]),
                "timestamp": p["timestamp"] + min_delay + float(rng.exponential(20.0)),
            }
            for p in preds
        ]

    def copies(events: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
        return [events[i] for i in rng.choice(len(events), k, replace=False)]

    def shuffled(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [events[i] for i in rng.permutation(len(events))]

    sent = {"predictions": 0, "labels": 0}
    dups = {"predictions": 0, "labels": 0}

    def send(stream: str, events: list[dict[str, Any]], duplicates: int = 0) -> None:
        extra = copies(events, duplicates)
        batch = shuffled(events + extra)
        # keyed by id: a prediction and its label share a partition number (co-partitioned)
        keys = [e["id"].encode() for e in batch]
        produce(broker.bootstrap, getattr(topics, stream), [orjson.dumps(e) for e in batch], keys)
        sent[stream] += len(events) + duplicates
        dups[stream] += duplicates
        app.wait_for(
            lambda: (
                count(app, "modelmon_events_total", model="fraud", stream=stream) == sent[stream]
            ),
            what=f"{sent[stream]} {stream} consumed",
        )

    # 1. The first predictions (event time base .. base+100 s), some sent twice.
    first = predictions("a", 400, base)
    send("predictions", first, duplicates=20)

    # 2. Labels for most of them; labels for predictions still to come (they wait); labels for
    #    ids never predicted, old enough in event time to be given up on at the next tick.
    second = predictions("b", 300, base + 100.0)
    first_labels = labels_for(first[:300], min_delay=0.0)
    # Early labels are dated after every second-round prediction, so that no maintenance tick
    # can give up on them while those predictions are still being consumed.
    early_labels = labels_for(second[:150], min_delay=80.0)
    orphans = [
        {"id": f"ghost{i}", "model": "fraud", "label": 1, "timestamp": base + 10.0 + i}
        for i in range(25)
    ]
    send("labels", first_labels, duplicates=30)
    send("labels", orphans)  # sent once: a copy after the tick would be a second orphan
    send("labels", early_labels, duplicates=10)
    app.wait_for(
        lambda: count(app, "modelmon_orphan_labels_total", model="fraud") == len(orphans),
        what="orphans counted",
    )

    # 3. The predictions the early labels were waiting for, then late labels for some others.
    send("predictions", second, duplicates=15)
    late_labels = labels_for(second[150:250], min_delay=0.0)
    send("labels", late_labels, duplicates=10)

    # Direct computation on the joined pairs.
    truth = {lab["id"]: lab["label"] for lab in first_labels + early_labels + late_labels}
    pairs = [
        (truth[p["id"]], p["prediction"], p["score"]) for p in first + second if p["id"] in truth
    ]
    y_true = np.array([t for t, _, _ in pairs])
    y_pred = np.array([p for _, p, _ in pairs])
    score32 = np.array([s for _, _, s in pairs], dtype=np.float32).astype(np.float64)
    n_predicted = len(first) + len(second)
    pending = n_predicted - len(pairs)

    app.wait_for(
        lambda: app.value("modelmon_pending_predictions", model="fraud") == pending,
        timeout=15.0,
        what="pending gauge refreshed",
    )
    app.app.evaluate_now()
    m = app.metrics()

    def metric(name: str, **labels: str) -> float | None:
        return m.get((name, tuple(sorted(labels.items()))))

    w = {"model": "fraud", "window": "10m"}
    assert metric("modelmon_accuracy_ratio", **w) == pytest.approx(
        skm.accuracy_score(y_true, y_pred), abs=1e-12
    )
    assert metric("modelmon_precision_ratio", **w) == pytest.approx(
        skm.precision_score(y_true, y_pred), abs=1e-12
    )
    assert metric("modelmon_log_loss", **w) == pytest.approx(
        skm.log_loss(y_true, score32, labels=[0, 1]), abs=1e-9
    )
    assert metric("modelmon_label_coverage_ratio", **w) == pytest.approx(
        len(pairs) / n_predicted, abs=1e-12
    )
    assert metric("modelmon_window_labels", **w) == len(pairs) == 550
    assert metric("modelmon_window_predictions", **w) == n_predicted
    assert metric("modelmon_pending_predictions", model="fraud") == pending == 150
    assert metric("modelmon_events_total", model="fraud", stream="labels") == sent["labels"]
    assert (
        metric("modelmon_events_total", model="fraud", stream="predictions")
        == (sent["predictions"])
    )
    for stream in ("predictions", "labels"):
        assert (
            metric("modelmon_duplicate_events_total", model="fraud", stream=stream)
            == (dups[stream])
        ), stream
    assert metric("modelmon_orphan_labels_total", model="fraud") == len(orphans)
    # Nothing else happened to any label or prediction.
    for name in (
        "modelmon_evicted_predictions_total",
        "modelmon_unlabelled_predictions_total",
        "modelmon_unusable_labels_total",
    ):
        assert not metric(name, model="fraud"), name
    for stream in ("predictions", "labels"):
        assert not metric("modelmon_late_events_total", model="fraud", stream=stream), stream
