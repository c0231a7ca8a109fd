"""Bytes → :class:`~monitor.events.Prediction` / :class:`~monitor.events.Label`, or a typed error.

One record at a time (orjson, then checks in Python): the exact path, and the single definition
of what is valid. The daemon decodes a batch with :mod:`monitor.ingest.columns`, which accepts
only a subset of these records, with the same values, and leaves every other one to this path,
which names its refusal.

Pure: no I/O, no clock (the caller passes the wall-clock ``now``). The field mapping (producers
rarely let you choose their schema) is read here; the batch path's typed envelopes only rename
its flat keys. Every failure has a bounded ``reason`` used as a metric label:

``empty``, ``invalid_json``, ``not_an_object``, ``missing_field``, ``missing_id``,
``wrong_type``, ``bad_timestamp``, ``future_timestamp``; and ``internal_error``, given by the
pipeline when decoding or applying one record raised (a bug, never a crash).

What the envelope carries is checked here, so that applying it cannot fail on its content:
ids, versions, predictions and labels are scalars, and a detail never renders producer data
whole (a ``str()`` of an object nested 1,000 deep raises ``RecursionError``). Only the envelope
(id, model, timestamp, prediction/score, the features object itself) can lose a record. Feature
values pass through unchecked: one of the wrong type is counted as a type mismatch of that
feature by the model's windows (:mod:`monitor.state.layout`), and the prediction still counts
for performance and for the other features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from monitor.events import DecodeError, Label, Prediction
from monitor.settings import FieldMapping

#: Event times outside [2000-01-01, 2100-01-01) are refused: a millisecond timestamp sent as
#: seconds would otherwise jump the watermark decades ahead and empty every window.
MIN_TIMESTAMP = 946_684_800.0
MAX_TIMESTAMP = 4_102_444_800.0

REASONS = (
    "empty",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "missing_id",
    "wrong_type",
    "bad_timestamp",
    "future_timestamp",
    "internal_error",
)

_MISSING = object()


def _get(obj: Mapping[str, Any], path: str) -> Any:
    if "." not in path:
        return obj.get(path, _MISSING)
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def show(value: Any, limit: int = 40) -> str:
    """A bounded rendering of producer data for a detail: never the whole of it.

    >>> show({"a": {"b": 1}}), show("x" * 100, limit=5), show(12.5)
    ('a JSON object', "'xxxxx'", '12.5')
    >>> len(show("\U0010ffff" * 40))  # its repr: 10 characters per code point
    41
    """
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    text = repr(value[:limit] if isinstance(value, str) else value)
    # Escapes make a repr up to 10 times longer than the text: bound what is shown, not read.
    return text if len(text) <= limit + 2 else text[:limit] + "…"


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float)  # bool is an int


def parse_timestamp(value: Any) -> float | None:
    """Epoch seconds (number) or RFC 3339 string → epoch seconds; ``None`` if unusable.

    >>> parse_timestamp(1795000000.5)
    1795000000.5
    >>> parse_timestamp("2026-11-27T04:00:00Z")
    1795752000.0
    >>> parse_timestamp("2026-11-27T05:00:00+01:00")
    1795752000.0
    >>> parse_timestamp(1795000000123) is None  # milliseconds are refused, not misread
    True
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None  # RFC 3339 requires an offset; guessing the zone would shift windows
        ts = parsed.timestamp()
    else:
        return None
    if not (MIN_TIMESTAMP <= ts < MAX_TIMESTAMP) or math.isnan(ts):
        return None
    return ts


