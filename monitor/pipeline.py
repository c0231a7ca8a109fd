"""One polled batch of raw records → decoded events → model windows, plus dead letters.

Client-independent: it sees :class:`~monitor.events.RawRecord` only, never Kafka objects. The
caller holds ``lock`` while the evaluation copies window totals, so a batch is applied whole.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence

from monitor.decode import Decoder
from monitor.events import DeadLetter, DecodeError, Label, Prediction, RawRecord, Stream
from monitor.metrics import OpsMetrics
from monitor.model_state import ModelState
from monitor.settings import Settings


class Pipeline:
    """Routes decoded events to per-model state and counts everything it drops."""

    def __init__(self, settings: Settings, states: Mapping[str, ModelState], metrics: OpsMetrics):
        self._topics: dict[str, Stream] = {
            settings.kafka.predictions_topic: "predictions",
            settings.kafka.labels_topic: "labels",
        }
        schemas = {m.name: m.features for m in settings.models}
        self._decoder = Decoder(settings.fields, schemas)
        self.states = states
        self.metrics = metrics
        self.lock = threading.Lock()

    def stream_of(self, topic: str) -> Stream:
        return self._topics[topic]

    def process(self, records: Sequence[RawRecord]) -> list[DeadLetter]:
        """Decode and window a batch; returns the records bound for the dead-letter topic."""
        dead: list[DeadLetter] = []
        preds: dict[str, list[Prediction]] = defaultdict(list)
        labels: dict[str, list[Label]] = defaultdict(list)
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
                dead.append(DeadLetter(rec, stream, event.reason, event.detail))
                self.metrics.invalid.labels(stream, event.reason).inc()
            elif isinstance(event, Prediction):
                preds[event.model].append(event)
            else:
                labels[event.model].append(event)
        with self.lock:
            for model, batch in preds.items():
                self._apply_predictions(model, batch)
        for model, lbatch in labels.items():
            if model in self.states:
                self.metrics.events.labels(model, "labels").inc(len(lbatch))
            else:
                self.metrics.unknown_models.labels("labels").inc(len(lbatch))
        return dead

    def _apply_predictions(self, model: str, batch: list[Prediction]) -> None:
        state = self.states.get(model)
        if state is None:
            self.metrics.unknown_models.labels("predictions").inc(len(batch))
            return
        result = state.add_predictions(batch)
        self.metrics.events.labels(model, "predictions").inc(len(batch))
        if result.late:
            self.metrics.late.labels(model, "predictions").inc(result.late)
        if result.unknown_features:
            self.metrics.unknown_features.labels(model).inc(result.unknown_features)
