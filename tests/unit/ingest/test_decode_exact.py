"""The decoder at its edges: score and timestamp limits, the exact error details, and the
columns really deciding the usual records (the exact path is not consulted) while the exact
decoder never consults the typed envelopes."""

from __future__ import annotations

import orjson
import pytest

from monitor.events import DecodeError, Label, Prediction
from monitor.ingest.decode import MAX_TIMESTAMP, MIN_TIMESTAMP, Decoder, parse_timestamp, show
from monitor.ingest.fast_decode import FastPath, TypedPredictions
from monitor.settings import FieldMapping
from tests.support.decoding import BatchOfOne

KAFKA_TS = 1_795_000_000.0
NOW = 1_796_000_000.0
EXACT = Decoder(FieldMapping(), max_future_skew=300.0)
BATCH = BatchOfOne(FieldMapping(), max_future_skew=300.0)


def refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("the other path was used")


@pytest.fixture
def columns_only(monkeypatch: pytest.MonkeyPatch) -> BatchOfOne:
    monkeypatch.setattr(Decoder, "prediction", refuse)
    monkeypatch.setattr(Decoder, "label", refuse)
    return BatchOfOne(FieldMapping(), max_future_skew=300.0)


def test_a_usual_prediction_is_decided_by_the_columns(columns_only: BatchOfOne) -> None:
    raw = orjson.dumps({"id": 7, "model": "m", "version": 3, "features": {"a": 1}, "score": 0.5})
    assert columns_only.prediction(raw, KAFKA_TS, now=NOW) == Prediction(
        id="7",
        model="m",
        version="3",
        timestamp=KAFKA_TS,
        features={"a": 1},
        prediction=None,
        score=0.5,
    )


def test_a_usual_label_is_decided_by_the_columns(columns_only: BatchOfOne) -> None:
    raw = orjson.dumps({"id": "e1", "model": "m", "label": 1})
    assert columns_only.label(raw, KAFKA_TS, now=NOW) == Label(
        id="e1", model="m", label=1, timestamp=KAFKA_TS
    )
    timed = orjson.dumps({"id": "e1", "model": "m", "label": "cat", "timestamp": NOW + 300})
    assert columns_only.label(timed, KAFKA_TS, now=NOW) == Label(
        id="e1",
        model="m",
        label="cat",
        timestamp=NOW + 300,  # exactly max_future_skew ahead
    )


def test_event_times_from_2000_up_to_but_excluding_2100() -> None:
    assert parse_timestamp(MIN_TIMESTAMP) == MIN_TIMESTAMP == 946_684_800.0
    assert parse_timestamp("2000-01-01T00:00:00Z") == MIN_TIMESTAMP
    assert parse_timestamp(MIN_TIMESTAMP - 0.5) is None
    assert parse_timestamp(MAX_TIMESTAMP - 0.5) == MAX_TIMESTAMP - 0.5
    assert parse_timestamp(MAX_TIMESTAMP) is None
    assert parse_timestamp("2100-01-01T00:00:00Z") is None


def decode(dec: Decoder | BatchOfOne, **fields: object) -> Prediction | DecodeError:
    event: dict[str, object] = {"id": "e", "model": "m", "timestamp": KAFKA_TS, "prediction": 1}
    event.update(fields)
    return dec.prediction(orjson.dumps(event), KAFKA_TS, now=NOW)


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"score": 1.5}, "score must be a probability in [0, 1]"),
        ({"score": -0.25}, "score must be a probability in [0, 1]"),
        ({"score": "high"}, "score must be a number or an object of class probabilities"),
        ({"score": {"a": 0.5, "b": 1.5}}, "score for class 'b' must be in [0, 1]"),
        ({"score": {"a": True}}, "score for class 'a' must be in [0, 1]"),
        ({"timestamp": "soon"}, "unusable timestamp 'soon'"),
        (
            {"timestamp": NOW + 1000},
            "event time 1796001000 is 1000s ahead of the wall clock (time.max_future_skew 300s)",
        ),
    ],
)
@pytest.mark.parametrize("dec", [EXACT, BATCH], ids=["exact path", "batch path"])
def test_refusals_say_exactly_why(
    dec: Decoder | BatchOfOne, fields: dict[str, object], detail: str
) -> None:
    out = decode(dec, **fields)
    assert isinstance(out, DecodeError)
    assert out.detail == detail


