"""The oracle of the fault-injection suite: a reproducible stream, and what the daemon must
report after consuming it, computed from the produced records and never from the daemon.

Window counts come from pane arithmetic on the events' times; statistics from feeding the same
decoded events, in produced order, to a fresh in-process
:class:`~monitor.state.model_state.ModelState` and evaluating it with
:func:`monitor.state.evaluate.evaluate` (equivalence), and again, independently of the
daemon's code, from the raw training and window samples (:func:`independent_statistics`:
PSI by hand over the reference's coarse cuts, KS D from ``scipy.stats.ks_2samp``, chi-square
from ``scipy.stats.chi2_contingency``).
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
from scipy.stats import chi2_contingency, ks_2samp

from monitor.events import Label, Prediction
from monitor.ingest.decode import Decoder
from monitor.reference.bins import CategoricalProfile, NumericProfile
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


def training_columns(seed: int = 1, rows: int = 20_000) -> dict[str, list[object]]:
    """The training distribution: ``x`` centred at 0 (the live stream drifts to 0.3)."""
    rng = np.random.default_rng(seed)
    score = rng.beta(2.0, 5.0, rows)
    return {
        "x": rng.normal(0.0, 1.0, rows).tolist(),
        "c": [str(c) for c in rng.choice(CATEGORIES, rows, p=[0.35, 0.3, 0.2, 0.15])],
        "score": score.tolist(),
        "prediction": (score >= 0.5).astype(int).tolist(),
    }


def save_reference(path: Path, seed: int = 1, rows: int = 20_000) -> ReferenceProfile:
    """The reference profile of :func:`training_columns`, saved to ``path``."""
    ref = build_reference(MODEL, "binary_classification", training_columns(seed, rows), FEATURES)
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


def degrading_model(
    reference: Path, url: str, secret: str, retry_schedule: list[str]
) -> dict[str, Any]:
    """:func:`model_config` whose policy degrades on the stream's drift (x runs at 0.3 against
    a reference centred at 0) after 300 predictions and sends one webhook to ``url``."""
    model = model_config(reference)
    model["policy"] = {
        "min_samples": 300,
        "ks_alpha": 0.01,
        "psi_max": 0.5,
        "window": "15m",
        "breaches_to_fire": 1,
        "cooldown": "1h",
    }
    model["webhook"] = {
        "url": url,
        "secret": secret,
        "allow_private_targets": True,
        "retry_schedule": retry_schedule,
    }
    return model


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


def _final_windows(
    settings: Settings, records: Sequence[Record]
) -> tuple[dict[str, dict[str, tuple[float, dict[str, Any]]]], dict[str, int]]:
    """Per window, the predictions (id → (time, event)) in the final window; labels by id.

    Straight from the produced JSON (poison pills skipped, the first record of an id wins),
    without the daemon's decoder. The final window ends at the pane of the newest event time;
    with no late events (see :func:`model_config`), that is all a window depends on.
    """
    poison = {value for value, _ in POISON}
    preds: dict[str, tuple[float, dict[str, Any]]] = {}
    labels: dict[str, int] = {}
    for rec in records:
        if rec.value in poison:
            continue
        event = orjson.loads(rec.value)
        if rec.topic == settings.kafka.predictions_topic:
            preds.setdefault(event["id"], (event["timestamp"], event))
        elif rec.topic == settings.kafka.labels_topic:
            labels.setdefault(event["id"], event["label"])
    newest = max(ts for ts, _ in preds.values())
    out = {}
    for w in settings.model(MODEL).windows:
        head, n = math.floor(newest / w.pane), round(w.length / w.pane)
        out[w.name] = {i: p for i, p in preds.items() if math.floor(p[0] / w.pane) > head - n}
    return out, labels


def expected_counts(settings: Settings, records: Sequence[Record]) -> dict[str, WindowCount]:
    """Per window: the predictions whose pane is in the final window, and their labels."""
    windows, labels = _final_windows(settings, records)
    out = {}
    for name, inside in windows.items():
        labelled = [i for i in inside if i in labels]
        correct = sum(1 for i in labelled if labels[i] == inside[i][1]["prediction"])
        out[name] = WindowCount(len(inside), len(labelled), correct)
    return out


@dataclass(frozen=True)
class RawStats:
    """A final window's statistics computed from raw samples, without the daemon's code."""

    psi: dict[str, float]  # feature → PSI over the reference's bins (+ unseen, missing)
    ks_exact: float  # two-sample KS D of the raw ``x`` samples (scipy)
    chi2_pvalue: dict[str, float]  # feature → chi-square p-value (scipy)


def _psi_by_hand(ref: Sequence[int], win: Sequence[int], eps: float = 1e-4) -> float:
    """sum((a - e) ln(a / e)) over the shares, each floored at ``eps`` (the documented PSI)."""
    n_ref, n_win = sum(ref), sum(win)
    total = 0.0
    for r, w in zip(ref, win, strict=True):
        e, a = max(r / n_ref, eps), max(w / n_win, eps)
        total += (a - e) * math.log(a / e)
    return total


def _chi2_pvalue(ref: Sequence[int], win: Sequence[int]) -> float:
    table = np.array([ref, win])
    table = table[:, table.sum(axis=0) > 0]
    return float(chi2_contingency(table, correction=False).pvalue)


def _numeric_bins(profile: NumericProfile, values: Sequence[float]) -> list[int]:
    """Counts over the coarse (PSI) bins, then the missing bin, from the raw values.

    The coarse bins are right-closed intervals between the fine edges where the coarse group
    changes: the cut points are the only part of the profile used (they define the bins).
    """
    coarse = profile.coarse.tolist()
    cuts = [float(e) for j, e in enumerate(profile.edges) if coarse[j] != coarse[j + 1]]
    counts = [0] * (len(cuts) + 2)
    for v in values:
        if math.isnan(v):
            counts[-1] += 1
        else:
            counts[sum(1 for c in cuts if v > c)] += 1
    return counts


def _categorical_bins(profile: CategoricalProfile, values: Sequence[str]) -> list[int]:
    """Counts per reference category, then unseen, then missing (none here)."""
    index = {c: k for k, c in enumerate(profile.categories)}
    counts = [0] * (len(index) + 2)
    for v in values:
        counts[index.get(v, len(index))] += 1
    return counts


def independent_statistics(
    settings: Settings, reference: ReferenceProfile, records: Sequence[Record]
) -> dict[str, RawStats]:
    """Per final window: PSI by hand, KS D and chi-square p by scipy, from raw samples.

    The reference side comes from :func:`training_columns` (the raw training values), the
    window side from the produced JSON; the profile contributes only its bin boundaries.
    """
    train = training_columns()
    x_prof, c_prof = reference.features["x"], reference.features["c"]
    assert isinstance(x_prof, NumericProfile) and isinstance(c_prof, CategoricalProfile)
    train_x = [float(v) for v in train["x"]]  # type: ignore[arg-type]
    ref_bins = {
        "x": _numeric_bins(x_prof, train_x),
        "c": _categorical_bins(c_prof, [str(v) for v in train["c"]]),
    }
    windows, _ = _final_windows(settings, records)
    out = {}
    for name, inside in windows.items():
        xs = [float(e["features"]["x"]) for _, e in inside.values()]
        cs = [str(e["features"]["c"]) for _, e in inside.values()]
        win_bins = {"x": _numeric_bins(x_prof, xs), "c": _categorical_bins(c_prof, cs)}
        out[name] = RawStats(
            psi={f: _psi_by_hand(ref_bins[f], win_bins[f]) for f in FEATURES},
            ks_exact=float(ks_2samp(train_x, xs, method="asymp").statistic),
            chi2_pvalue={f: _chi2_pvalue(ref_bins[f], win_bins[f]) for f in FEATURES},
        )
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


def _independent_mismatches(name: str, gw: Mapping[str, Any], raw: RawStats) -> list[str]:
    """The daemon's (or the equivalence oracle's) window against the raw-sample statistics:
    PSI to 1e-9, chi-square p to a relative 1e-6, binned KS D within its documented bound
    ``D_edges <= D <= D_edges + ks_bound``."""
    out = []
    features = {f["feature"]: f for f in gw["features"]}
    for feature, value in raw.psi.items():
        if not _same(features[feature]["psi"], value, 1e-9):
            out.append(f"{name}.{feature}.psi: {features[feature]['psi']} != raw {value}")
    for feature, p in raw.chi2_pvalue.items():
        got_p = features[feature]["chi2_pvalue"]
        if not _same(got_p, p, 1e-6 * abs(p) + 1e-300):
            out.append(f"{name}.{feature}.chi2_pvalue: {got_p} != raw {p}")
    x = features["x"]
    d, bound = x["ks_statistic"], x["ks_bound"]
    if not d <= raw.ks_exact + 1e-12 or not raw.ks_exact - d <= bound + 1e-12:
        out.append(
            f"{name}.x.ks_statistic: {d} not within [D - {bound}, D] of raw D {raw.ks_exact}"
        )
    return out


def judge(
    got: Mapping[str, Any],
    want: Snapshot,
    counts: Mapping[str, WindowCount],
    raw: Mapping[str, RawStats] | None = None,
) -> Verdict:
    """Counts must be equal, statistics equal to within 1e-9; with ``raw``
    (:func:`independent_statistics`), the statistics must also match the raw samples."""
    v = Verdict()
    model = next(m for m in got["models"] if m["model"] == MODEL)
    wanted = want.model(MODEL)
    assert wanted is not None
    wanted_model = next(m for m in want.to_json()["models"] if m["model"] == MODEL)
    wanted_json = {w["window"]: w for w in wanted_model["windows"]}
    for ww in wanted.windows:
        name = ww.window
        # The oracle's two halves agree, or the oracle itself is wrong.
        c = counts[name]
        assert (ww.predictions, ww.labels) == (c.predictions, c.labels), name
        assert ww.performance["accuracy"] == c.correct / c.labels, name
        gw = next(w for w in model["windows"] if w["window"] == name)
        if raw is not None:
            # The equivalence oracle agrees with the raw samples, or the evaluation is wrong.
            bad = _independent_mismatches(name, wanted_json[name], raw[name])
            assert not bad, bad
            v.mismatches += _independent_mismatches(name, gw, raw[name])
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
