"""A 50-minute backlog over 6 partitions, consumed from scratch by a fresh daemon (a deploy).

The partitions are uneven (one holds 8x the records of the others), so the consumer reads them
minutes of event time apart: the small ones reach "now" while the big one is still in the past.
The oracle is computed from the produced records alone: which predictions fall in each window
(pane arithmetic on their times) and which of them have labels.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.devkit.broker import EmbeddedBroker
from monitor.devkit.synthetic import Traffic, features_of
from monitor.reference.build import build_reference
from tests.support.helpers import CLIENTS, RunningApp, fresh_topics, make_config
from tests.support.produce import produce

pytestmark = pytest.mark.integration

SIZES = (1600, 200, 200, 200, 200, 200)  # predictions per partition
BACKLOG = 50 * 60.0
WINDOWS = (("5m", 300.0, 10.0), ("1h", 3600.0, 60.0))


def reference(tmp_path: Path) -> Path:
    rows = list(Traffic(seed=11).training_rows("fraud", 5000))
    columns = {k: [r.get(k) for r in rows] for k in rows[0]}
    path = tmp_path / "fraud.json"
    build_reference("fraud", "binary_classification", columns, features_of("fraud")).save(path)
    return path


def model(ref: Path) -> dict[str, Any]:
    return {
        "name": "fraud",
        "reference": str(ref),
        "windows": [{"name": n, "length": length, "pane": pane} for n, length, pane in WINDOWS],
        "allowed_lateness": "2m",  # far below the skew between partitions while catching up
        "features": features_of("fraud"),
        "policy": {"min_samples": 50, "min_labels": 10},
    }


Records = list[tuple[int, dict[str, Any]]]


def backlog(now: float) -> tuple[Records, Records]:
    """(partition, event) for predictions and labels, each partition in event-time order."""
    rng = np.random.default_rng(5)
    preds: Records = []
    labels: Records = []
    for part, n in enumerate(SIZES):
        times = np.sort(rng.uniform(now - BACKLOG, now - 10.0, n))
        events = Traffic(seed=20 + part).events("fraud", n, now - BACKLOG, 1.0)
        for i, (e, t) in enumerate(zip(events, times, strict=True)):
            e = {**e, "id": f"p{part}-{i}", "timestamp": float(t)}
            preds.append((part, e))
            if i % 2 == 0:
                label = {
                    "id": e["id"],
                    "model": "fraud",
                    "label": i % 3 == 0,
                    "timestamp": float(t) + 5,
                }
                labels.append((part, label))
    return preds, labels


@pytest.mark.parametrize("client", CLIENTS)
def test_a_backlog_over_uneven_partitions_gives_the_in_order_windows(
    broker: EmbeddedBroker, tmp_path: Path, run_app: Any, client: str
) -> None:
    topics = fresh_topics(broker.bootstrap, partitions=6)
    now = time.time()
    preds, labels = backlog(now)
    for topic, records in ((topics.predictions, preds), (topics.labels, labels)):
        values = [orjson.dumps(e) for _, e in records]
        keys = [e["id"].encode() for _, e in records]
        produce(broker.bootstrap, topic, values, keys, [part for part, _ in records])

    settings = make_config(broker, topics, [model(reference(tmp_path))], tmp_path, client)
    app: RunningApp = run_app(settings)
    n_preds, n_labels = len(preds), len(labels)
    app.wait_for(
        lambda: (
            (app.value("modelmon_events_total", model="fraud", stream="predictions") or 0)
            == n_preds
            and (app.value("modelmon_events_total", model="fraud", stream="labels") or 0)
            == n_labels
        ),
        timeout=90,
        what="every prediction and label consumed",
    )
    app.wait_for(lambda: app.get("/readyz")[0] == 200, timeout=30, what="ready")
    app.app.evaluate_now()

    # The oracle: windows end at the pane of the newest prediction time.
    times = np.array([e["timestamp"] for _, e in preds])
    labelled = {lab["id"] for _, lab in labels}
    label_times = np.array([e["timestamp"] for _, e in preds if e["id"] in labelled])
    for name, length, pane in WINDOWS:
        end = (math.floor(times.max() / pane) + 1) * pane
        start = end - length
        expected_preds = int(((times >= start) & (times < end)).sum())
        expected_labels = int(((label_times >= start) & (label_times < end)).sum())
        got = app.value("modelmon_window_predictions", model="fraud", window=name)
        assert got == expected_preds, (name, got, expected_preds)
        got_labels = app.value("modelmon_window_labels", model="fraud", window=name)
        assert got_labels == expected_labels, (name, got_labels, expected_labels)
    assert app.value("modelmon_late_events_total", model="fraud", stream="predictions") == 0
    assert app.value("modelmon_late_events_total", model="fraud", stream="labels") == 0
    assert app.value("modelmon_orphan_labels_total", model="fraud") == 0
    # The backlog is shorter than the 1h window: every prediction is in it, none outside.
    assert app.value("modelmon_out_of_window_events_total", model="fraud") == 0
    assert app.value("modelmon_window_predictions", model="fraud", window="1h") == n_preds