@pytest.mark.parametrize("score", [0.0, 1.0, 0, 1, {"a": 0.0, "b": 1.0}, {"a": 0, "b": 1}])
def test_probabilities_at_both_ends_are_accepted(score: object) -> None:
    out = decode(EXACT, score=score)
    assert isinstance(out, Prediction)
    expected = {k: float(v) for k, v in score.items()} if isinstance(score, dict) else score
    assert out.score == expected
    # The columns accept them too (not only through the exact fallback), with the same values.
    raw = orjson.dumps({"id": "e", "model": "m", "timestamp": KAFKA_TS, "score": score})
    assert repr(BATCH.prediction_by_columns(raw, KAFKA_TS, now=NOW)) == repr(
        EXACT.prediction(raw, KAFKA_TS, now=NOW)
    )


def test_the_exact_path_decides_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline sends a record the columns refused to the exact decoder: it must not try
    the typed envelopes again."""
    for kind in (FastPath, TypedPredictions):
        monkeypatch.setattr(kind, "__call__", refuse)
        monkeypatch.setattr(kind, "many", refuse)
    prediction = orjson.dumps({"id": "e", "model": "m", "prediction": 1})
    label = orjson.dumps({"id": "e", "model": "m", "label": 0})
    assert isinstance(EXACT.prediction(prediction, KAFKA_TS, now=NOW), Prediction)
    assert isinstance(EXACT.label(label, KAFKA_TS, now=NOW), Label)


def test_show_bounds_what_it_renders() -> None:
    assert (show({"a": 1}), show([1]), show(None)) == ("a JSON object", "a JSON array", "None")
    assert show("x" * 100) == "'" + "x" * 40 + "'"  # 40 characters of the text, quoted
    assert show("x" * 40, limit=5) == "'xxxxx'"
    long_number = 10**42  # a repr of 43 characters: 40 of them and an ellipsis
    assert show(long_number) == str(long_number)[:40] + "…"
    assert show(10**41) == str(10**41)  # 42 characters fit


BASE: dict[str, object] = {"id": "e", "model": "m", "prediction": 1, "label": 1}


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (b"", "empty", "record has no value"),
        (b"[1]", "not_an_object", "top level is list"),
        (b'{"model": "m", "prediction": 1}', "missing_field", "no 'id'"),
        (b'{"id": "e", "prediction": 1}', "missing_field", "no 'model'"),
        ({**BASE, "id": [1]}, "wrong_type", "'id' must be a string, not a JSON array"),
        ({**BASE, "model": 5}, "wrong_type", "'model' must be a string"),
        ({**BASE, "features": [1]}, "wrong_type", "'features' must be an object"),
        ({"id": "e", "model": "m"}, "missing_field", "no 'prediction' and no 'score'"),
        ({**BASE, "prediction": {"a": 1}}, "wrong_type", "'prediction' must be a scalar, not a "
         "JSON object"),
        ({**BASE, "version": [1]}, "wrong_type", "'version' must be a string, not a JSON array"),
        ({**BASE, "version": True}, "wrong_type", "'version' must be a string, not True"),
    ],
)  # fmt: skip
def test_exact_path_refusals_name_the_field(
    raw: bytes | dict[str, object], reason: str, detail: str
) -> None:
    data = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    assert EXACT.prediction(data, KAFKA_TS, now=NOW) == DecodeError(reason, detail)


def test_exact_path_label_refusals_and_invalid_json() -> None:
    wrong = orjson.dumps({**BASE, "label": [1]})
    assert EXACT.label(wrong, KAFKA_TS, now=NOW) == DecodeError(
        "wrong_type", "'label' must be a scalar"
    )
    broken = EXACT.prediction(b'{"id": ', KAFKA_TS, now=NOW)
    assert isinstance(broken, DecodeError) and broken.reason == "invalid_json"
    assert "line 1 column" in broken.detail  # orjson's own description of where it failed


@pytest.mark.parametrize(("version", "text"), [(3, "3"), (2.5, "2.5"), ("v1", "v1"), (None, None)])
def test_exact_path_versions_are_text(version: object, text: str | None) -> None:
    out = EXACT.prediction(orjson.dumps({**BASE, "version": version}), KAFKA_TS, now=NOW)
    assert isinstance(out, Prediction)
    assert out.version == text
