"""The decoder at its edges: score and timestamp limits, the exact error details, and the typed
fast path really deciding the usual records (the exact path is not consulted)."""

from __future__ import annotations

import orjson
import pytest

from monitor.events import DecodeError, Label, Prediction
from monitor.ingest.decode import MAX_TIMESTAMP, MIN_TIMESTAMP, Decoder, parse_timestamp
from monitor.settings import FieldMapping

KAFKA_TS = 1_795_000_000.0
NOW = 1_796_000_000.0


@pytest.fixture
def fast_only(monkeypatch: pytest.MonkeyPatch) -> Decoder:
    def no_exact_path(*args: object, **kwargs: object) -> None:
        raise AssertionError("the exact path was used")

    monkeypatch.setattr(Decoder, "_head", no_exact_path)
    return Decoder(FieldMapping(), max_future_skew=300.0)


def test_a_usual_prediction_is_decided_by_the_fast_path(fast_only: Decoder) -> None:
    raw = orjson.dumps({"id": 7, "model": "m", "version": 3, "features": {"a": 1}, "score": 0.5})
    assert fast_only.prediction(raw, KAFKA_TS, now=NOW) == Prediction(
        id="7",
        model="m",
        version="3",
        timestamp=KAFKA_TS,
        features={"a": 1},
        prediction=None,
        score=0.5,
    )


def test_a_usual_label_is_decided_by_the_fast_path(fast_only: Decoder) -> None:
    raw = orjson.dumps({"id": "e1", "model": "m", "label": 1})
    assert fast_only.label(raw, KAFKA_TS, now=NOW) == Label(
        id="e1", model="m", label=1, timestamp=KAFKA_TS
    )
    timed = orjson.dumps({"id": "e1", "model": "m", "label": "cat", "timestamp": NOW + 300})
    assert fast_only.label(timed, KAFKA_TS, now=NOW) == Label(
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


def decode(**fields: object) -> Prediction | DecodeError:
    event: dict[str, object] = {"id": "e", "model": "m", "timestamp": KAFKA_TS, "prediction": 1}
    event.update(fields)
    return Decoder(FieldMapping(), max_future_skew=300.0).prediction(
        orjson.dumps(event), KAFKA_TS, now=NOW
    )


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
def test_refusals_say_exactly_why(fields: dict[str, object], detail: str) -> None:
    out = decode(**fields)
    assert isinstance(out, DecodeError)
    assert out.detail == detail


@pytest.mark.parametrize("score", [0.0, 1.0, 0, 1, {"a": 0.0, "b": 1.0}, {"a": 0, "b": 1}])
def test_probabilities_at_both_ends_are_accepted(score: object) -> None:
    out = decode(score=score)
    assert isinstance(out, Prediction)
    expected = {k: float(v) for k, v in score.items()} if isinstance(score, dict) else score
    assert out.score == expected
