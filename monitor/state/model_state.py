"""One model's live state: feature layout over the reference bins and its event-time windows.

Pure (no I/O, no clock). A batch of predictions is binned once per feature, vectorised, and the
bin indices of all features are laid side by side so that each window counts a whole batch
with one ``bincount`` per pane touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.events import Label, Prediction
from monitor.reference.bins import CategoricalProfile, NumericProfile, Profile
from monitor.reference.build import build_reference
from monitor.reference.profile import ReferenceProfile
from monitor.settings import BootstrapReference, ModelSettings
from monitor.state.join import JoinCounts
from monitor.state.performance_state import LabelResult, PerformanceState
from monitor.state.window import IntArray, PaneRing, WindowView, accept_on_time

PREDICTION = "__prediction__"
#: What a bootstrap buffer may hold (estimated by :func:`footprint`). It keeps only the
#: configured features, yet scores and strings come from producers: past this, the reference is
#: built from the events buffered so far rather than growing memory and the checkpoint further.
BOOTSTRAP_MAX_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Slot:
    """Where one feature's bins sit in the side-by-side count vector."""

    name: str
    profile: Profile
    offset: int

    @property
    def stop(self) -> int:
        return self.offset + self.profile.n_bins


def layout(cfg: ModelSettings, reference: ReferenceProfile) -> tuple[Slot, ...]:
    """The configured features (config order) then the prediction distribution, if any."""
    slots: list[Slot] = []
    offset = 0
    for name, kind in cfg.features.items():
        profile = reference.features.get(name)
        if profile is None:
            raise ValueError(f"model {cfg.name}: reference has no feature {name!r}")
        expected = NumericProfile if kind == "numeric" else CategoricalProfile
        if not isinstance(profile, expected):
            raise ValueError(
                f"model {cfg.name}: feature {name!r} is {kind} in the config "
                "but not in the reference"
            )
        slots.append(Slot(name, profile, offset))
        offset += profile.n_bins
    if reference.prediction is not None:
        slots.append(Slot(PREDICTION, reference.prediction, offset))
    return tuple(slots)


def prediction_value(cfg: ModelSettings, p: Prediction) -> object:
    """The scalar whose distribution is tracked as prediction drift.

    Binary: the positive-class score (the prediction itself when no score is sent);
    regression: the predicted value; multiclass: the predicted class.
    """
    if cfg.task == "binary_classification":
        return p.score if isinstance(p.score, float) else p.prediction
    return p.prediction


def _column(cfg: ModelSettings, slot: Slot, preds: Sequence[Prediction]) -> IntArray:
    if slot.name == PREDICTION:
        values = [prediction_value(cfg, p) for p in preds]
    else:
        values = [p.features.get(slot.name) for p in preds]
    if isinstance(slot.profile, NumericProfile):
        numeric = (
            [v if isinstance(v, int | float) and not isinstance(v, bool) else None for v in values]
            if slot.name == PREDICTION
            else values
        )
        return slot.profile.bin_index(np.array(numeric, dtype=np.float64)) + slot.offset
    return slot.profile.bin_index(values) + slot.offset


def footprint(p: Prediction) -> int:
    """Rough bytes a buffered prediction holds (its strings, numbers and containers).

    >>> footprint(Prediction("a", "m", None, 0.0, {"x": 1.0, "c": "abc"}, 1, 0.5))
    236
    """
    n = 200 + len(p.id) + len(p.version or "")
    for v in p.features.values():
        n += len(v) if isinstance(v, str) else 16
    n += len(p.prediction) if isinstance(p.prediction, str) else 16
    if isinstance(p.score, dict):
        n += sum(len(k) + 16 for k in p.score)
    return n


@dataclass
class AddResult:
    late: int = 0
    unknown_features: int = 0
    join: JoinCounts = field(default_factory=JoinCounts)
    #: Delays of labels that were waiting for these predictions and joined now.
    delays: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


