"""Decoding: every malformed shape becomes a typed error with a bounded reason.

Each test runs on the exact decoder and on the daemon's path (a batch of one through the
columns, the exact decoder for what they refuse): both must give the same events and reasons.
"""

from __future__ import annotations

import orjson
import pytest

from monitor.events import DecodeError, Label, Prediction
from monitor.ingest.decode import REASONS, Decoder
from monitor.settings import FieldMapping
from tests.support.decoding import BatchOfOne

KAFKA_TS = 1_795_000_000.0
NOW = 1_796_000_000.0  # the wall clock: every event time above is before it
SKEW = 300.0


AnyDecoder = Decoder | BatchOfOne


@pytest.fixture(params=[Decoder, BatchOfOne], ids=["exact path", "batch path"])
def dec(request: pytest.FixtureRequest) -> AnyDecoder:
    return request.param(FieldMapping(), max_future_skew=SKEW)  # type: ignore[no-any-return]


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


def test_valid_prediction(dec: AnyDecoder) -> None:
    p = dec.prediction(orjson.dumps(good()), KAFKA_TS, now=NOW)
    assert isinstance(p, Prediction)
    assert (p.id, p.model, p.version, p.timestamp, p.score) == (
        "9f1c",
        "fraud",
        "2026-11-01",
        1795000100.5,
        0.83,
    )
    assert p.features["amount"] == 41.5


def test_missing_timestamp_falls_back_to_kafka_time(dec: AnyDecoder) -> None:
    event = good()
    del event["timestamp"]
    p = dec.prediction(orjson.dumps(event), KAFKA_TS, now=NOW)
    assert isinstance(p, Prediction) and p.timestamp == KAFKA_TS


def test_rfc3339_timestamp(dec: AnyDecoder) -> None:
    p = dec.prediction(orjson.dumps(good(timestamp="2026-11-27T04:00:00Z")), KAFKA_TS, now=NOW)
    assert isinstance(p, Prediction) and p.timestamp == 1795752000.0


def test_multiclass_scores_and_regression_without_score(dec: AnyDecoder) -> None:
    p = dec.prediction(orjson.dumps(good(score={"a": 0.7, "b": 0.3})), KAFKA_TS, now=NOW)
    assert isinstance(p, Prediction) and p.score == {"a": 0.7, "b": 0.3}
    event = good(prediction=12.5)
    del event["score"]
    p = dec.prediction(orjson.dumps(event), KAFKA_TS, now=NOW)
    assert isinstance(p, Prediction) and p.score is None and p.prediction == 12.5


@pytest.mark.parametrize("kind", [Decoder, BatchOfOne], ids=["exact path", "batch path"])
def test_field_mapping_with_nested_paths(kind: type[AnyDecoder]) -> None:
    fields = FieldMapping(id="meta.request_id", model="meta.model", features="inputs")
    dec = kind(fields, max_future_skew=SKEW)
    raw = orjson.dumps(
        {"meta": {"request_id": "r1", "model": "fraud"}, "inputs": {"amount": 3}, "prediction": 0}
    )
    p = dec.prediction(raw, KAFKA_TS, now=NOW)
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
def test_malformed_predictions(dec: AnyDecoder, raw: bytes | None, reason: str) -> None:
    err = dec.prediction(raw, KAFKA_TS, now=NOW)
    assert isinstance(err, DecodeError), err
    assert err.reason == reason, err.detail
    assert err.reason in REASONS


def test_unknown_model_features_are_not_type_checked(dec: AnyDecoder) -> None:
    p = dec.prediction(
        orjson.dumps(good(model="other", features={"amount": "x"})), KAFKA_TS, now=NOW
    )
    assert isinstance(p, Prediction)


@pytest.mark.parametrize(
    "features",
    [{"amount": "41.5"}, {"amount": True}, {"country": {"x": 1}}, {"amount": [1], "country": 2.5}],
)
def test_a_wrong_typed_feature_value_does_not_lose_the_prediction(
    dec: AnyDecoder, features: dict[str, object]
) -> None:
    """Issue 11 item 3: only the envelope dead-letters; the windows count the mismatch."""
    p = dec.prediction(orjson.dumps(good(features=features)), KAFKA_TS, now=NOW)
    assert isinstance(p, Prediction), p
    assert p.features == features and p.prediction == good()["prediction"]