class Decoder:
    """Decodes one stream's records for the configured models, one at a time (the exact path).

    The single definition of what is valid: the batch path
    (:class:`~monitor.ingest.columns.ColumnDecoder`) accepts only a subset of these records,
    with the same values, and leaves every other one here, to be named.

    Parameters
    ----------
    fields:
        Where each field lives in the producer's JSON.
    max_future_skew:
        How far past ``now`` an event time may be (``time.max_future_skew``).
    """

    def __init__(self, fields: FieldMapping, *, max_future_skew: float) -> None:
        self._f = fields
        self._skew = max_future_skew

    def _envelope(self, raw: bytes | None) -> dict[str, Any] | DecodeError:
        if not raw:
            return DecodeError("empty", "record has no value")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return DecodeError("invalid_json", str(exc))
        if not isinstance(obj, dict):
            return DecodeError("not_an_object", f"top level is {type(obj).__name__}")
        return obj

    def _ids(self, obj: Mapping[str, Any]) -> tuple[str, str] | DecodeError:
        ident, model = _get(obj, self._f.id), _get(obj, self._f.model)
        if ident is _MISSING or ident is None:
            return DecodeError("missing_field", f"no {self._f.id!r}")
        if model is _MISSING or model is None:
            return DecodeError("missing_field", f"no {self._f.model!r}")
        if not isinstance(ident, str | int) or isinstance(ident, bool):
            return DecodeError("wrong_type", f"{self._f.id!r} must be a string, not {show(ident)}")
        if ident == "":  # else every empty id would be a duplicate of the first
            return DecodeError("missing_id", f"{self._f.id!r} is empty")
        if not isinstance(model, str):
            return DecodeError("wrong_type", f"{self._f.model!r} must be a string")
        return str(ident), model

    def _timestamp(
        self, obj: Mapping[str, Any], kafka_ts: float, now: float
    ) -> float | DecodeError:
        value = _get(obj, self._f.timestamp)
        if value is _MISSING or value is None:
            value = kafka_ts
        ts = parse_timestamp(value)
        if ts is None:
            return DecodeError("bad_timestamp", f"unusable timestamp {show(value)}")
        if ts > now + self._skew:
            return DecodeError(
                "future_timestamp",
                f"event time {ts:.0f} is {ts - now:.0f}s ahead of the wall clock "
                f"(time.max_future_skew {self._skew:.0f}s)",
            )
        return ts

    def _head(
        self, raw: bytes | None, kafka_ts: float, now: float
    ) -> tuple[dict[str, Any], tuple[str, str], float] | DecodeError:
        """What both streams share: a JSON object, its id and model, and its event time."""
        obj = self._envelope(raw)
        if isinstance(obj, DecodeError):
            return obj
        ids = self._ids(obj)
        if isinstance(ids, DecodeError):
            return ids
        ts = self._timestamp(obj, kafka_ts, now)
        if isinstance(ts, DecodeError):
            return ts
        return obj, ids, ts

    def prediction(
        self, raw: bytes | None, kafka_ts: float, *, now: float
    ) -> Prediction | DecodeError:
        """Decode a prediction record; ``kafka_ts`` is used when the event has no timestamp,
        ``now`` (wall clock, epoch seconds) bounds the event time."""
        head = self._head(raw, kafka_ts, now)
        if isinstance(head, DecodeError):
            return head
        obj, ids, ts = head
        features = _get(obj, self._f.features)
        if features is _MISSING or features is None:
            features = {}
        elif not isinstance(features, dict):
            return DecodeError("wrong_type", f"{self._f.features!r} must be an object")
        prediction = _get(obj, self._f.prediction)
        score = _get(obj, self._f.score)
        if prediction is _MISSING and score is _MISSING:
            return DecodeError(
                "missing_field", f"no {self._f.prediction!r} and no {self._f.score!r}"
            )
        if prediction is not _MISSING and prediction is not None and not _is_scalar(prediction):
            return DecodeError(
                "wrong_type", f"{self._f.prediction!r} must be a scalar, not {show(prediction)}"
            )
        score_value = _check_score(None if score is _MISSING else score)
        if isinstance(score_value, DecodeError):
            return score_value
        version = _get(obj, self._f.version)
        if version is _MISSING or version is None:
            version = None
        elif not _is_scalar(version) or isinstance(version, bool):
            return DecodeError(
                "wrong_type", f"{self._f.version!r} must be a string, not {show(version)}"
            )
        return Prediction(
            id=ids[0],
            model=ids[1],
            version=None if version is None else str(version),
            timestamp=ts,
            features=features,
            prediction=None if prediction is _MISSING else prediction,
            score=score_value,
        )

    def label(self, raw: bytes | None, kafka_ts: float, *, now: float) -> Label | DecodeError:
        """Decode a ground-truth label record."""
        head = self._head(raw, kafka_ts, now)
        if isinstance(head, DecodeError):
            return head
        obj, ids, ts = head
        label = _get(obj, self._f.label)
        if label is _MISSING or label is None:
            return DecodeError("missing_field", f"no {self._f.label!r}")
        if not isinstance(label, str | int | float):  # bool is an int: True/False labels pass
            return DecodeError("wrong_type", f"{self._f.label!r} must be a scalar")
        return Label(id=ids[0], model=ids[1], label=label, timestamp=ts)


def _check_score(score: Any) -> float | dict[str, float] | DecodeError | None:
    if score is None:
        return None
    if isinstance(score, int | float) and not isinstance(score, bool):
        if not 0.0 <= score <= 1.0:
            return DecodeError("wrong_type", "score must be a probability in [0, 1]")
        return float(score)
    if isinstance(score, dict):
        for cls, p in score.items():
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
                return DecodeError("wrong_type", f"score for class {show(cls)} must be in [0, 1]")
        return {str(k): float(v) for k, v in score.items()}
    return DecodeError("wrong_type", "score must be a number or an object of class probabilities")
