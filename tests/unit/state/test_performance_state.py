"""Performance through ModelState (issue 3): every exported metric against scikit-learn on the
same joined pairs, label coverage, too-late labels, duplicates kept out of every window.

Events arrive in a simulated order: predictions by event time, labels after a random delay,
some labels before their prediction, some identical duplicates of both; the pipeline's way of
applying a polled batch (predictions first, then labels) and its maintenance tick are followed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn import metrics as skm  # type: ignore[import-untyped]

from monitor.events import Label, Prediction
from monitor.persistence.checkpoint import read_checkpoint, write_checkpoint
from monitor.reference.build import build_reference
from monitor.settings import ModelSettings, PolicySettings, WindowSpec
from monitor.snapshot import WindowResult
from monitor.state.evaluate import evaluate_model
from monitor.state.join import JoinCounts
from monitor.state.model_state import ModelState
from monitor.stats.accumulators import CALIBRATION_BINS

T0 = 1_800_000_000.0  # a multiple of every pane size used here
WINDOWS = [
    WindowSpec(name="1h", length=3600, pane=60),
    WindowSpec(name="5m", length=300, pane=10),
]
FloatArray = npt.NDArray[np.float64]
Event = Prediction | Label


def model_settings(task: str, **extra: Any) -> ModelSettings:
    fields: dict[str, Any] = {
        "name": "m",
        "task": task,
        "reference": Path("unused.json"),  # the profile is handed to ModelState directly
        "features": {"x": "numeric"},
        "windows": WINDOWS,
        "allowed_lateness": 3600.0,
        "policy": PolicySettings(min_samples=1),
    }
    return ModelSettings(**(fields | extra))


def model_state(cfg: ModelSettings, seed: int = 0) -> ModelState:
    x = np.random.default_rng(seed).normal(0.0, 1.0, 2000)
    ref = build_reference("m", cfg.task, {"x": x.tolist()}, {"x": "numeric"})
    return ModelState(cfg, ref)


@dataclass
class Feed:
    """What the pipeline would have counted while feeding a ModelState."""

    join: JoinCounts = field(default_factory=JoinCounts)
    too_late: int = 0
    unusable: int = 0
    early_joined: int = 0  # pairs made when a prediction met its waiting label
    delays: list[float] = field(default_factory=list)


def arrival_order(
    preds: list[Prediction],
    labels: list[Label],
    rng: np.random.Generator,
    early: float = 0.1,
    duplicates: float = 0.03,
) -> list[Event]:
    """Predictions arrive at their event time, labels at theirs, except a share of labels that
    come up to a minute before their prediction; a share of each is sent again up to 5 minutes
    later."""
    when = {p.id: p.timestamp for p in preds}
    items: list[tuple[float, int, Event]] = [(p.timestamp, 0, p) for p in preds]
    for lab in labels:
        if rng.random() < early:
            arrives = when[lab.id] - float(rng.uniform(0, 60))
        else:
            arrives = lab.timestamp
        items.append((arrives, 1, lab))
    for arrives, kind, event in list(items):
        if rng.random() < duplicates:
            items.append((arrives + float(rng.uniform(0, 300)), kind, event))
    items.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in items]


def feed(state: ModelState, events: list[Event], batch: int = 200) -> Feed:
    """Apply ``events`` in polled batches as the pipeline does, with a maintenance tick each."""
    out = Feed()
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        preds = [e for e in chunk if isinstance(e, Prediction)]
        labels = [e for e in chunk if isinstance(e, Label)]
        if preds:
            added = state.add_predictions(preds)
            assert added.late == 0
            out.join.add(added.join)
            out.early_joined += added.join.joined
        if labels:
            res = state.add_labels(labels)
            out.join.add(res.counts)
            out.too_late += res.too_late
            out.unusable += res.unusable
            out.delays += res.delays.tolist()
        out.join.add(state.perf.expire(state.newest_seen))
    return out


def in_window(ts: FloatArray, newest: float, spec: WindowSpec) -> npt.NDArray[np.bool_]:
    """Predictions whose pane is in the window that ends at the newest prediction's pane."""
    head = math.floor(newest / spec.pane)
    panes = np.floor(ts / spec.pane)
    return (panes > head - round(spec.length / spec.pane)) & (panes <= head)


