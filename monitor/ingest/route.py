"""One polled batch of raw records → decoded events → model windows, plus dead letters.

Client-independent: it sees :class:`~monitor.events.RawRecord` only, never Kafka objects. The
caller holds ``lock`` while the evaluation copies window totals, so a batch is applied whole.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.events import DeadLetter, DecodeError, Label, Prediction, RawRecord, Stream
from monitor.ingest.decode import Decoder
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import Settings
from monitor.state.join import JoinCounts
from monitor.state.model_state import ModelState


@dataclass
class Decoded:
    """A decoded batch, grouped by model (predictions by model and partition), not applied."""

    predictions: dict[tuple[str, int], list[Prediction]] = field(
        default_factory=lambda: defaultdict(list)
    )
    labels: dict[str, list[Label]] = field(default_factory=lambda: defaultdict(list))
    dead: list[DeadLetter] = field(default_factory=list)


class Pipeline:
    """Routes decoded events to per-model state and counts everything it drops."""

    def __init__(
        self,
        settings: Settings,
        states: Mapping[str, ModelState],
        metrics: OpsMetrics,
        wall: Callable[[], float] = time.time,
    ):
        self._topics: dict[str, Stream] = {
            settings.kafka.predictions_topic: "predictions",
            settings.kafka.labels_topic: "labels",
        }
        self._decoder = Decoder(settings.fields)
        self.states = states
        self.metrics = metrics
        self._wall = wall
        for model in states:
            metrics.add_model(model)
        self.lock = threading.Lock()

    def decode(self, records: Sequence[RawRecord]) -> Decoded:
        """Decode a batch without touching any state; invalid records are counted here."""
        out = Decoded()
        decode_prediction, decode_label = self._decoder.prediction, self._decoder.label
        for rec in records:
            stream = self._topics.get(rec.topic)
            if stream == "predictions":
                event: Prediction | Label | DecodeError = decode_prediction(
                    rec.value, rec.timestamp
                )
            elif stream == "labels":
                event = decode_label(rec.value, rec.timestamp)
            else:
                continue
            if isinstance(event, DecodeError):
                out.dead.append(DeadLetter(rec, stream, event.reason, event.detail))
                self.metrics.invalid.labels(stream, event.reason).inc()
            elif isinstance(event, Prediction):
                out.predictions[event.model, rec.partition].append(event)
            else:
                out.labels[event.model].append(event)
        return out

    def apply(self, batch: Decoded, on_applied: Callable[[], None] | None = None) -> None:
        """Apply a decoded batch to the model states, atomically with ``on_applied``.

        ``on_applied`` (marking the records' offsets as processed) runs under the same lock, so
        a checkpoint never sees the state of a batch without its offsets, or the reverse.
        """
        arrived_at = self._wall()
        with self.lock:
            # Predictions first: a label in the same batch as its prediction joins at once.
            for (model, partition), preds in batch.predictions.items():
                self._apply_predictions(model, partition, preds, arrived_at)
            for model, labels in batch.labels.items():
                self._apply_labels(model, labels)
            if on_applied is not None:
                on_applied()

    def process(self, records: Sequence[RawRecord]) -> list[DeadLetter]:
        """Decode and apply in one go (tests and benchmarks); returns the dead letters."""
        batch = self.decode(records)
        self.apply(batch)
        return batch.dead

    def _apply_labels(self, model: str, batch: list[Label]) -> None:
        state = self.states.get(model)
        if state is None:
            self.metrics.unknown_models.labels("labels").inc(len(batch))
            return
        m = self.metrics
        result = state.add_labels(batch)
        m.events.labels(model, "labels").inc(len(batch))
        if result.too_late:
            m.late.labels(model, "labels").inc(result.too_late)
        if result.unusable:
            m.unusable_labels.labels(model).inc(result.unusable)
        self._count_join(model, result.counts)
        for delay in result.delays.tolist():
            m.label_delay.observe(max(0.0, delay))

    def _count_join(self, model: str, counts: JoinCounts) -> None:
        m = self.metrics
        if counts.duplicate_labels:
            m.duplicates.labels(model, "labels").inc(counts.duplicate_labels)
        if counts.duplicate_predictions:
            m.duplicates.labels(model, "predictions").inc(counts.duplicate_predictions)
        if counts.orphan_labels:
            m.orphans.labels(model).inc(counts.orphan_labels)
        if counts.evicted:
            m.evicted.labels(model).inc(counts.evicted)
        if counts.expired_unlabelled:
            m.expired.labels(model).inc(counts.expired_unlabelled)

    def maintain(self) -> None:
        """Expire old joins and refresh the pending gauges (call periodically, e.g. per tick).

        Expiry follows the model's watermark (the slowest active partition), so a partition
        read ahead during a catch-up cannot expire the pending predictions of a slow one.
        """
        now = self._wall()
        with self.lock:
            for model, state in self.states.items():
                if (watermark := state.watermark(now)) > float("-inf"):
                    self._count_join(model, state.perf.expire(watermark))
                self.metrics.pending.labels(model).set(state.perf.join.pending())

    def _apply_predictions(
        self, model: str, partition: int, batch: list[Prediction], arrived_at: float
    ) -> None:
        state = self.states.get(model)
        if state is None:
            self.metrics.unknown_models.labels("predictions").inc(len(batch))
            return
        result = state.add_predictions(batch, partition, arrived_at)
        self.metrics.events.labels(model, "predictions").inc(len(batch))
        if result.late:
            self.metrics.late.labels(model, "predictions").inc(result.late)
        if result.out_of_window:
            self.metrics.out_of_window.labels(model).inc(result.out_of_window)
        if result.unknown_features:
            self.metrics.unknown_features.labels(model).inc(result.unknown_features)
        self._count_join(model, result.join)
        for delay in result.delays.tolist():
            self.metrics.label_delay.observe(max(0.0, delay))
