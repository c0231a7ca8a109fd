"""Immutable event and result types that cross module boundaries.

The per-record types are named tuples: immutable like frozen dataclasses, but about three times
cheaper to create, which matters at tens of thousands of records per second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import attrgetter, itemgetter
from typing import Any, Literal, NamedTuple, overload

import numpy as np
import numpy.typing as npt

Stream = Literal["predictions", "labels"]


class RawRecord(NamedTuple):
    """One Kafka record as the ingest layer hands it over (client-independent)."""

    topic: str
    partition: int
    offset: int
    timestamp: float  # the Kafka record timestamp, epoch seconds
    key: bytes | None
    value: bytes | None


class RecordBatch(Sequence[RawRecord]):
    """One poll's records as columns, each read from the client's messages in one C loop; a
    sequence of :class:`RawRecord` (built on demand) for the rare reader of one record.

    >>> b = RecordBatch.of([RawRecord("t", 0, 7, 1.5, None, b"{}")] * 3)
    >>> len(b), b.offsets, b[1], b.take([2]).values
    (3, [7, 7, 7], RawRecord(topic='t', partition=0, offset=7, timestamp=1.5, key=None, \
value=b'{}'), [b'{}'])
    """

    __slots__ = ("keys", "offsets", "partitions", "timestamps", "topics", "values")

    def __init__(
        self,
        topics: list[str],
        partitions: list[int],
        offsets: list[int],
        timestamps: list[float],
        keys: list[bytes | None],
        values: list[bytes | None],
    ) -> None:
        self.topics, self.partitions, self.offsets = topics, partitions, offsets
        self.timestamps, self.keys, self.values = timestamps, keys, values

    @classmethod
    def of(cls, records: Sequence[RawRecord]) -> RecordBatch:
        """``records`` as columns (itself if it is a batch already)."""
        if isinstance(records, RecordBatch):
            return records
        if not records:
            return cls([], [], [], [], [], [])
        return cls(*map(list, zip(*records, strict=True)))

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, i: int) -> RawRecord: ...
    @overload
    def __getitem__(self, i: slice) -> RecordBatch: ...
    def __getitem__(self, i: int | slice) -> RawRecord | RecordBatch:
        if isinstance(i, slice):
            return RecordBatch(*(column[i] for column in self._columns()))
        return RawRecord(*(column[i] for column in self._columns()))

    def take(self, rows: Sequence[int]) -> RecordBatch:
        """The records at ``rows``, in that order."""
        return RecordBatch(*([column[i] for i in rows] for column in self._columns()))

    def _columns(self) -> tuple[list[Any], ...]:
        return self.topics, self.partitions, self.offsets, self.timestamps, self.keys, self.values


class Prediction(NamedTuple):
    id: str
    model: str
    version: str | None
    timestamp: float  # event time, epoch seconds
    features: dict[str, Any]
    prediction: Any
    score: float | dict[str, float] | None


class Label(NamedTuple):
    id: str
    model: str
    label: Any
    timestamp: float


@dataclass(frozen=True, slots=True)
class PredictionBatch:
    """One model's predictions as columns, in arrival order: what decoding hands the state.

    A batch is decoded into columns without a :class:`Prediction` per event (the per-event
    object costs more than the rest of the hot path); :meth:`of` builds one from events (tests,
    the bootstrap replay) and :meth:`events` goes back (the rare paths).

    ``features`` holds each event's features object, or, when ``typed``, a struct of the
    model's features whose class maps each feature to its attribute (``attrs``; see
    :class:`~monitor.ingest.fast_decode.TypedPredictions`): read them with :meth:`feature`,
    :meth:`feature_rows` and :meth:`feature_dicts`.

    >>> b = PredictionBatch.of("m", [Prediction("a", "m", None, 1.0, {"x": 2}, 1, 0.9)] * 2)
    >>> len(b), b.take(np.array([False, True])).ids, b.events()[0].score, b.feature("x")
    (2, ['a'], 0.9, [2, 2])
    """

    model: str
    ids: list[str]
    versions: list[str | None]
    timestamps: npt.NDArray[np.float64]
    features: list[Any]
    predictions: list[Any]
    scores: list[float | dict[str, float] | None]
    typed: bool = False

    @classmethod
    def of(cls, model: str, preds: Sequence[Prediction]) -> PredictionBatch:
        ids, _, versions, ts, features, predictions, scores = (
            map(list, zip(*preds, strict=True)) if preds else ([],) * 7
        )
        return cls(
            model,
            ids,
            versions,
            np.array(ts, dtype=np.float64),
            features,
            predictions,
            scores,
        )

    @classmethod
    def concat(cls, batches: Sequence[PredictionBatch]) -> PredictionBatch:
        """One model's batches end to end (the first one's model)."""
        typed = all(b.typed for b in batches) and len({_row_class(b) for b in batches}) == 1
        return cls(
            batches[0].model,
            [i for b in batches for i in b.ids],
            [v for b in batches for v in b.versions],
            np.concatenate([b.timestamps for b in batches]),
            [f for b in batches for f in (b.features if typed else b.feature_dicts())],
            [p for b in batches for p in b.predictions],
            [s for b in batches for s in b.scores],
            typed,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def feature(self, name: str) -> list[Any]:
        """One feature's values (None where absent), read in C.

        >>> PredictionBatch("m", [], [], np.zeros(0), [{"a": 1}, {}], [], []).feature("a")
        [1, None]
        """
        if not self.typed:
            return list(map(dict.get, self.features, repeat(name)))
        attr = _row_class(self).attrs.get(name) if self.features else None
        if attr is None:
            return [None] * len(self.features)
        return list(map(attrgetter(attr), self.features))

    def feature_rows(self, names: Sequence[str]) -> list[Any] | None:
        """Each event's ``names`` (a tuple, the value itself for one name); ``None`` when one
        is absent from an event (read them with :meth:`feature`)."""
        if not self.typed:
            try:
                return list(map(itemgetter(*names), self.features))
            except KeyError:
                return None
        attrs = _row_class(self).attrs if self.features else {}
        if not set(names) <= set(attrs):
            return None
        return list(map(attrgetter(*(attrs[n] for n in names)), self.features))

    def feature_dicts(self) -> list[dict[str, Any]]:
        """Each event's features object (a typed struct's missing features left out)."""
        return self.features if not self.typed else list(map(typed_features_dict, self.features))

    def take(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> PredictionBatch:
        """The rows of a boolean mask, or at integer positions (in their order)."""
        pick = _picker(rows)
        return PredictionBatch(
            self.model,
            pick(self.ids),
            pick(self.versions),
            self.timestamps[rows],
            pick(self.features),
            pick(self.predictions),
            pick(self.scores),
            self.typed,
        )

    def events(self) -> list[Prediction]:
        """The batch as events (the bootstrap buffer, a one-by-one retry)."""
        return [
            Prediction(i, self.model, v, t, f, p, s)
            for i, v, t, f, p, s in zip(
                self.ids,
                self.versions,
                self.timestamps.tolist(),
                self.feature_dicts(),
                self.predictions,
                self.scores,
                strict=True,
            )
        ]


@dataclass(frozen=True, slots=True)
class LabelBatch:
    """One model's labels as columns, in arrival order (as :class:`PredictionBatch`).

    >>> b = LabelBatch.of("m", [Label("a", "m", 1, 5.0), Label("b", "m", 0, 6.0)])
    >>> len(b), b.take(np.array([1])).events()
    (2, [Label(id='b', model='m', label=0, timestamp=6.0)])
    """

    model: str
    ids: list[str]
    labels: list[Any]
    timestamps: npt.NDArray[np.float64]

    @classmethod
    def of(cls, model: str, labels: Sequence[Label]) -> LabelBatch:
        ids, _, values, ts = map(list, zip(*labels, strict=True)) if labels else ([],) * 4
        return cls(model, ids, values, np.array(ts, dtype=np.float64))

    @classmethod
    def concat(cls, batches: Sequence[LabelBatch]) -> LabelBatch:
        """One model's batches end to end (the first one's model)."""
        return cls(
            batches[0].model,
            [i for b in batches for i in b.ids],
            [v for b in batches for v in b.labels],
            np.concatenate([b.timestamps for b in batches]),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> LabelBatch:
        """The rows of a boolean mask, or at integer positions (in their order)."""
        pick = _picker(rows)
        return LabelBatch(self.model, pick(self.ids), pick(self.labels), self.timestamps[rows])

    def events(self) -> list[Label]:
        return list(map(Label, self.ids, repeat(self.model), self.labels, self.timestamps.tolist()))


def _picker(rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Callable[[list[Any]], list[Any]]:
    """Takes a column's rows of a boolean mask, or at integer positions (in their order)."""
    if rows.dtype == np.bool_:
        keep = rows.tolist()
        return lambda column: list(compress(column, keep))
    at = rows.tolist()
    return lambda column: [column[i] for i in at]


def typed_features_dict(row: Any) -> dict[str, Any]:
    """A typed features struct as the features object it stands for (a missing feature, null
    or absent, is left out: both read as missing)."""
    return {name: v for name, attr in row.attrs.items() if (v := getattr(row, attr)) is not None}


def _row_class(batch: PredictionBatch) -> Any:
    """The typed features' class of a batch (None for an empty one)."""
    return type(batch.features[0]) if batch.features else None


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Why a record could not become an event; ``reason`` is a bounded metric label."""

    reason: str
    detail: str


#: (topic, partition) → the next offset to process: what a checkpoint covers, what is committed.
Offsets = dict[tuple[str, int], int]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record bound for the dead-letter topic, with the headers that explain it."""

    record: RawRecord
    stream: Stream
    reason: str
    detail: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("modelmon-source-topic", self.record.topic.encode()),
            ("modelmon-source-partition", str(self.record.partition).encode()),
            ("modelmon-source-offset", str(self.record.offset).encode()),
            ("modelmon-reason", self.reason.encode()),
            ("modelmon-detail", self.detail[:500].encode("utf-8", "replace")),
        ]
