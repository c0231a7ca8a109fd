"""Decoding: every malformed shape becomes a typed error with a bounded reason."""

from __future__ import annotations

import orjson
import pytest

from monitor.events import DecodeError, Label, Prediction
from monitor.ingest.decode import REASONS, Decoder
from monitor.settings import FieldMapping

KAFKA_TS = 1_795_000_000.0


@pytest.fixture
def dec() -> Decoder:
    return Decoder(FieldMapping())


def good(**over: object) -> dict[str, object]:
    event: dict[str, object] = {
        "id": "9f1c",
        "model": "fraud",
        "version": "2026-11-01",
        "timestamp": 1795000100.5,
        "features": {"amount": 41.5, "country": "DE", "age": None},
        "prediction": 1,
        "score": 0.83,
    }
    event.update(over)
    return event


def test_valid_prediction(dec: Decoder) -> None:
    p = dec.prediction(orjson.dumps(good()), KAFKA_TS)
    assert isinstance(p, Prediction)
    assert (p.id, p.model, p.version, p.timestamp, p.score) == (
        "9f1c",
        "fraud",
        "2026-11-01",
        1795000100.5,
        0.83,
    )
    assert p.features["amount"] == 41.5


def test_missing_timestamp_falls_back_to_kafka_time(dec: Decoder) -> None:
    event = good()
    del event["timestamp"]
    p = dec.prediction(orjson.dumps(event), KAFKA_TS)
    assert isinstance(p, Prediction) and p.timestamp == KAFKA_TS


def test_rfc3339_timestamp(dec: Decoder) -> None:
    p = dec.prediction(orjson.dumps(good(timestamp="2026-11-27T04:00:00Z")), KAFKA_TS)
    assert isinstance(p, Prediction) and p.timestamp == 1795752000.0


def test_multiclass_scores_and_regression_without_score(dec: Decoder) -> None:
    p = dec.prediction(orjson.dumps(good(score={"a": 0.7, "b": 0.3})), KAFKA_TS)
    assert isinstance(p, Prediction) and p.score == {"a": 0.7, "b": 0.3}
    event = good(prediction=12.5)
    del event["score"]
    p = dec.prediction(orjson.dumps(event), KAFKA_TS)
    assert isinstance(p, Prediction) and p.score is None and p.prediction == 12.5


def test_field_mapping_with_nested_paths() -> None:
    fields = FieldMapping(id="meta.request_id", model="meta.model", features="inputs")
    dec = Decoder(fields)
    raw = orjson.dumps(
        {"meta": {"request_id": "r1", "model": "fraud"}, "inputs": {"amount": 3}, "prediction": 0}
    )
    p = dec.prediction(raw, KAFKA_TS)
    assert isinstance(p, Prediction) and (p.id, p.features) == ("r1", {"amount": 3})


MALFORMED = [
    (b"", "empty"),
    (None, "empty"),
    (b"{not json", "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'"a string"', "not_an_object"),
    (orjson.dumps({k: v for k, v in good().items() if k != "id"}), "missing_field"),
    (orjson.dumps({k: v for k, v in good().items() if k != "model"}), "missing_field"),
    (
        orjson.dumps({k: v for k, v in good().items() if k not in ("prediction", "score")}),
        "missing_field",
    ),
    (orjson.dumps(good(id=None)), "missing_field"),
    (orjson.dumps(good(id=[1])), "wrong_type"),
    (orjson.dumps(good(id=True)), "wrong_type"),
    (orjson.dumps(good(model=7)), "wrong_type"),
    (orjson.dumps(good(features=[1, 2])), "wrong_type"),
    (orjson.dumps(good(score=1.5)), "wrong_type"),
    (orjson.dumps(good(score="high")), "wrong_type"),
    (orjson.dumps(good(score={"a": "x"})), "wrong_type"),
    (orjson.dumps(good(timestamp="yesterday")), "bad_timestamp"),
    (orjson.dumps(good(timestamp="2026-11-27T04:00:00")), "bad_timestamp"),  # no offset
    (orjson.dumps(good(timestamp=1795000000123)), "bad_timestamp"),  # milliseconds
    (orjson.dumps(good(timestamp=-5)), "bad_timestamp"),
    (orjson.dumps(good(timestamp=True)), "bad_timestamp"),
]


@pytest.mark.parametrize(("raw", "reason"), MALFORMED)
def test_malformed_predictions(dec: Decoder, raw: bytes | None, reason: str) -> None:
    err = dec.prediction(raw, KAFKA_TS)
    assert isinstance(err, DecodeError), err
    assert err.reason == reason, err.detail
    assert err.reason in REASONS


def test_unknown_model_features_are_not_type_checked(dec: Decoder) -> None:
    p = dec.prediction(orjson.dumps(good(model="other", features={"amount": "x"})), KAFKA_TS)
    assert isinstance(p, Prediction)


@pytest.mark.parametrize(
    "features",
    [{"amount": "41.5"}, {"amount": True}, {"country": {"x": 1}}, {"amount": [1], "country": 2.5}],
)
def test_a_wrong_typed_feature_value_does_not_lose_the_prediction(
    dec: Decoder, features: dict[str, object]
) -> None:
    """Issue 11 item 3: only the envelope dead-letters; the windows count the mismatch."""
    p = dec.prediction(orjson.dumps(good(features=features)), KAFKA_TS)
    assert isinstance(p, Prediction), p
    assert p.features == features and p.prediction == good()["prediction"]


def test_labels(dec: Decoder) -> None:
    lab = dec.label(b'{"id": "9f1c", "model": "fraud", "label": 0, "timestamp": 1795003600}', 0.0)
    assert isinstance(lab, Label) and (lab.id, lab.label, lab.timestamp) == ("9f1c", 0, 1795003600)
    for raw, reason in [
        (b'{"id": "1", "model": "fraud"}', "missing_field"),
        (b'{"id": "1", "model": "fraud", "label": [1]}', "wrong_type"),
        (b'{"model": "fraud", "label": 1}', "missing_field"),
        (b"nope", "invalid_json"),
    ]:
        err = dec.label(raw, KAFKA_TS)
        assert isinstance(err, DecodeError) and err.reason == reason
