"""One polled batch of raw records → decoded events → model windows, plus dead letters.

Client-independent: it sees :class:`~monitor.events.RawRecord` only, never Kafka objects. The
caller holds ``lock`` while the evaluation copies window totals, so a batch is applied whole.

No record's content can stop ingestion: decoding is guarded per record, and a model's batch
whose apply raises is applied again record by record, so that only the culprit becomes a dead
letter (``internal_error``). That retry cannot count anything twice: a model state does all
the work that depends on content before its first mutation (see
:meth:`~monitor.state.model_state.ModelState.add_predictions`), and the join drops an id it has
already taken as a duplicate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import numpy as np

from monitor.events import (
    DeadLetter,
    DecodeError,
    Label,
    LabelBatch,
    Prediction,
    PredictionBatch,
    RawRecord,
    RecordBatch,
    Stream,
)
from monitor.ingest.columns import ColumnDecoder
from monitor.ingest.decode import Decoder
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import Settings
from monitor.state.join import JoinCounts
from monitor.state.model_state import ModelState

log = logging.getLogger(__name__)
E = TypeVar("E", Prediction, Label)
B = TypeVar("B", PredictionBatch, LabelBatch)
#: Longest ``internal_error`` detail: the exception's type and the start of its message.
DETAIL_MAX = 200


def _in_order(kind: Any, pieces: list[tuple[list[int], Any]]) -> tuple[list[int], Any]:
    """Pieces of one group's rows (positions, a ``kind`` batch) as one batch in position
    order."""
    positions = [i for at, _ in pieces for i in at]
    merged = kind.concat([batch for _, batch in pieces])
    order = np.argsort(np.array(positions), kind="stable")
    return [positions[i] for i in order.tolist()], merged.take(order)


def internal_error(exc: BaseException) -> str:
    """A bounded detail for an exception raised by one record."""
    try:
        text = str(exc)
    except Exception:  # a message that cannot even be rendered
        text = "?"
    return f"{type(exc).__name__}: {text}"[:DETAIL_MAX]


@dataclass
class Decoded:
    """A decoded batch, grouped by model and partition, not applied.

    ``sources`` holds each group's records, in the same order as its events (key: stream,
    model, partition), so that an event whose apply fails can be dead-lettered as the record
    it came from.
    """

    predictions: dict[tuple[str, int], PredictionBatch] = field(default_factory=dict)
    labels: dict[tuple[str, int], LabelBatch] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    sources: dict[tuple[Stream, str, int], Sequence[RawRecord]] = field(
        default_factory=lambda: defaultdict(list)
    )


class Pipeline:
    """Routes decoded events to per-model state and counts everything it drops.

    ``wall`` is read once per batch: the ``now`` that bounds event times
    (``time.max_future_skew``). In group mode ``shards`` gives the state of a (model,
    partition) and ``owned`` every state held; otherwise a model has one state in ``states``.
    """

    def __init__(
        self,
        settings: Settings,
        states: Mapping[str, ModelState],
        metrics: OpsMetrics,
        wall: Callable[[], float] = time.time,
        shards: Callable[[str, int], ModelState | None] | None = None,
        owned: Callable[[], list[tuple[str, ModelState]]] | None = None,
    ):
        self._shards = shards
        self._owned = owned
        self._topics: dict[str, Stream] = {
            settings.kafka.predictions_topic: "predictions",
            settings.kafka.labels_topic: "labels",
        }
        skew = settings.time.max_future_skew
        self._columns = ColumnDecoder(
            settings.fields,
            max_future_skew=skew,
            models={m.name: m.features for m in settings.models},
        )
        # What the columns refuse goes the exact way only: their typed path was tried already.
        self._decoder = Decoder(settings.fields, max_future_skew=skew)
        self._wall = wall
        self.states = states
        self.metrics = metrics
        for model in states:
            metrics.add_model(model)
        self.lock = threading.Lock()

    def decode(self, records: Sequence[RawRecord]) -> Decoded:
        """Decode a batch without touching any state; invalid records are counted here."""
        out = Decoded()
        now = self._wall()
        batch, topics = RecordBatch.of(records), self._topics
        if len(set(batch.topics)) == 1:  # the usual batch: one topic's records
            if (only := topics.get(batch.topics[0])) is not None:
                self._decode_stream(only, batch, now, out)
            return out
        streams = [topics.get(topic) for topic in batch.topics]
        for stream in ("predictions", "labels"):
            mine = [i for i, s in enumerate(streams) if s == stream]
            if mine:
                self._decode_stream(stream, batch.take(mine), now, out)
        return out

    def _guard_decode(
        self, decode: Callable[..., E | DecodeError], rec: RawRecord, now: float
    ) -> E | DecodeError:
        try:
            return decode(rec.value, rec.timestamp, now=now)
        except Exception as exc:  # a decoder bug must cost one record, not the daemon
            log.exception("decoding %s[%d]@%d failed", rec.topic, rec.partition, rec.offset)
            return DecodeError("internal_error", internal_error(exc))

    def _decode_stream(
        self, stream: Stream, records: RecordBatch, now: float, out: Decoded
    ) -> None:
        """The typed columns of one stream's records first; the records they leave, one by one
        (the exact path, which names each refusal). Each (model, partition) keeps the records'
        order."""
        kind: Any = PredictionBatch if stream == "predictions" else LabelBatch
        into: dict[tuple[str, int], Any] = getattr(out, stream)
        columns = self._columns.predictions if stream == "predictions" else self._columns.labels
        exact: Callable[..., Any] = (
            self._decoder.prediction if stream == "predictions" else self._decoder.label
        )
        try:
            at, models, batch = columns(records.values, records.timestamps, now=now)
        except Exception:  # a bug of the batch path: every record goes the exact way
            log.exception("decoding a batch of %d %s failed", len(records), stream)
            at, models, batch = [], [], kind.of("", [])
        partitions = records.partitions
        if len(at) == len(records) and len(set(models)) == 1 and len(set(partitions)) == 1:
            # The usual batch: one model, one partition, every record on the typed path.
            group = models[0], partitions[0]
            into[group] = replace(batch, model=group[0])
            out.sources[(stream, *group)] = records
            return
        # (model, partition) → [(position of each row, its batch)]
        parts: dict[tuple[str, int], list[tuple[list[int], Any]]] = defaultdict(list)
        rows: dict[tuple[str, int], list[int]] = defaultdict(list)
        for row, group in enumerate(zip(models, (partitions[i] for i in at), strict=True)):
            rows[group].append(row)
        for group, idx in rows.items():
            taken = replace(batch.take(np.array(idx, dtype=np.intp)), model=group[0])
            parts[group].append(([at[i] for i in idx], taken))
        for i in sorted(set(range(len(records))) - set(at)):
            rec = records[i]
            event: Prediction | Label | DecodeError = self._guard_decode(exact, rec, now)
            if isinstance(event, DecodeError):
                self._dead(out.dead, rec, stream, event)
            else:
                parts[event.model, rec.partition].append(([i], kind.of(event.model, [event])))
        for (model, partition), pieces in parts.items():
            positions, batch = pieces[0] if len(pieces) == 1 else _in_order(kind, pieces)
            into[model, partition] = batch
            out.sources[stream, model, partition] = [records[i] for i in positions]

    def _dead(
        self, into: list[DeadLetter], rec: RawRecord, stream: Stream, err: DecodeError
    ) -> None:
        into.append(DeadLetter(rec, stream, err.reason, err.detail))
        self.metrics.invalid.labels(stream, err.reason).inc()

    def apply(
        self, batch: Decoded, on_applied: Callable[[], None] | None = None
    ) -> list[DeadLetter]:
        """Apply a decoded batch to the model states, atomically with ``on_applied``.

        ``on_applied`` (marking the records' offsets as processed) runs under the same lock, so
        a checkpoint never sees the state of a batch without its offsets, or the reverse.
        Returns the records whose apply raised (counted, to be dead-lettered by the caller).
        """
        arrived_at = self._wall()
        dead: list[DeadLetter] = []
        with self.lock:
            # Predictions first: a label in the same batch as its prediction joins at once.
            for (model, partition), preds in batch.predictions.items():
                self._guarded(
                    partial(self._apply_predictions, partition=partition, arrived_at=arrived_at),
                    model,
                    preds,
                    batch.sources["predictions", model, partition],
                    dead,
                )
            for (model, partition), labels in batch.labels.items():
                self._guarded(
                    partial(self._apply_labels, partition=partition),
                    model,
                    labels,
                    batch.sources["labels", model, partition],
                    dead,
                )
            if on_applied is not None:
                on_applied()
        return dead

    def _guarded(
        self,
        apply: Callable[[str, B], None],
        model: str,
        events: B,
        sources: Sequence[RawRecord],
        dead: list[DeadLetter],
    ) -> None:
        """Apply a model's events; if that raises, one by one, dead-lettering the culprits."""
        try:
            apply(model, events)
            return
        except Exception:
            log.exception(
                "applying %d events of model %s failed: retrying one by one", len(sources), model
            )
        stream: Stream = "predictions" if isinstance(events, PredictionBatch) else "labels"
        for i, rec in enumerate(sources):
            try:
                apply(model, events.take(np.array([i], dtype=np.intp)))
            except Exception as exc:
                log.exception("applying %s[%d]@%d failed", rec.topic, rec.partition, rec.offset)
                self._dead(dead, rec, stream, DecodeError("internal_error", internal_error(exc)))

    def process(self, records: Sequence[RawRecord]) -> list[DeadLetter]:
        """Decode and apply in one go (tests and benchmarks); returns the dead letters."""
        batch = self.decode(records)
        return batch.dead + self.apply(batch)

    def _state(self, model: str, partition: int) -> ModelState | None:
        if self._shards is not None:
            return self._shards(model, partition)
        return self.states.get(model)

    def held(self) -> list[tuple[str, ModelState]]:
        """Every model state this process holds (one per model, or per owned partition)."""
        return self._owned() if self._owned is not None else list(self.states.items())

    def _apply_labels(self, model: str, batch: LabelBatch, *, partition: int) -> None:
        state = self._state(model, partition)
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
            pending = dict.fromkeys(self.states, 0)
            for model, state in self.held():
                if (watermark := state.watermark(now)) > float("-inf"):
                    self._count_join(model, state.perf.expire(watermark))
                pending[model] = pending.get(model, 0) + state.perf.join.pending()
            for model, n in pending.items():
                self.metrics.pending.labels(model).set(n)

    def _apply_predictions(
        self, model: str, batch: PredictionBatch, *, partition: int, arrived_at: float
    ) -> None:
        state = self._state(model, partition)
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
