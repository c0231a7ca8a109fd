"""The oracle of the fault-injection suite: a reproducible stream, and what the daemon must
report after consuming it, computed from the produced records and never from the daemon.

Window counts come from pane arithmetic on the events' times; statistics from feeding the same
decoded events, in produced order, to a fresh in-process
:class:`~monitor.state.model_state.ModelState` and evaluating it with
:func:`monitor.state.evaluate.evaluate`.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.events import Label, Prediction
from monitor.ingest.decode import Decoder
from monitor.reference.build import build_reference
from monitor.reference.profile import ReferenceProfile
from monitor.settings import Settings
from monitor.snapshot import Snapshot
from monitor.state.evaluate import evaluate
from monitor.state.model_state import ModelState

MODEL = "churn"
FEATURES = {"x": "numeric", "c": "categorical"}
CATEGORIES = ("a", "b", "c", "d")
#: Fixed event-time origin (2026-10-24, midnight UTC: a multiple of every pane), so a seed gives
#: the same stream on every run; in the past, as event times ahead of the wall clock by more
#: than ``time.max_future_skew`` are dead letters.
T0 = 1_792_800_000.0
SPACING = 0.05  # event-time seconds between two predictions
LABEL_LAG = 10  # a prediction's label is produced this many predictions after it
#: Poison pills, by the reason the daemon must give in the dead-letter headers.
POISON = (
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'{"model": "churn", "prediction": 1, "label": 1}', "missing_field"),
    (b'{"id": ["p1"], "model": "churn", "prediction": 1, "label": 1}', "wrong_type"),
    (b'{"id": "t", "model": "churn", "timestamp": "yesterday", "label": 1}', "bad_timestamp"),
    (b"", "empty"),
)


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes


def traffic(
    predictions_topic: str, labels_topic: str, seed: int, poison_every: int = 0
) -> Iterator[Record]:
    """An endless, reproducible stream: prediction ``i`` at event time ``T0 + i * SPACING``,
    the label of four predictions in five ``LABEL_LAG`` predictions later (keyed by id, so
    co-partitioned), and with ``poison_every`` a poison pill after every that many
    predictions, alternating between the two topics."""
    rng = np.random.default_rng(seed)
    labels: deque[tuple[int, bytes]] = deque()
    for i in range(sys.maxsize):
        score = round(float(rng.beta(2.0, 5.0)), 6)
        pid = f"p{i}"
        event = {
            "id": pid,
            "model": MODEL,
            "version": "v1",
            "timestamp": T0 + i * SPACING,
            "features": {
                "x": round(float(rng.normal(0.3, 1.0)), 6),
                "c": str(rng.choice(CATEGORIES, p=[0.4, 0.3, 0.2, 0.1])),
            },
            "prediction": int(score >= 0.5),
            "score": score,
        }
        truth = int(rng.random() < score)
        yield Record(predictions_topic, pid.encode(), orjson.dumps(event))
        if i % 5:
            label = {"id": pid, "model": MODEL, "label": truth, "timestamp": T0 + i * SPACING + 1}
            labels.append((i, orjson.dumps(label)))
        if labels and labels[0][0] <= i - LABEL_LAG:
            j, value = labels.popleft()
            yield Record(labels_topic, f"p{j}".encode(), value)
        if poison_every and i % poison_every == poison_every - 1:
            n = i // poison_every
            value, _ = POISON[n % len(POISON)]
            topic = (predictions_topic, labels_topic)[n % 2]
            yield Record(topic, f"poison{n}".encode(), value)


def save_reference(path: Path, seed: int = 1, rows: int = 20_000) -> ReferenceProfile:
    """The training distribution: ``x`` centred at 0 (the live stream drifts to 0.3)."""
    rng = np.random.default_rng(seed)
    score = rng.beta(2.0, 5.0, rows)
    columns: dict[str, list[object]] = {
        "x": rng.normal(0.0, 1.0, rows).tolist(),
        "c": [str(c) for c in rng.choice(CATEGORIES, rows, p=[0.35, 0.3, 0.2, 0.15])],
        "score": score.tolist(),
        "prediction": (score >= 0.5).astype(int).tolist(),
    }
    ref = build_reference(MODEL, "binary_classification", columns, FEATURES)
    ref.save(path)
    return ref


def model_config(reference: Path) -> dict[str, Any]:
    """Small windows; lateness longer than any test's stream, so no event is ever late and the
    final windows depend on which records were consumed, not on the order partitions were."""
    return {
        "name": MODEL,
        "task": "binary_classification",
        "reference": str(reference),
        "windows": [
            {"name": "1m", "length": "1m", "pane": "5s"},
            {"name": "15m", "length": "15m", "pane": "30s"},
        ],
        "allowed_lateness": "1h",
        "features": FEATURES,
        "policy": {"min_samples": 50, "min_labels": 20},
    }


@dataclass(frozen=True)
class WindowCount:
    predictions: int
    labels: int
    correct: int


def decode(settings: Settings, records: Sequence[Record]) -> list[Prediction | Label]:
    """The valid events among ``records``, in the order they were produced."""
    kafka = settings.kafka
    decoder = Decoder(settings.fields, max_future_skew=settings.time.max_future_skew)
    now = time.time()
    out: list[Prediction | Label] = []
    for rec in records:
        if rec.topic == kafka.predictions_topic:
            event: Any = decoder.prediction(rec.value, 0.0, now=now)
        elif rec.topic == kafka.labels_topic:
            event = decoder.label(rec.value, 0.0, now=now)
        else:
            continue
        if isinstance(event, Prediction | Label):
            out.append(event)
    return out


def expected_counts(settings: Settings, records: Sequence[Record]) -> dict[str, WindowCount]:
    """Per window: the predictions whose pane is in the final window, and their labels.

    Straight from the produced JSON (poison pills skipped), without the daemon's decoder. The
    final window ends at the pane of the newest event time; with no late events (see
    :func:`model_config`), that is all a window's counts depend on.
    """
    poison = {value for value, _ in POISON}
    preds: dict[str, tuple[float, int]] = {}  # id → (event time, predicted class)
    labels: dict[str, int] = {}
    for rec in records:
        if rec.value in poison:
            continue
        event = orjson.loads(rec.value)
        if rec.topic == settings.kafka.predictions_topic:
            preds.setdefault(event["id"], (event["timestamp"], event["prediction"]))
        elif rec.topic == settings.kafka.labels_topic:
            labels.setdefault(event["id"], event["label"])
    newest = max(ts for ts, _ in preds.values())
    out = {}
    for w in settings.model(MODEL).windows:
        head, n = math.floor(newest / w.pane), round(w.length / w.pane)
        inside = {i: p for i, (ts, p) in preds.items() if math.floor(ts / w.pane) > head - n}
        labelled = [i for i in inside if i in labels]
        correct = sum(1 for i in labelled if labels[i] == inside[i])
        out[w.name] = WindowCount(len(inside), len(labelled), correct)
    return out


def expected_snapshot(
    settings: Settings, reference: ReferenceProfile, records: Sequence[Record]
) -> Snapshot:
    """Evaluate a fresh model state fed the same events in produced order, in runs per stream."""
    state = ModelState(settings.model(MODEL), reference)
    run: list[Any] = []

    def flush() -> None:
        if run and isinstance(run[0], Prediction):
            state.add_predictions(run)
        elif run:
            state.add_labels(run)
        run.clear()

    for event in decode(settings, records):
        if run and type(event) is not type(run[0]):
            flush()
        run.append(event)
    flush()
    return evaluate([state], lambda: 0.0)


@dataclass
class Verdict:
    """The daemon's final snapshot against the oracle."""

    expected: dict[str, tuple[int, int]] = field(default_factory=dict)  # window → (preds, labels)
    got: dict[str, tuple[int, int]] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)

    def lost(self, window: str) -> int:
        """Predictions and labels expected in ``window`` but missing from it."""
        pairs = zip(self.expected[window], self.got[window], strict=True)
        return sum(max(0, e - g) for e, g in pairs)

    def duplicated(self, window: str) -> int:
        """Predictions and labels in ``window`` beyond those expected (counted twice)."""
        pairs = zip(self.expected[window], self.got[window], strict=True)
        return sum(max(0, g - e) for e, g in pairs)


