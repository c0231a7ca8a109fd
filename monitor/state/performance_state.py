"""One model's performance side: the label join and per-window performance accumulators.

A joined pair updates the pane of its *prediction's* event time while that pane is still in the
window; a label whose prediction's pane has already slid out is counted as too late.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.events import Label, LabelBatch, PredictionBatch
from monitor.settings import ModelSettings
from monitor.state import restore_checks as checks
from monitor.state.encoding import TargetEncoder
from monitor.state.id_hash import IdKeys
from monitor.state.join import JoinCounts, LabelJoin, Pairs
from monitor.state.window import AccumulatorRing, pane_id
from monitor.stats.accumulators import ClassificationAccumulator, RegressionAccumulator
from monitor.stats.performance import PerformanceSnapshot, performance_snapshot

Accumulator = ClassificationAccumulator | RegressionAccumulator


@dataclass
class LabelResult:
    counts: JoinCounts = field(default_factory=JoinCounts)
    too_late: int = 0  # joined, but the prediction's pane had left every window
    unusable: int = 0  # label value that cannot be encoded (unknown class, not a number)
    delays: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


class PerformanceState:
    """Join + accumulator rings of one model. Pure: event time comes in with the events."""

    def __init__(self, cfg: ModelSettings) -> None:
        self.cfg = cfg
        self.encoder = TargetEncoder(cfg)
        self.join = LabelJoin(
            ttl=cfg.label_ttl,
            label_wait=cfg.label_wait,
            max_pending=cfg.max_pending,
            proba_width=self.encoder.proba_width,
            max_early=cfg.max_early_labels,
        )
        self.rings = {
            w.name: AccumulatorRing[Accumulator](w.length, w.pane, self._new) for w in cfg.windows
        }

    def _new(self) -> Accumulator:
        if self.encoder.task == "regression":
            return RegressionAccumulator()
        return ClassificationAccumulator(n_classes=self.encoder.n_classes, positive=1)

    def unseen(self, ids: list[str]) -> tuple[IdKeys, npt.NDArray[np.bool_]]:
        """The predictions' id keys and which of them are new (duplicates are False)."""
        keys = IdKeys.of(ids, self.join.legacy is not None)
        return keys, self.join.unseen(keys.keys, keys.legacy)

    def encode(
        self, batch: PredictionBatch
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
        """The predictions as ``(y_pred, proba)`` columns; reads the events, changes nothing."""
        return self.encoder.predictions(batch.predictions, batch.scores)

    def add_predictions(
        self,
        encoded: tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]],
        keys: IdKeys,
        ts: npt.NDArray[np.float64],
        newest: float,
    ) -> tuple[JoinCounts, npt.NDArray[np.float64]]:
        """Register new, on-time predictions (deduplicated by the caller with :meth:`unseen`),
        encoded by :meth:`encode`: numbers only, so this cannot fail on an event's content.

        ``newest`` is the model's newest prediction time: the windows end at its pane.
        Returns the join counts and the delays of labels that were waiting for these.
        """
        y_pred, proba = encoded
        early_pairs, counts = self.join.insert(keys.keys, ts, y_pred, proba, keys.legacy)
        for ring in self.rings.values():
            ring.advance(pane_id(newest, ring.pane))
            ring.add(ts, lambda acc, m: self._fill_predictions(acc, y_pred[m], proba[m]))
        self._add_pairs(early_pairs)
        return counts, early_pairs.delay

    def add_labels(self, batch: LabelBatch | Sequence[Label]) -> LabelResult:
        """Join labels to their pending predictions; each joined pair counts in its
        prediction's pane of every window that still holds it."""
        labels = batch if isinstance(batch, LabelBatch) else LabelBatch.of(self.cfg.name, batch)
        y = self.encoder.labels(labels.labels)
        usable = ~np.isnan(y)
        result = LabelResult(unusable=int((~usable).sum()))
        if result.unusable:
            labels, y = labels.take(usable), y[usable]
        keys = IdKeys.of(labels.ids, self.join.legacy is not None)
        pairs, result.counts = self.join.add_labels(keys.keys, y, labels.timestamps, keys.legacy)
        result.too_late = self._add_pairs(pairs)
        result.delays = pairs.delay
        return result

    def _add_pairs(self, pairs: Pairs) -> int:
        """Add joined pairs to every window; returns how many were too late for all of them."""
        if not len(pairs):
            return 0
        ok = ~np.isnan(pairs.y_pred)
        outside_all = np.ones(len(pairs), dtype=bool)
        for ring in self.rings.values():
            outside_all &= ring.add(pairs.ts, lambda acc, m: self._fill_pairs(acc, pairs, m & ok))
        return int(outside_all.sum())

    def _fill_predictions(
        self, acc: Accumulator, y_pred: npt.NDArray[np.float64], proba: npt.NDArray[np.float32]
    ) -> None:
        ok = ~np.isnan(y_pred)
        if isinstance(acc, RegressionAccumulator):
            acc.add_predictions(y_pred[ok])
        else:
            acc.add_predictions(y_pred[ok].astype(np.int64), self._proba(proba[ok]))

    def _fill_pairs(self, acc: Accumulator, pairs: Pairs, m: npt.NDArray[np.bool_]) -> None:
        if isinstance(acc, RegressionAccumulator):
            acc.add(pairs.y_true[m], pairs.y_pred[m])
        else:
            acc.add(
                pairs.y_true[m].astype(np.int64),
                pairs.y_pred[m].astype(np.int64),
                self._proba(pairs.proba[m]),
            )

    def _proba(self, proba: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        p = proba.astype(np.float64)
        return p[:, 0] if self.encoder.task == "binary_classification" else p

    def snapshot(self, window: str) -> PerformanceSnapshot:
        return performance_snapshot(self.rings[window].total)

    def to_state(self, arrays: dict[str, npt.NDArray[Any]], prefix: str) -> dict[str, Any]:
        return {
            "rings": {name: ring.to_state() for name, ring in self.rings.items()},
            "join": self.join.to_state(arrays, f"{prefix}.join"),
        }

    def load_state(self, state: object, arrays: dict[str, npt.NDArray[Any]], prefix: str) -> None:
        """Restore :meth:`to_state`; raises ValueError for any part that does not fit."""
        meta = checks.mapping(state, f"model {self.cfg.name} performance")
        rings = checks.mapping(meta.get("rings"), f"model {self.cfg.name} performance windows")
        if set(rings) != set(self.rings):
            raise ValueError(f"model {self.cfg.name}: windows changed since the checkpoint")
        for name, ring in self.rings.items():
            ring.load_state(rings[name], self._accumulator_from_state)
        self.join.load_state(meta.get("join"), arrays, f"{prefix}.join")

    def _accumulator_from_state(self, state: Any) -> Accumulator:
        """One pane's accumulator, refused unless it is shaped as this model's config makes
        them (checked before it is built: a crafted class count would allocate its square)."""
        state = checks.mapping(state, f"model {self.cfg.name} accumulator")
        template = self._new()
        try:
            if isinstance(template, RegressionAccumulator):
                return RegressionAccumulator.from_state(state)
            for param in ("n_classes", "positive", "score_bins", "calibration_bins"):
                if state.get(param) != getattr(template, param):
                    raise ValueError(
                        f"model {self.cfg.name}: accumulator {param} differs from the config"
                    )
            return ClassificationAccumulator.from_state(state)
        except (KeyError, TypeError, IndexError, OverflowError) as exc:  # a field missing or
            # of another type: refused like every other part (ValueError), never another error
            raise ValueError(
                f"model {self.cfg.name}: accumulator unreadable ({exc!r:.80})"
            ) from None

    def clamp(self, bound: float) -> None:
        """Pull every window's head back to the pane of ``bound``, dropping later panes."""
        for ring in self.rings.values():
            ring.clamp(pane_id(bound, ring.pane))

    def expire(self, now: float) -> JoinCounts:
        return self.join.expire(now)
