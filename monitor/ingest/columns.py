"""A batch of one stream's raw values → columns, with no object per event (the usual batch).

The typed envelopes of :mod:`monitor.ingest.fast_decode` decode each value in C; the checks the
:class:`~monitor.ingest.decode.Decoder` makes one event at a time (the event time's bounds, an
id or version spelled as a string, a prediction or a score present) run here on whole columns
with numpy. A value they do not accept is left to the decoder's exact path, one by one, which
names the refusal: the rows accepted here are a subset of those it accepts, with the same values
(the tests hold the two against each other, on single records and on hostile batches).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from msgspec import UNSET

from monitor.events import LabelBatch, PredictionBatch, typed_features_dict
from monitor.ingest.decode import MAX_TIMESTAMP, MIN_TIMESTAMP, parse_timestamp
from monitor.ingest.fast_decode import (
    LabelEnvelope,
    PredictionEnvelope,
    TypedPredictions,
    fast_paths,
    unset_as,
)
from monitor.settings import FieldMapping
from monitor.vocabulary import FeatureKind

#: Positions accepted (ascending), each row's model, the rows (their model ``""``: the caller
#: groups them by model and partition).
Columns = tuple[list[int], list[str], Any]


class ColumnDecoder:
    """Decodes batches of raw values into :class:`~monitor.events.PredictionBatch` and
    :class:`~monitor.events.LabelBatch` columns with the typed paths of ``fields`` (and of
    each of ``models``' features: :class:`~monitor.ingest.fast_decode.TypedPredictions`)."""

    def __init__(
        self,
        fields: FieldMapping,
        *,
        max_future_skew: float,
        models: Mapping[str, Mapping[str, FeatureKind]] | None = None,
    ) -> None:
        self._paths = fast_paths(fields)
        self._typed = (
            TypedPredictions(models, self._paths[0].keys) if self._paths and models else None
        )
        self._skew = max_future_skew

    def predictions(
        self, raws: Sequence[bytes | None], kafka_ts: Sequence[float], *, now: float
    ) -> tuple[list[int], list[str], PredictionBatch]:
        """The predictions the typed paths accept, as columns (see :data:`Columns`)."""
        if self._paths is None:
            return [], [], PredictionBatch.of("", [])
        fast, typed = self._paths[0], self._typed
        envs: list[Any] = (typed or fast).many(raws)
        if typed is not None and None in envs:  # the envelope where the typed path refused
            pairs = zip(envs, raws, strict=True)
            envs = [env if env is not None or not raw else fast(raw) for env, raw in pairs]
        at, good, kafka_ts = _present(envs, kafka_ts)
        ts = self._times([env.timestamp for env in good], kafka_ts, now)
        ok = ~np.isnan(ts)
        predictions = [env.prediction for env in good]
        scores: list[Any] = [env.score for env in good]
        if UNSET in predictions:
            either = zip(predictions, scores, strict=True)
            ok &= np.fromiter(
                (p is not UNSET or s is not UNSET for p, s in either), dtype=bool, count=len(good)
            )
            predictions = [unset_as(p, None) for p in predictions]
        if UNSET in scores:
            scores = [unset_as(s, None) for s in scores]
        versions: list[Any] = [env.version for env in good]
        if set(map(type, versions)) - {str, type(None)}:
            versions = [None if v is None else str(v) for v in versions]
        features: list[Any] = [env.features for env in good]
        all_typed = typed is not None and set(map(type, good)) <= typed.classes
        if None in features:
            features = [
                (cast(Any, env).no_features if all_typed else {}) if f is None else f
                for env, f in zip(good, features, strict=True)
            ]
        if not all_typed and typed is not None and set(map(type, good)) & typed.classes:
            features = [f if isinstance(f, dict) else typed_features_dict(f) for f in features]
        batch = PredictionBatch(
            "", _ids(good), versions, ts, features, predictions, scores, all_typed
        )
        return _kept(at, [env.model for env in good], batch, ok)

    def labels(
        self, raws: Sequence[bytes | None], kafka_ts: Sequence[float], *, now: float
    ) -> tuple[list[int], list[str], LabelBatch]:
        """The labels the typed path accepts, as columns (see :data:`Columns`)."""
        if self._paths is None:
            return [], [], LabelBatch.of("", [])
        fast = self._paths[1]
        at, good, kafka_ts = _present(fast.many(raws), kafka_ts)
        ts = self._times([env.timestamp for env in good], kafka_ts, now)
        batch = LabelBatch("", _ids(good), [env.label for env in good], ts)
        return _kept(at, [env.model for env in good], batch, ~np.isnan(ts))

    def _times(
        self, values: list[float | str | None], kafka_ts: Sequence[float], now: float
    ) -> npt.NDArray[np.float64]:
        """Each event time as the decoder reads it (``kafka_ts`` where there is none), NaN
        where it refuses one."""
        if set(map(type, values)) <= {float, int}:
            ts = np.array(values, dtype=np.float64)
            ts[~((ts >= MIN_TIMESTAMP) & (ts < MAX_TIMESTAMP))] = np.nan
        else:
            pairs = zip(values, kafka_ts, strict=True)
            parsed = [parse_timestamp(k if v is None else v) for v, k in pairs]
            ts = np.array([math.nan if t is None else t for t in parsed], dtype=np.float64)
        ts[ts > now + self._skew] = np.nan
        return ts


def _present(envs: list[Any], kafka_ts: Sequence[float]) -> tuple[list[int], list[Any], Any]:
    """The decoded envelopes, their positions and their records' Kafka times."""
    if None not in envs:
        return list(range(len(envs))), envs, kafka_ts
    at = [i for i, env in enumerate(envs) if env is not None]
    return at, [envs[i] for i in at], [kafka_ts[i] for i in at]


def _ids(envs: list[PredictionEnvelope] | list[LabelEnvelope]) -> list[str]:
    """Each envelope's id as a string (an integer id is spelled as the exact path spells it)."""
    ids: list[Any] = [env.id for env in envs]
    return list(map(str, ids)) if set(map(type, ids)) - {str} else ids


def _kept(at: list[int], models: list[str], batch: Any, ok: npt.NDArray[np.bool_]) -> Columns:
    """Only the rows ``ok`` holds (the others go the exact way)."""
    if ok.all():
        return at, models, batch
    keep = ok.tolist()
    return (
        [i for i, k in zip(at, keep, strict=True) if k],
        [m for m, k in zip(models, keep, strict=True) if k],
        batch.take(ok),
    )
