"""One record decoded the way the daemon decodes it, with the exact decoder's call shape.

:meth:`monitor.ingest.route.Pipeline.decode` decodes a batch into columns
(:class:`~monitor.ingest.columns.ColumnDecoder`) and sends each record they refuse through the
exact :class:`~monitor.ingest.decode.Decoder`. :class:`BatchOfOne` does the same with a batch of
one record, so that a test can hold the daemon's path against the exact one, record by record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from monitor.events import DecodeError, Label, LabelBatch, Prediction, PredictionBatch
from monitor.ingest.columns import ColumnDecoder
from monitor.ingest.decode import Decoder
from monitor.settings import FieldMapping
from monitor.vocabulary import FeatureKind


class BatchOfOne:
    """Decodes a record as a one-record batch through the columns, else the exact way.

    Unlike the pipeline, it lets an exception of the columns through: a test must see it.

    Parameters
    ----------
    fields:
        Where each field lives in the producer's JSON.
    max_future_skew:
        How far past ``now`` an event time may be.
    models:
        Each configured model's features and kinds (their predictions get typed features).
    """

    def __init__(
        self,
        fields: FieldMapping,
        *,
        max_future_skew: float,
        models: Mapping[str, Mapping[str, FeatureKind]] | None = None,
    ) -> None:
        self.columns = ColumnDecoder(fields, max_future_skew=max_future_skew, models=models)
        self.exact = Decoder(fields, max_future_skew=max_future_skew)

    def prediction(
        self, raw: bytes | None, kafka_ts: float, *, now: float
    ) -> Prediction | DecodeError:
        """The prediction as the daemon decodes it, or the exact path's refusal."""
        event = self.prediction_by_columns(raw, kafka_ts, now=now)
        return self.exact.prediction(raw, kafka_ts, now=now) if event is None else event

    def label(self, raw: bytes | None, kafka_ts: float, *, now: float) -> Label | DecodeError:
        """The label as the daemon decodes it, or the exact path's refusal."""
        event = self.label_by_columns(raw, kafka_ts, now=now)
        return self.exact.label(raw, kafka_ts, now=now) if event is None else event

    def prediction_by_columns(
        self, raw: bytes | None, kafka_ts: float, *, now: float
    ) -> Prediction | None:
        """The prediction the columns decode, ``None`` if they leave it to the exact path."""
        event: Prediction | None = _alone(*self.columns.predictions([raw], [kafka_ts], now=now))
        return event

    def label_by_columns(self, raw: bytes | None, kafka_ts: float, *, now: float) -> Label | None:
        """The label the columns decode, ``None`` if they leave it to the exact path."""
        event: Label | None = _alone(*self.columns.labels([raw], [kafka_ts], now=now))
        return event


def _alone(at: list[int], models: list[str], batch: PredictionBatch | LabelBatch) -> Any:
    """The one row's event with its model set, as the pipeline groups it; ``None`` if refused."""
    assert len(at) == len(models) == len(batch) <= 1 and at in ([], [0]), (at, models)
    return replace(batch, model=models[0]).events()[0] if at else None