def test_labels(dec: AnyDecoder) -> None:
    lab = dec.label(
        b'{"id": "9f1c", "model": "fraud", "label": 0, "timestamp": 1795003600}', 0.0, now=NOW
    )
    assert isinstance(lab, Label) and (lab.id, lab.label, lab.timestamp) == ("9f1c", 0, 1795003600)
    for raw, reason in [
        (b'{"id": "1", "model": "fraud"}', "missing_field"),
        (b'{"id": "1", "model": "fraud", "label": [1]}', "wrong_type"),
        (b'{"model": "fraud", "label": 1}', "missing_field"),
        (b"nope", "invalid_json"),
    ]:
        err = dec.label(raw, KAFKA_TS, now=NOW)
        assert isinstance(err, DecodeError) and err.reason == reason


# -- hostile records (issue 10) -----------------------------------------------------------------


def nested(depth: int, leaf: bytes = b"1", obj: bool = False) -> bytes:
    """JSON nested ``depth`` levels; written by hand, as orjson writes at most 254."""
    if obj:
        return b'{"a":' * depth + leaf + b"}" * depth
    return b"[" * depth + leaf + b"]" * depth


def splice(field: str, raw: bytes) -> bytes:
    """A valid prediction with ``field`` replaced by raw JSON bytes."""
    body = orjson.dumps({k: v for k, v in good().items() if k != field})
    return body[:-1] + b"," + orjson.dumps(field) + b":" + raw + b"}"


HOSTILE = [
    (splice("timestamp", nested(1000)), "bad_timestamp"),
    (splice("timestamp", nested(1000, obj=True)), "bad_timestamp"),
    (splice("version", nested(1000, b'"v"', obj=True)), "wrong_type"),
    (splice("version", b"[1]"), "wrong_type"),
    (splice("version", b"true"), "wrong_type"),
    (splice("prediction", nested(1000)), "wrong_type"),
    (splice("prediction", b'{"class": 1}'), "wrong_type"),
    (splice("id", nested(1000, b'"x"', obj=True)), "wrong_type"),
    (splice("id", b'""'), "missing_id"),
    (splice("score", nested(1000, b"0.5", obj=True)), "wrong_type"),
    (splice("timestamp", b"4.0e9"), "future_timestamp"),
    (splice("timestamp", f"{NOW + SKEW + 0.001!r}".encode()), "future_timestamp"),
    (splice("timestamp", b'"2096-10-02T07:06:40Z"'), "future_timestamp"),
]


@pytest.mark.parametrize(("raw", "reason"), HOSTILE)
def test_hostile_predictions_are_refused_with_a_reason(
    dec: AnyDecoder, raw: bytes, reason: str
) -> None:
    err = dec.prediction(raw, KAFKA_TS, now=NOW)
    assert isinstance(err, DecodeError), err
    assert (err.reason, err.reason in REASONS) == (reason, True), err.detail
    assert len(err.detail) <= 200, "a detail never renders producer data whole"


def test_hostile_labels_are_refused_with_a_reason(dec: AnyDecoder) -> None:
    def label(**raw: bytes) -> bytes:
        fields = {"id": b'"9f1c"', "model": b'"fraud"', "label": b"1", "timestamp": b"1795000000"}
        fields.update(raw)
        return b"{" + b",".join(orjson.dumps(k) + b":" + v for k, v in fields.items()) + b"}"

    for raw, reason in [
        (label(timestamp=nested(1000)), "bad_timestamp"),
        (label(timestamp=b"4.0e9"), "future_timestamp"),
        (label(id=b'""'), "missing_id"),
        (label(label=nested(1000)), "wrong_type"),
    ]:
        err = dec.label(raw, KAFKA_TS, now=NOW)
        assert isinstance(err, DecodeError) and err.reason == reason, (raw[:60], err)


def test_an_event_time_up_to_now_plus_the_skew_is_accepted(dec: AnyDecoder) -> None:
    p = dec.prediction(splice("timestamp", f"{NOW + SKEW!r}".encode()), KAFKA_TS, now=NOW)
    assert isinstance(p, Prediction) and p.timestamp == NOW + SKEW
    # The Kafka timestamp, used when the event has none, is bounded the same way.
    event = good()
    del event["timestamp"]
    err = dec.prediction(orjson.dumps(event), NOW + SKEW + 1, now=NOW)
    assert isinstance(err, DecodeError) and err.reason == "future_timestamp"


def test_ids_zero_and_numeric_versions_are_representable(dec: AnyDecoder) -> None:
    p = dec.prediction(orjson.dumps(good(id=0, version=3)), KAFKA_TS, now=NOW)
    assert isinstance(p, Prediction) and (p.id, p.version) == ("0", "3")


def test_unknown_features_may_be_anything_they_are_counted_not_stored(dec: AnyDecoder) -> None:
    raw = splice("features", b'{"amount": 1.0, "deep": ' + nested(1000) + b"}")
    p = dec.prediction(raw, KAFKA_TS, now=NOW)
    assert isinstance(p, Prediction) and p.features["amount"] == 1.0