@dataclass
class ModelState:
    """Windows and counters of one model; the reference may arrive later (bootstrap)."""

    cfg: ModelSettings
    reference: ReferenceProfile | None = None
    slots: tuple[Slot, ...] = ()
    windows: dict[str, PaneRing] = field(default_factory=dict)
    newest_seen: float = float("-inf")
    version: str | None = None
    _bootstrap: list[Prediction] = field(default_factory=list)
    _bootstrap_bytes: int = 0
    perf: PerformanceState = field(init=False)

    def __post_init__(self) -> None:
        self._known = frozenset(self.cfg.features)
        self.perf = PerformanceState(self.cfg)
        if self.reference is not None:
            self._install(self.reference)

    def _install(self, reference: ReferenceProfile) -> None:
        self.reference = reference
        self.slots = layout(self.cfg, reference)
        width = self.slots[-1].stop if self.slots else 0
        self.windows = {w.name: PaneRing(w.length, w.pane, width) for w in self.cfg.windows}

    @property
    def _rebaseline(self) -> bool:
        ref = self.cfg.reference
        return isinstance(ref, BootstrapReference) and ref.rebaseline_on_version_change

    def _start_rebaseline(self) -> None:
        """Forget the old version's reference and windows; profile the new version afresh."""
        self.reference = None
        self.slots = ()
        self.windows = {}
        self._bootstrap = []
        self._bootstrap_bytes = 0

    @property
    def bootstrap_needed(self) -> int:
        """Events still needed before a bootstrapped reference can be built (0 when ready)."""
        if self.reference is not None:
            return 0
        target = getattr(self.cfg.reference, "bootstrap_events", 0)
        return max(0, int(target) - len(self._bootstrap))

    def add_predictions(self, preds: Sequence[Prediction]) -> AddResult:
        """Count a batch of this model's predictions into every window.

        Everything that reads the events' content (id keys, encoding, binning, the bootstrap
        build) happens before the first change to the windows, the join or the watermark: if
        it raises, those are as they were, and the pipeline can retry the events one by one.
        """
        result = AddResult()
        known = self._known
        for p in preds:
            if not p.features.keys() <= known:  # a subset test allocates nothing; rare path
                result.unknown_features += len(p.features.keys() - known)
        if preds and preds[-1].version is not None:
            new = preds[-1].version
            if self.version is not None and new != self.version and self._rebaseline:
                self._start_rebaseline()
                preds = [p for p in preds if p.version == new]  # only the new version's events
            self.version = new
        if self.reference is None:
            return self._buffer_for_bootstrap(preds, result)
        # Duplicate ids count once: dropped before anything, so a re-sent duplicate with a
        # later timestamp moves neither the watermark nor any window.
        keys, fresh = self.perf.unseen(preds)
        result.join.duplicate_predictions = int(fresh.size - fresh.sum())
        if not fresh.all():
            preds = [p for p, ok in zip(preds, fresh.tolist(), strict=True) if ok]
            keys = keys[fresh]
        ts = np.fromiter((p.timestamp for p in preds), dtype=np.float64, count=len(preds))
        on_time, newest = accept_on_time(ts, self.newest_seen, self.cfg.allowed_lateness)
        result.late = int(ts.size - on_time.sum())
        if result.late:
            preds = [p for p, ok in zip(preds, on_time.tolist(), strict=True) if ok]
            ts, keys = ts[on_time], keys[on_time]
        if not preds:
            return result  # nothing on time: the newest time seen did not move either
        encoded = self.perf.encode(preds)
        bins = np.stack([_column(self.cfg, s, preds) for s in self.slots], axis=1).ravel()
        # From here on numbers only: the state changes.
        self.newest_seen = newest
        counts, result.delays = self.perf.add_predictions(encoded, keys, ts, newest)
        counts.duplicate_predictions = result.join.duplicate_predictions
        result.join = counts
        for ring in self.windows.values():
            ring.add(ts, bins, per_event=len(self.slots))
        return result

    def _buffer_for_bootstrap(self, preds: Sequence[Prediction], result: AddResult) -> AddResult:
        """Keep events (configured features only) until enough, or enough bytes, are buffered."""
        room, size = self.bootstrap_needed, self._bootstrap_bytes
        slim: list[Prediction] = []
        for p in preds:
            if len(slim) == room or size >= BOOTSTRAP_MAX_BYTES:
                break
            if not p.features.keys() <= self._known:
                p = p._replace(features={k: v for k, v in p.features.items() if k in self._known})
            slim.append(p)
            size += footprint(p)
        buffered = [*self._bootstrap, *slim]
        if len(slim) < room and size < BOOTSTRAP_MAX_BYTES:
            self._bootstrap, self._bootstrap_bytes = buffered, size
            return result
        reference = bootstrap_reference(self.cfg, buffered)  # before any change: it may raise
        self._bootstrap, self._bootstrap_bytes = [], 0
        self._install(reference)
        replay = self.add_predictions([*buffered, *preds[len(slim) :]])
        result.late = replay.late
        result.join, result.delays = replay.join, replay.delays
        return result

    def add_labels(self, labels: Sequence[Label]) -> LabelResult:
        """Join a batch of labels to their predictions and update the windows' performance."""
        return self.perf.add_labels(labels)

    def to_state(self, arrays: dict[str, npt.NDArray[Any]], prefix: str) -> dict[str, Any]:
        """Everything needed to continue exactly where this state is; arrays go to ``arrays``."""
        ref = self.reference
        bootstrapped = isinstance(self.cfg.reference, BootstrapReference)
        return {
            "newest_seen": None if self.newest_seen == float("-inf") else self.newest_seen,
            "version": self.version,
            "reference_hash": ref.content_hash if ref else None,
            "reference": ref.to_dict() if ref is not None and bootstrapped else None,
            "bootstrap": [p._asdict() for p in self._bootstrap],
            "windows": {
                name: ring.to_state(arrays, f"{prefix}.w.{name}")
                for name, ring in self.windows.items()
            },
            "perf": self.perf.to_state(arrays, f"{prefix}.perf"),
        }

    def load_state(
        self, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]], prefix: str
    ) -> None:
        """Restore :meth:`to_state`; raises ValueError if it does not fit this config."""
        if meta["reference"] is not None:
            self._install(ReferenceProfile.from_dict(meta["reference"]))
        current = self.reference.content_hash if self.reference else None
        if meta["reference_hash"] != current:
            raise ValueError(f"model {self.cfg.name}: the reference changed since the checkpoint")
        if set(meta["windows"]) != set(self.windows):
            raise ValueError(f"model {self.cfg.name}: windows changed since the checkpoint")
        for name, ring in self.windows.items():
            ring.load_state(meta["windows"][name], arrays, f"{prefix}.w.{name}")
        self.perf.load_state(meta["perf"], arrays, f"{prefix}.perf")
        seen = meta["newest_seen"]
        self.newest_seen = float("-inf") if seen is None else float(seen)
        self.version = meta["version"]
        self._bootstrap = [Prediction(**p) for p in meta["bootstrap"]]
        self._bootstrap_bytes = sum(map(footprint, self._bootstrap))

    def clamp_event_time(self, bound: float) -> bool:
        """Pull the newest event time, and the windows' heads, back to ``bound`` if past it;
        returns whether they were.

        A checkpoint written before ``time.max_future_skew`` existed (or by a host whose clock
        ran ahead) can hold a watermark in the future, which would make every event late: the
        app clamps such a one to the wall clock. The panes after ``bound`` hold only events from
        the future and are dropped.
        """
        if not self.newest_seen > bound:
            return False
        self.newest_seen = bound
        for ring in self.windows.values():
            ring.clamp(math.floor(bound / ring.pane))
        self.perf.clamp(bound)
        return True

    def views(self) -> list[WindowView]:
        """Copies of every window's totals, for an evaluation."""
        out = []
        for name, ring in self.windows.items():
            start, end = ring.bounds()
            out.append(WindowView(name, start, end, ring.total.copy()))
        return out


def bootstrap_reference(cfg: ModelSettings, preds: Sequence[Prediction]) -> ReferenceProfile:
    """Build a reference profile from a model's first events (``reference.bootstrap_events``)."""
    columns: dict[str, list[object]] = {
        name: [p.features.get(name) for p in preds] for name in cfg.features
    }
    if cfg.task == "binary_classification":
        scores = [p.score if isinstance(p.score, float) else None for p in preds]
        if any(s is not None for s in scores):
            columns["score"] = list(scores)
    columns["prediction"] = [p.prediction for p in preds]
    return build_reference(cfg.name, cfg.task, columns, dict(cfg.features))
