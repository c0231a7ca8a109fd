"""The typed envelopes, in the columns the daemon decodes with, decode exactly what the exact
path decodes, or leave it to it.

Every input is decoded twice, by the exact decoder and as the daemon decodes it (a batch of one
through the columns, the exact decoder for what they refuse), and the results must be identical
(``repr`` tells ``1`` from ``1.0`` and ``True``, and ``-0.0`` from ``0.0``).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.events import Prediction
from monitor.ingest.decode import Decoder
from monitor.ingest.fast_decode import TypedPredictions, fast_paths
from monitor.settings import FieldMapping
from tests.support.decoding import BatchOfOne

from .test_decode_fuzz import JSON, NOW, NUMBERS, SCALARS, TEXT

BATCH = BatchOfOne(FieldMapping(), max_future_skew=300.0)
EXACT = Decoder(FieldMapping(), max_future_skew=300.0)
#: Values a field of a valid envelope may take, and neighbours that it may not.
FIELD_VALUES = st.one_of(
    SCALARS,
    st.sampled_from(["", "fraud", NOW - 10, NOW + 400, "2026-11-27T04:00:00Z", 2**63, 2**64 - 1]),
    st.dictionaries(TEXT, st.one_of(SCALARS, NUMBERS), max_size=4),
    st.dictionaries(st.sampled_from(["0", "1", "a"]), st.floats(-0.5, 1.5), max_size=3),
    JSON,
)
FIELDS = ("id", "model", "version", "timestamp", "features", "prediction", "score", "label")


def same(raw: bytes | None) -> None:
    for batch, exact in ((BATCH.prediction, EXACT.prediction), (BATCH.label, EXACT.label)):
        assert repr(batch(raw, NOW - 60, now=NOW)) == repr(exact(raw, NOW - 60, now=NOW))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {"id": st.one_of(st.text(max_size=3), NUMBERS), "model": st.just("fraud")},
        optional=dict.fromkeys(FIELDS[2:], FIELD_VALUES) | {"extra": SCALARS},
    )
)
def test_envelopes_decode_the_same(obj: dict[str, Any]) -> None:
    same(orjson.dumps(obj))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS) | TEXT, JSON, max_size=10))
def test_any_object_decodes_the_same(obj: dict[str, Any]) -> None:
    same(orjson.dumps(obj))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_any_bytes_decode_the_same(raw: bytes) -> None:
    same(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id":"a","model":"m","prediction":1,"features":{"x":18446744073709551616}}',
        b'{"id":"a","model":"m","prediction":1,"features":{"x":18446744073709551615}}',
        b'{"id":"a","model":"m","prediction":1,"features":{"x":-9223372036854775809}}',
        b'{"id":"a","model":"m","prediction":1,"features":{"x":1e400}}',
        b'{"id":"a","model":"m","prediction":1,"extra":"\xff"}',
        b'{"id":"a","model":"m","prediction":1,"extra":1e400}',
        b'{"id":"a","model":"m","prediction":1,"features":{"x":1,"x":[2]}}',
        b'{"id":"a","model":"m","prediction":1,"features":{"x":-0.0,"y":true,"z":[1]}}',
        b'{"id":"a","id":"","model":"m","prediction":1}',
        b'{"id":"a","model":"m","score":null}',
        b'{"id":"a","model":"m","score":{"a":1,"b":0.25}}',
        b'{"id":"a","model":"m","score":true}',
        b'{"id":"a","model":"m","label":false,"timestamp":"2026-11-27T04:00:00+01:00"}',
        b'{"id":"a","model":"m","label":1,"timestamp":true}',
        b'\xef\xbb\xbf{"id":"a","model":"m","prediction":1}',
    ],
)
def test_edges_decode_the_same(raw: bytes) -> None:
    same(raw)


def test_the_usual_event_is_decided_by_the_columns() -> None:
    paths = fast_paths(FieldMapping())
    assert paths is not None
    raw = orjson.dumps(
        {
            "id": "e1",
            "model": "fraud",
            "version": "v1",
            "timestamp": NOW - 5,
            "features": {"amount": 12.5, "country": "DE", "n": 3, "flag": None},
            "prediction": 1,
            "score": 0.75,
        }
    )
    assert paths[0](raw) is not None
    assert isinstance(out := BATCH.prediction_by_columns(raw, NOW, now=NOW), Prediction)
    assert repr(out) == repr(EXACT.prediction(raw, NOW, now=NOW))
    assert out.features == {"amount": 12.5, "country": "DE", "n": 3, "flag": None}


def test_a_key_of_the_producers_own_keeps_the_fast_path_unless_the_record_is_invalid() -> None:
    """A top-level key outside the mapping is skipped once orjson has read the record whole:
    msgspec alone would skip invalid UTF-8 or a number out of range inside it."""
    paths = fast_paths(FieldMapping())
    assert paths is not None
    typed = TypedPredictions({"fraud": {"x": "numeric"}}, paths[0].keys)
    ok = b'{"id":"a","model":"fraud","prediction":1,"request":{"host":"h"},"features":{"x":1}}'
    assert paths[0](ok) is not None and typed(ok) is not None
    assert paths[1](b'{"id":"a","model":"fraud","label":1,"request":"r"}') is not None
    for bad in (b'"\xff"', b"1e400"):
        raw = ok[:-1] + b',"extra":' + bad.decode("unicode_escape").encode("latin-1") + b"}"
        assert paths[0](raw) is None and typed(raw) is None
    undeclared = b'{"id":"a","model":"fraud","prediction":1,"r":1,"features":{"zz":1}}'
    assert typed(undeclared) is None and paths[0](undeclared) is not None  # counted there


def test_nested_or_shared_keys_have_no_fast_path() -> None:
    assert fast_paths(FieldMapping(id="meta.id")) is None
    assert fast_paths(FieldMapping(score="prediction")) is None
    nested = b'{"meta":{"id":7},"model":"m","prediction":0}'
    for fields in (FieldMapping(id="meta.id"), FieldMapping(score="prediction")):
        alone = BatchOfOne(fields, max_future_skew=300.0)
        assert alone.prediction_by_columns(nested, NOW, now=NOW) is None  # all the exact way
        want = Decoder(fields, max_future_skew=300.0).prediction(nested, NOW, now=NOW)
        assert repr(alone.prediction(nested, NOW, now=NOW)) == repr(want)
    fields = FieldMapping(id="event_id", features="inputs")
    raw = b'{"event_id":7,"model":"m","inputs":{"a":1},"prediction":0}'
    batch = BatchOfOne(fields, max_future_skew=300.0)
    exact = Decoder(fields, max_future_skew=300.0)
    out = batch.prediction_by_columns(raw, NOW, now=NOW)  # renamed flat keys keep the columns
    assert out is not None and repr(out) == repr(exact.prediction(raw, NOW, now=NOW))
    paths = fast_paths(fields)
    assert paths is not None and paths[0](raw) is not None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                b'{"id":"a","model":"fraud","prediction":1,"features":{"x":1.5}}',
                b'{"id":"b","model":"fraud","score":0.5,"host":"h","features":{"x":2}}',
                b'{"id":"c","model":"other","prediction":0,"features":{"y":"k"}}',
                b'{"id":"d","model":"fraud","prediction":1,"features":{"zz":1}}',
                b'{"id":"e","model":"fraud","prediction":1,"host":"\xff"}',
                b'{"id":"","model":"fraud"}',
                b"[1]",
                b"{",
                b"",
                None,
            ]
        ),
        max_size=12,
    )
)
def test_a_batch_decodes_as_each_value_alone(raws: list[bytes | None]) -> None:
    """``many`` maps the strict decoder in C until one value fails, then goes on after it:
    whatever fails and wherever, each value comes out as it does alone."""
    paths = fast_paths(FieldMapping())
    assert paths is not None
    typed = TypedPredictions({"fraud": {"x": "numeric"}}, paths[0].keys)
    for decode in (paths[0], typed):
        alone = [decode(raw) if raw else None for raw in raws]
        assert repr(decode.many(raws)) == repr(alone)
