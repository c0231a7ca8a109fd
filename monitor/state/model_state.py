"""One model's live state: feature layout over the reference bins and its event-time windows.

Pure (no I/O, no clock). A batch of predictions is binned once per feature, vectorised, and the
bin indices of all features are laid side by side so that each window counts a whole batch
with one ``bincount`` per pane touched.

Rebaselining (``reference.rebaseline_on_version_change``): when a version appears for the first
time (:mod:`monitor.state.versions`; a flip back to a known version is no change), the
reference and the windows are dropped and the reference is rebuilt from that version's first
``bootstrap_events`` predictions only; other versions' predictions are not counted meanwhile.
Interleaving does not restart it: once enough of the new version's predictions have arrived
the reference is installed and from then on every version's predictions count against it. A
newer version appearing meanwhile restarts it for that version; if the version being profiled
stops being present (rolled back before enough of its predictions arrived), it restarts for
the current version.

Adding a batch reads everything that depends on the events' content (id keys, encoding,
binning, the bootstrap build) before the first change to the windows, the join or the event
time: if it raises, the state is as it was, and the pipeline retries the events one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.events import Label, LabelBatch, Prediction, PredictionBatch
from monitor.reference.profile import ReferenceProfile
from monitor.settings import BootstrapReference, ModelSettings
from monitor.state import bootstrap
from monitor.state import restore_checks as checks
from monitor.state.bootstrap import bootstrap_reference, footprint, restore_prediction
from monitor.state.drift_plan import DriftPlan
from monitor.state.event_time import PartitionClocks
from monitor.state.join import JoinCounts
from monitor.state.layout import Slot, columns, layout
from monitor.state.performance_state import LabelResult, PerformanceState
from monitor.state.unseen import UnseenPanes, categorical_features, unseen_columns
from monitor.state.versions import VersionLog
from monitor.state.window import PaneRing, WindowView, pane_id


@dataclass
class AddResult:
    late: int = 0
    #: On time for their partition, but older than the longest window's start (the windows
    #: end at the newest partition's time): counted, not stored.
    out_of_window: int = 0
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
    #: Every slot's drift statistics (the features', then the prediction's), laid out once per
    #: reference.
    drift_plan: DriftPlan = field(default_factory=lambda: DriftPlan(()))
    windows: dict[str, PaneRing] = field(default_factory=dict)
    #: Which unseen categories, per window (:mod:`monitor.state.unseen`).
    unseen: dict[str, UnseenPanes] = field(default_factory=dict)
    #: (partition, prediction) buffered until a bootstrapped reference can be built.
    _bootstrap: list[tuple[int, Prediction]] = field(default_factory=list)
    _bootstrap_bytes: int = 0
    #: The version whose predictions the bootstrap buffers during a rebaseline (None: any).
    _rebaseline_to: str | None = None
    perf: PerformanceState = field(init=False)
    versions: VersionLog = field(init=False)

    def __post_init__(self) -> None:
        self._known = frozenset(self.cfg.features)
        self.perf = PerformanceState(self.cfg)
        self.clocks = PartitionClocks(self.cfg.allowed_lateness, self.cfg.idle_partition_timeout)
        self.versions = VersionLog(max(w.length for w in self.cfg.windows))
        if self.reference is not None:
            self._install(self.reference)

    def _install(self, reference: ReferenceProfile) -> None:
        self.reference = reference
        self.slots = layout(self.cfg, reference)
        self.drift_plan = DriftPlan(self.slots)
        width = self.slots[-1].stop if self.slots else 0
        self.windows = {w.name: PaneRing(w.length, w.pane, width) for w in self.cfg.windows}
        names = categorical_features(self.slots)
        self.unseen = {w.name: UnseenPanes(w.length, w.pane, names) for w in self.cfg.windows}

    @property
    def _rebaseline(self) -> bool:
        ref = self.cfg.reference
        return isinstance(ref, BootstrapReference) and ref.rebaseline_on_version_change

    @property
    def version(self) -> str | None:
        """The newest version still present in the windows (see :mod:`monitor.state.versions`)."""
        return self.versions.current

    def _start_rebaseline(self, version: str | None) -> None:
        """Forget the old reference and windows; profile ``version`` afresh."""
        self.reference = None
        self.slots = ()
        self.drift_plan = DriftPlan(())
        self.windows = {}
        self.unseen = {}
        self._bootstrap, self._bootstrap_bytes = [], 0
        self._rebaseline_to = version

    @property
    def bootstrap_needed(self) -> int:
        """Events still needed before a bootstrapped reference can be built (0 when ready)."""
        if self.reference is not None:
            return 0
        target = getattr(self.cfg.reference, "bootstrap_events", 0)
        return max(0, int(target) - len(self._bootstrap))

    @property
    def newest_seen(self) -> float:
        """The newest prediction time over all partitions: where the windows end."""
        return self.clocks.head

    def watermark(self, now: float | None = None) -> float:
        """The slowest active partition's newest time (see :mod:`monitor.state.event_time`)."""
        return self.clocks.watermark(now)

    def add_predictions(
        self,
        preds: PredictionBatch | Sequence[Prediction],
        partition: int = 0,
        arrived_at: float = 0.0,
    ) -> AddResult:
        """Count a batch of one partition's predictions of this model into every window.

        ``arrived_at`` is the wall time of the batch (it tells active partitions from idle).
        """
        batch = (
            preds
            if isinstance(preds, PredictionBatch)
            else PredictionBatch.of(self.cfg.name, preds)
        )
        result = AddResult()
        known = self._known
        # Typed features are the configured ones; an object may carry others (rare).
        if not batch.typed and not all(map(known.issuperset, batch.features)):
            for f in batch.features:
                result.unknown_features += len(f.keys() - known)
        new_versions = self.versions.observe(batch.versions, batch.timestamps)
        if new_versions and self._rebaseline:
            self._start_rebaseline(new_versions[-1])
        elif self._rebaseline_to is not None and self._rebaseline_to not in self.versions.present():
            # The version being profiled is gone (a canary rolled back too soon): profile the
            # one that is current instead, or the model would stay without a reference.
            self._start_rebaseline(self.versions.current)
        if self.reference is None:
            return self._buffer_for_bootstrap(batch.events(), result, partition, arrived_at)
        # Duplicate ids count once: dropped before anything, so a re-sent duplicate with a
        # later timestamp moves neither the event time nor any window.
        keys, fresh = self.perf.unseen(batch.ids)
        result.join.duplicate_predictions = int(fresh.size - fresh.sum())
        if not fresh.all():
            batch, keys = batch.take(fresh), keys[fresh]
        on_time, newest = self.clocks.judge(partition, batch.timestamps)
        result.late = int(on_time.size - on_time.sum())
        if result.late:
            batch, keys = batch.take(on_time), keys[on_time]
        if not len(batch):
            self.clocks.advance(partition, newest, arrived_at)
            return result
        ts = batch.timestamps
        encoded = self.perf.encode(batch)
        cells = columns(self.cfg, self.slots, batch)
        unseen = unseen_columns(self.slots, cells, batch)
        # From here on numbers only: the state changes.
        self.clocks.advance(partition, newest, arrived_at)
        counts, result.delays = self.perf.add_predictions(encoded, keys, ts, self.newest_seen)
        counts.duplicate_predictions = result.join.duplicate_predictions
        result.join = counts
        for name, ring in self.windows.items():
            ring.add(ts, cells, per_event=len(self.slots))
            self.unseen[name].advance(ring.head)
            for feature, rows, values in unseen:
                self.unseen[name].add(ts[rows], feature, values, ring.head)
        if self.windows:
            start = min(ring.bounds()[0] for ring in self.windows.values())
            result.out_of_window = int((ts < start).sum())
        return result

    def _buffer_for_bootstrap(
        self, preds: Sequence[Prediction], result: AddResult, partition: int, arrived_at: float
    ) -> AddResult:
        """Keep events (configured features only) until enough, or enough bytes, are buffered.

        During a rebaseline only the new version's events are kept; the rest of the batch that
        completes the buffer is counted against the new reference.
        """
        room, size, target = self.bootstrap_needed, self._bootstrap_bytes, self._rebaseline_to
        kept: list[Prediction] = []
        rest: Sequence[Prediction] = ()
        for i, p in enumerate(preds):
            if len(kept) == room or size >= bootstrap.BOOTSTRAP_MAX_BYTES:
                rest = preds[i:]
                break
            if target is not None and p.version != target:
                continue
            kept.append(bootstrap.slim(self.cfg.features, p))
            size += footprint(kept[-1])
        buffered = [*self._bootstrap, *((partition, p) for p in kept)]
        if len(kept) < room and size < bootstrap.BOOTSTRAP_MAX_BYTES:
            self._bootstrap, self._bootstrap_bytes = buffered, size
            return result
        # Built before any change: it may raise, and the buffer is then as it was.
        reference = bootstrap_reference(self.cfg, [p for _, p in buffered])
        self._bootstrap, self._bootstrap_bytes = [], 0
        self._install(reference)
        self._rebaseline_to = None
        # Replayed partition by partition (in arrival order within each), so each event is
        # judged against its own partition's time, as if it had just arrived.
        groups: dict[int, list[Prediction]] = {}
        for part, p in [*buffered, *((partition, p) for p in rest)]:
            groups.setdefault(part, []).append(p)
        delays = []
        for part, group in groups.items():
            replay = self.add_predictions(group, part, arrived_at)
            result.late += replay.late
            result.out_of_window += replay.out_of_window
            result.join.add(replay.join)
            delays.append(replay.delays)
        result.delays = np.concatenate(delays)
        return result

    def add_labels(self, labels: LabelBatch | Sequence[Label]) -> LabelResult:
        """Join a batch of labels to their predictions and update the windows' performance."""
        return self.perf.add_labels(labels)

    def to_state(self, arrays: dict[str, npt.NDArray[Any]], prefix: str) -> dict[str, Any]:
        """Everything needed to continue exactly where this state is; arrays go to ``arrays``."""
        ref = self.reference
        bootstrapped = isinstance(self.cfg.reference, BootstrapReference)
        return {
            "event_time": self.clocks.to_state(),
            "version": self.version,  # informational; "versions" is what is restored
            "versions": self.versions.to_state(),
            "rebaseline_to": self._rebaseline_to,
            "reference_hash": ref.content_hash if ref else None,
            "reference": ref.to_dict() if ref is not None and bootstrapped else None,
            "bootstrap": [[part, p._asdict()] for part, p in self._bootstrap],
            "windows": {
                name: ring.to_state(arrays, f"{prefix}.w.{name}")
                for name, ring in self.windows.items()
            },
            "perf": self.perf.to_state(arrays, f"{prefix}.perf"),
            "unseen": {name: panes.to_state() for name, panes in self.unseen.items()},
        }

    def load_state(
        self, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]], prefix: str
    ) -> None:
        """Restore :meth:`to_state`; raises ValueError if it does not fit this config.

        Meant for a fresh state: on an error it may be half-loaded, so the caller drops it.
        """
        name = self.cfg.name
        meta = checks.mapping(meta, f"model {name}")
        if meta.get("reference") is not None:
            if not isinstance(self.cfg.reference, BootstrapReference):
                raise ValueError(
                    f"model {name}: the checkpoint carries a reference; config has one"
                )
            ref = ReferenceProfile.from_dict(meta["reference"])
            if (ref.model, ref.task) != (name, self.cfg.task):
                raise ValueError(f"model {name}: the checkpoint's reference is for another model")
            self._install(ref)
        current = self.reference.content_hash if self.reference else None
        if meta.get("reference_hash") != current:
            raise ValueError(f"model {name}: the reference changed since the checkpoint")
        windows = checks.mapping(meta.get("windows"), f"model {name} windows")
        if set(windows) != set(self.windows):
            raise ValueError(f"model {name}: windows changed since the checkpoint")
        for window, ring in self.windows.items():
            ring.load_state(windows[window], arrays, f"{prefix}.w.{window}")
        # Absent from checkpoints written before it: restored with no unseen values.
        unseen = checks.mapping(meta.get("unseen", {}), f"model {name} unseen")
        if not set(unseen) <= set(self.windows):
            raise ValueError(f"model {name}: unseen values for a window not configured")
        for window, panes in self.unseen.items():
            head = self.windows[window].head
            panes.load_state(unseen.get(window, []), head, f"model {name} unseen {window}")
        self.perf.load_state(meta.get("perf"), arrays, f"{prefix}.perf")
        self.clocks.load_state(checks.mapping(meta.get("event_time"), f"model {name} event_time"))
        if "versions" in meta:
            self.versions.load_state(meta["versions"])
            target = meta.get("rebaseline_to")
            if target is not None and (not isinstance(target, str) or target not in self.versions):
                raise ValueError(f"model {name}: rebaseline to an unknown version")
            self._rebaseline_to = target
        elif version := checks.optional_text(meta.get("version"), f"model {name} version"):
            self.versions.load_state([[version, self.newest_seen]])  # before version logs
        target_events = getattr(self.cfg.reference, "bootstrap_events", 0)
        buffered = checks.sequence(meta.get("bootstrap"), f"model {name} bootstrap", target_events)
        self._bootstrap = [
            (
                checks.integer(checks.sequence(item, "bootstrap entry", 2)[0], "partition", 0),
                restore_prediction(self.cfg, item[1]),
            )
            for item in buffered
        ]
        self._bootstrap_bytes = sum(footprint(p) for _, p in self._bootstrap)

    def clamp_event_time(self, bound: float) -> bool:
        """Pull every partition's event time, and the windows' heads, back to ``bound`` if past
        it; returns whether any was.

        A checkpoint written before ``time.max_future_skew`` existed (or by a host whose clock
        ran ahead) can hold an event time in the future, which would make every event late: the
        app clamps such a one to the wall clock. The panes after ``bound`` hold only events from
        the future and are dropped.
        """
        if not self.clocks.clamp(bound):
            return False
        for ring in self.windows.values():
            ring.clamp(pane_id(bound, ring.pane))
        for panes in self.unseen.values():
            panes.clamp(pane_id(bound, panes.pane))
        self.perf.clamp(bound)
        return True

    def views(self) -> list[WindowView]:
        """Copies of every window's totals, for an evaluation."""
        out = []
        for name, ring in self.windows.items():
            start, end = ring.bounds()
            panes = self.unseen[name]
            top = {f: panes.top(f) for f in panes.features}
            out.append(WindowView(name, start, end, ring.total.copy(), top))
        return out