def _same(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return abs(a - b) <= tol


def judge(got: Mapping[str, Any], want: Snapshot, counts: Mapping[str, WindowCount]) -> Verdict:
    """Counts must be equal, statistics equal to within 1e-9."""
    v = Verdict()
    model = next(m for m in got["models"] if m["model"] == MODEL)
    wanted = want.model(MODEL)
    assert wanted is not None
    for ww in wanted.windows:
        name = ww.window
        # The oracle's two halves agree, or the oracle itself is wrong.
        c = counts[name]
        assert (ww.predictions, ww.labels) == (c.predictions, c.labels), name
        assert ww.performance["accuracy"] == c.correct / c.labels, name
        gw = next(w for w in model["windows"] if w["window"] == name)
        v.expected[name] = (c.predictions, c.labels)
        v.got[name] = (gw["predictions"], gw["labels"])
        for key in ("start", "end", "predictions", "labels", "enough_samples"):
            if gw[key] != getattr(ww, key):
                v.mismatches.append(f"{name}.{key}: {gw[key]} != {getattr(ww, key)}")
        checks: list[tuple[str, float | None, float | None]] = [
            ("prediction_psi", gw["prediction_psi"], ww.prediction_psi)
        ]
        checks += [(f"perf.{k}", gw["performance"].get(k), x) for k, x in ww.performance.items()]
        features = {f["feature"]: f for f in gw["features"]}
        for f in ww.features:
            gf = features.get(f.feature)
            if gf is None:
                v.mismatches.append(f"{name}.{f.feature}: missing")
                continue
            if (gf["count"], gf["drift_detected"]) != (f.count, f.drift_detected):
                v.mismatches.append(f"{name}.{f.feature}: count/drift differ")
            for stat in ("psi", "ks_statistic", "ks_pvalue", "chi2_pvalue"):
                checks.append((f"{f.feature}.{stat}", gf[stat], getattr(f, stat)))
        for what, a, b in checks:
            if not _same(a, b, 1e-9):
                v.mismatches.append(f"{name}.{what}: {a} != {b}")
    return v