def window(state: ModelState, name: str) -> WindowResult:
    result = evaluate_model(state, wall_now=0.0).window(name)
    assert result is not None
    return result


def ece(conf: FloatArray, correct: npt.NDArray[np.bool_]) -> float:
    """Expected calibration error over equal-width confidence bins, straight from the rows."""
    bins = np.minimum((conf * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    gap = sum(abs(conf[bins == b].sum() - correct[bins == b].sum()) for b in np.unique(bins))
    return float(gap / conf.size)


def close(got: float, want: float, tol: float = 1e-9) -> bool:
    return abs(got - want) <= tol


# --- binary ----------------------------------------------------------------------------------


@dataclass
class Binary:
    ts: FloatArray  # prediction event time, per id
    score: FloatArray  # float64, as sent
    y_pred: npt.NDArray[np.int64]
    labelled: npt.NDArray[np.bool_]
    y_true: npt.NDArray[np.int64]
    preds: list[Prediction]
    labels: list[Label]


def binary_traffic(seed: int, n: int = 4000) -> Binary:
    rng = np.random.default_rng(seed)
    ts = np.sort(T0 + rng.uniform(0, 1800, n))
    score = rng.beta(2.0, 2.0, n)
    y_pred = (score >= 0.5).astype(np.int64)
    y_true = (rng.random(n) < score).astype(np.int64)  # calibrated scores
    labelled = rng.random(n) < 0.75
    delay = rng.exponential(120.0, n)
    name = {1: "fraud", 0: "ok"}
    preds = [
        Prediction(
            id=f"p{i}",
            model="m",
            version="v1",
            timestamp=float(ts[i]),
            features={"x": float(rng.normal())},
            # A fifth of the producers send only the score: the class is score >= 0.5.
            prediction=None if i % 5 == 0 else name[int(y_pred[i])],
            score=float(score[i]),
        )
        for i in range(n)
    ]
    labels = [
        Label(f"p{i}", "m", name[int(y_true[i])], float(ts[i] + delay[i]))
        for i in np.flatnonzero(labelled)
    ]
    return Binary(ts, score, y_pred, labelled, y_true, preds, labels)


def test_binary_metrics_equal_sklearn_on_the_joined_pairs() -> None:
    t = binary_traffic(seed=1)
    state = model_state(model_settings("binary_classification", positive_class="fraud"))
    events = arrival_order(t.preds, t.labels, np.random.default_rng(2))
    fed = feed(state, events)
    assert fed.early_joined > 50  # the label-before-prediction path was taken

    # Scores are stored as float32 in the join (4 bytes per pending prediction instead of 8):
    # the metrics are exact on the stored scores, and within 1e-6 of the float64 ones.
    s32 = t.score.astype(np.float32).astype(np.float64)
    newest = float(t.ts.max())
    for spec in WINDOWS:
        w = window(state, spec.name)
        inside = in_window(t.ts, newest, spec)
        j = inside & t.labelled
        yt, yp, s = t.y_true[j], t.y_pred[j], s32[j]
        perf = w.performance
        assert w.predictions == inside.sum() and w.labels == j.sum() > 100, spec.name
        assert set(perf) == {
            "label_coverage", "accuracy", "precision", "recall", "f1", "roc_auc",
            "roc_auc_bound", "log_loss", "brier", "ece", "estimated_accuracy",
            "estimation_error",
        }  # fmt: skip
        assert close(perf["accuracy"], skm.accuracy_score(yt, yp))
        assert close(perf["precision"], skm.precision_score(yt, yp))
        assert close(perf["recall"], skm.recall_score(yt, yp))
        assert close(perf["f1"], skm.f1_score(yt, yp))
        assert close(perf["log_loss"], skm.log_loss(yt, s, labels=[0, 1]))
        assert close(perf["log_loss"], skm.log_loss(yt, t.score[j], labels=[0, 1]), 1e-6)
        assert close(perf["brier"], skm.brier_score_loss(yt, s))
        assert close(perf["brier"], skm.brier_score_loss(yt, t.score[j]), 1e-6)
        # ROC AUC from 200-bin histograms: within the bound exported beside it.
        assert abs(perf["roc_auc"] - skm.roc_auc_score(yt, s)) <= perf["roc_auc_bound"] + 1e-12
        assert 0.0 < perf["roc_auc_bound"] < 0.01
        conf = np.maximum(s, 1.0 - s)  # the predicted class is score >= 0.5
        assert close(perf["ece"], ece(conf, yt == yp))
        assert close(perf["estimation_error"], conf.mean() - skm.accuracy_score(yt, yp))
        # Label-free: every prediction in the window, labelled or not.
        all_s = s32[inside]
        assert close(perf["estimated_accuracy"], np.maximum(all_s, 1.0 - all_s).mean())
        assert close(perf["label_coverage"], j.sum() / inside.sum())


def test_binary_join_counters_match_what_was_sent() -> None:
    t = binary_traffic(seed=3, n=1500)
    state = model_state(model_settings("binary_classification", positive_class="fraud"))
    events = arrival_order(t.preds, t.labels, np.random.default_rng(4), duplicates=0.1)
    fed = feed(state, events)

    copies = Counter((type(e).__name__, e.id) for e in events)
    dup_preds = sum(c - 1 for (kind, _), c in copies.items() if kind == "Prediction")
    dup_labels = sum(c - 1 for (kind, _), c in copies.items() if kind == "Label")
    assert dup_preds > 50 and dup_labels > 50
    assert fed.join == JoinCounts(
        joined=len(t.labels), duplicate_predictions=dup_preds, duplicate_labels=dup_labels
    )
    assert state.perf.join.pending() == len(t.preds) - len(t.labels)
    assert fed.too_late == fed.unusable == 0
    # A delay per joined pair. Pairs joined when the prediction arrived after its label are
    # not reported by ModelState (see test_label_delays_include_early_labels).
    assert len(fed.delays) == len(t.labels) - fed.early_joined
    assert min(fed.delays) >= 0.0


# --- multiclass ------------------------------------------------------------------------------


def test_multiclass_metrics_equal_sklearn_on_the_joined_pairs() -> None:
    classes = ["cat", "dog", "eel", "fox"]
    k, n = len(classes), 3000
    rng = np.random.default_rng(5)
    ts = np.sort(T0 + rng.uniform(0, 1800, n))
    # Probabilities on a 1/256 grid: exact in float32 and summing to exactly 1, so the stored
    # scores are the sent ones and scikit-learn can be given them as they are.
    cuts = np.sort(rng.integers(1, 256, (n, k - 1)), axis=1)
    grid = np.diff(np.column_stack([np.zeros(n), cuts, np.full(n, 256)]), axis=1)
    grid = np.where(grid == 0, 1, grid)  # no zero probabilities...
    grid[np.arange(n), grid.argmax(axis=1)] -= grid.sum(axis=1) - 256  # ...and still 256 in all
    proba = grid / 256.0
    top = proba.argmax(axis=1)
    y_pred = np.where(rng.random(n) < 0.9, top, rng.integers(0, k, n))  # not always the argmax
    y_true = np.array([rng.choice(k, p=row) for row in proba])
    y_true[y_true == 3] = 0  # "fox" is predicted but never the truth
    scored = rng.random(n) < 0.85  # some producers send no scores
    labelled = rng.random(n) < 0.8
    preds = [
        Prediction(
            f"q{i}",
            "m",
            None,
            float(ts[i]),
            {"x": 0.0},
            classes[y_pred[i]],
            {c: float(proba[i, ci]) for ci, c in enumerate(classes)} if scored[i] else None,
        )
        for i in range(n)
    ]
    labels = [
        Label(f"q{i}", "m", classes[y_true[i]], float(ts[i] + rng.exponential(60.0)))
        for i in np.flatnonzero(labelled)
    ]
    labels.append(Label("q0", "m", "wolf", T0))  # not a class: counted as unusable
    cfg = model_settings("multiclass_classification", classes=classes)
    state = model_state(cfg)
    fed = feed(state, arrival_order(preds, labels, rng))
    assert fed.unusable == 1

    newest = float(ts.max())
    for spec in WINDOWS:
        w, inside = window(state, spec.name), in_window(ts, newest, spec)
        j = inside & labelled
        js = j & scored
        yt, yp = y_true[j], y_pred[j]
        perf = w.performance
        assert w.labels == j.sum() > 100 and w.predictions == inside.sum()
        assert set(perf) == {
            "label_coverage", "accuracy", "precision", "recall", "f1", "log_loss", "brier",
            "ece", "estimated_accuracy", "estimation_error",
        }  # fmt: skip
        assert close(perf["accuracy"], skm.accuracy_score(yt, yp))
        prf = skm.precision_recall_fscore_support(yt, yp, average="macro", zero_division=0)
        assert close(perf["precision"], prf[0])
        assert close(perf["recall"], prf[1])
        assert close(perf["f1"], prf[2])
        # Score metrics: labelled rows that carry scores.
        assert close(perf["log_loss"], skm.log_loss(y_true[js], proba[js], labels=range(k)))
        assert close(
            perf["brier"], skm.brier_score_loss(y_true[js], proba[js], labels=list(range(k)))
        )
        conf = proba[js, y_pred[js]]  # the probability of the predicted class
        correct = y_true[js] == y_pred[js]
        assert close(perf["ece"], ece(conf, correct))
        assert close(perf["estimation_error"], conf.mean() - correct.mean())
        every = inside & scored
        assert close(perf["estimated_accuracy"], proba[every, y_pred[every]].mean())
        assert close(perf["label_coverage"], j.sum() / inside.sum())
    # Where the prediction is the argmax, that is the mean of the top class probability.
    argmax_only = np.flatnonzero(scored & (y_pred == top))
    other = model_state(cfg)
    feed(other, [preds[i] for i in argmax_only])
    got = window(other, "1h").performance["estimated_accuracy"]
    assert close(got, proba[argmax_only].max(axis=1).mean())


# --- regression ------------------------------------------------------------------------------


def test_regression_metrics_equal_sklearn_on_the_joined_pairs() -> None:
    rng = np.random.default_rng(6)
    n = 3000
    ts = np.sort(T0 + rng.uniform(0, 1800, n))
    y_pred = rng.normal(50.0, 20.0, n)
    y_true = y_pred + rng.normal(0.0, 5.0, n)
    y_true[::9] = 0.0  # zero targets: in MAE and RMSE, skipped by MAPE
    labelled = rng.random(n) < 0.7
    preds = [
        Prediction(f"r{i}", "m", None, float(ts[i]), {"x": 1.0}, float(y_pred[i]), None)
        for i in range(n)
    ]
    labels = [
        Label(f"r{i}", "m", float(y_true[i]), float(ts[i] + 30.0)) for i in np.flatnonzero(labelled)
    ]
    state = model_state(model_settings("regression"))
    feed(state, arrival_order(preds, labels, rng))

    newest = float(ts.max())
    for spec in WINDOWS:
        w, inside = window(state, spec.name), in_window(ts, newest, spec)
        j = inside & labelled
        yt, yp = y_true[j], y_pred[j]
        nz = yt != 0.0
        perf = w.performance
        assert w.labels == j.sum() > 50 and 0 < nz.sum() < j.sum()
        assert set(perf) == {"label_coverage", "mae", "rmse", "mape"}
        assert close(perf["mae"], skm.mean_absolute_error(yt, yp))
        assert close(perf["rmse"], skm.root_mean_squared_error(yt, yp))
        assert close(perf["mape"], skm.mean_absolute_percentage_error(yt[nz], yp[nz]))
        assert close(perf["label_coverage"], j.sum() / inside.sum())


@pytest.mark.parametrize(
    ("target", "prediction"),
    [(1e200, 0.0), (1e12, 0.0), (5e-324, 1.0)],  # overflows the squares; the ratio; neither
    ids=["square-overflows", "huge", "ratio-overflows"],
)
def test_an_extreme_target_leaves_the_window_with_its_pane(
    target: float, prediction: float
) -> None:
    """Valid JSON in the wrong units: inf (or a sum it dwarfs) while its pane is in the
    window, and once the pane has slid out the window says what its other pairs say."""
    state = model_state(model_settings("regression"))
    state.add_predictions([Prediction("odd", "m", None, T0, {"x": 1.0}, prediction, None)])
    state.add_labels([Label("odd", "m", target, T0 + 1.0)])
    for k in range(1, 240):  # 20 minutes of pairs off by one, the window never empty
        t = T0 + 5.0 * k
        state.add_predictions([Prediction(f"p{k}", "m", None, t, {"x": 1.0}, 10.0, None)])
        state.add_labels([Label(f"p{k}", "m", 11.0, t + 1.0)])
    perf = window(state, "5m").performance
    assert perf["mae"] == pytest.approx(1.0) and perf["rmse"] == pytest.approx(1.0)
    assert perf["mape"] == pytest.approx(1 / 11)


# --- windows, lateness, duplicates ---------------------------------------------------------


def binary_prediction(i: str, ts: float, score: float = 0.8) -> Prediction:
    return Prediction(i, "m", None, ts, {"x": 0.5}, int(score >= 0.5), score)


def test_a_label_whose_prediction_left_every_window_is_too_late() -> None:
    state = model_state(model_settings("binary_classification", allowed_lateness=60.0))
    feed(state, [binary_prediction("old", T0), binary_prediction("mid", T0 + 3000)])
    # "old" has left both windows, "mid" only the 5-minute one.
    feed(state, [binary_prediction("new", T0 + 3650)])

    result = state.add_labels([Label("old", "m", 1, T0 + 3700), Label("mid", "m", 0, T0 + 3700)])

    assert result.counts.joined == 2  # both found their prediction...
    assert result.too_late == 1  # ...but "old" has no pane left to go to
    assert window(state, "1h").labels == 1
    assert window(state, "1h").performance["accuracy"] == 0.0  # "mid": predicted 1, was 0
    assert window(state, "5m").labels == 0
    again = state.add_labels([Label("old", "m", 1, T0 + 3701)])
    assert again.counts.duplicate_labels == 1 and again.too_late == 0


def test_labels_move_no_window_only_predictions_do() -> None:
    state = model_state(model_settings("binary_classification"))
    feed(state, [binary_prediction("a", T0)])
    state.add_labels([Label("a", "m", 1, T0 + 10_000)])  # a label far ahead in event time
    w = window(state, "5m")
    assert (w.start, w.end) == (T0 - 290, T0 + 10)
    assert w.labels == 1 and w.predictions == 1


def test_duplicate_predictions_are_kept_out_of_the_drift_windows_too() -> None:
    rng = np.random.default_rng(8)
    distinct = [
        Prediction(f"d{i}", "m", None, T0 + i, {"x": float(rng.normal())}, 1, 0.9)
        for i in range(300)
    ]
    copies = [distinct[i] for i in rng.integers(0, 300, 120)]  # resent, identical
    # Copies in the same batch as the original, in later batches, and before a merge.
    mixed: list[Event] = list(distinct)
    for c in copies:
        mixed.insert(int(rng.integers(distinct.index(c) + 1, len(mixed) + 1)), c)
    cfg = model_settings("binary_classification")
    once, twice = model_state(cfg), model_state(cfg)
    feed(once, list(distinct), batch=37)
    fed = feed(twice, mixed, batch=37)

    assert fed.join.duplicate_predictions == len(copies)
    for a, b in zip(once.views(), twice.views(), strict=True):
        np.testing.assert_array_equal(a.total, b.total, err_msg=a.name)
        assert (a.start, a.end) == (b.start, b.end)
    assert window(twice, "1h").predictions == 300
    assert window(twice, "1h").performance == window(once, "1h").performance
    assert twice.perf.rings["1h"].total.predictions == 300


def small_traffic(task: str, seed: int, n: int = 1200) -> tuple[list[Prediction], list[Label]]:
    """Predictions and (for 70 % of them) labels of any task, with scores where the task has
    them; labels 0-120 s after their prediction in event time."""
    rng = np.random.default_rng(seed)
    ts = np.sort(T0 + rng.uniform(0, 900, n))
    preds, labels = [], []
    for i in range(n):
        score: float | dict[str, float] | None = None
        if task == "binary_classification":
            p = float(rng.random())
            value: Any = int(p >= 0.5)
            score, truth = p, int(rng.random() < p)
        elif task == "multiclass_classification":
            p3 = rng.dirichlet(np.ones(3))
            value = "abc"[int(p3.argmax())]
            score = dict(zip("abc", p3.tolist(), strict=True))
            truth = "abc"[int(rng.choice(3, p=p3))]
        else:
            value = float(rng.normal(10, 3))
            truth = value + float(rng.normal())
        preds.append(Prediction(f"s{i}", "m", None, float(ts[i]), {"x": 0.1}, value, score))
        if rng.random() < 0.7:
            labels.append(Label(f"s{i}", "m", truth, float(ts[i] + rng.uniform(0, 120))))
    return preds, labels


@pytest.mark.parametrize(
    "task", ["binary_classification", "multiclass_classification", "regression"]
)
def test_a_restart_from_a_checkpoint_continues_exactly(task: str, tmp_path: Path) -> None:
    """Checkpoint mid-stream (labels waiting for predictions included), restore into a fresh
    state, feed the rest: the same metrics, windows and pending store as an uninterrupted run."""
    preds, labels = small_traffic(task, seed=9)
    events = arrival_order(preds, labels, np.random.default_rng(10), early=0.3)
    cfg = model_settings(task, classes=["a", "b", "c"] if task.startswith("multi") else None)
    whole = model_state(cfg)
    feed(whole, events)

    half = 200 * (len(events) // 400)  # on a batch boundary: both runs see the same batches
    first = model_state(cfg)
    feed(first, events[:half])
    assert first.perf.join.early, "some labels should be waiting at the checkpoint"
    arrays: dict[str, npt.NDArray[Any]] = {}
    write_checkpoint(tmp_path / "ckpt", {"m": first.to_state(arrays, "m.m")}, arrays)
    saved = read_checkpoint(tmp_path / "ckpt")
    second = model_state(cfg)
    second.load_state(saved.meta["m"], saved.arrays, "m.m")
    feed(second, events[half:])

    assert second.perf.join.pending() == whole.perf.join.pending() > 0
    for a, b in zip(whole.views(), second.views(), strict=True):
        np.testing.assert_array_equal(a.total, b.total, err_msg=a.name)
    for spec in WINDOWS:
        want, got = window(whole, spec.name), window(second, spec.name)
        assert (got.labels, got.predictions) == (want.labels, want.predictions) != (0, 0)
        assert got.performance.keys() == want.performance.keys()
        for key, value in want.performance.items():
            assert got.performance[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def test_label_delays_include_early_labels() -> None:
    state = model_state(model_settings("binary_classification"))
    early = state.add_labels([Label("a", "m", 1, T0 + 40.0)])
    added = state.add_predictions([binary_prediction("a", T0)])
    assert added.join.joined == 1
    delays = early.delays.tolist() + added.delays.tolist()
    assert delays == [40.0]


def test_a_restamped_duplicate_moves_no_window() -> None:
    state = model_state(model_settings("binary_classification"))
    feed(state, [binary_prediction("a", T0)])
    feed(state, [binary_prediction("a", T0 + 400)])  # a retry, re-stamped: still a duplicate
    state.add_labels([Label("a", "m", 1, T0 + 401)])
    w = window(state, "5m")
    assert w.predictions == 1
    assert w.labels == 1 and w.performance["label_coverage"] == 1.0
