"""Decoder fuzzing: whatever the bytes, an event or a :class:`DecodeError`, never an exception,
on the exact path and on the daemon's (a batch of one through the columns, typed features for
the configured model, the exact decoder for what they refuse).

Hypothesis in every run (``make test``); ``make fuzz`` runs the coverage-guided atheris harness
in ``tests/fuzz/fuzz_decode.py`` for longer.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.events import DecodeError, Label, Prediction
from monitor.ingest.decode import REASONS, Decoder
from monitor.settings import FieldMapping
from monitor.state.bootstrap import slim
from monitor.vocabulary import FeatureKind
from tests.support.decoding import BatchOfOne

NOW = 1_796_000_000.0
SCHEMAS: dict[str, dict[str, FeatureKind]] = {
    "fraud": {"amount": "numeric", "country": "categorical"}
}
FIELDS = ("id", "model", "version", "timestamp", "features", "prediction", "score", "label")

NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 2**53 + 1, NOW, NOW + 301, 4.0e9]),
)
TEXT = st.one_of(
    st.text(),  # any code point but lone surrogates, which JSON text cannot carry
    st.sampled_from(["", "fraud", "2026-11-27T04:00:00Z", "9999-12-31T23:59:59+14:00", "\x00"]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(TEXT, inner, max_size=6),
    max_leaves=25,
)


def deep(depth: int, leaf: bytes, obj: bool) -> bytes:
    return (b'{"a":' * depth + leaf + b"}" * depth) if obj else (b"[" * depth + leaf + b"]" * depth)


DECODERS = (
    Decoder(FieldMapping(), max_future_skew=300.0),
    BatchOfOne(FieldMapping(), max_future_skew=300.0, models=SCHEMAS),
)


def check(raw: bytes | None) -> None:
    for dec in DECODERS:
        for decode, kind in ((dec.prediction, Prediction), (dec.label, Label)):
            out = decode(raw, NOW - 60, now=NOW)
            if isinstance(out, DecodeError):
                assert out.reason in REASONS and len(out.detail) <= 200, out
                continue
            assert isinstance(out, kind)
            assert out.timestamp <= NOW + 300.0
            assert out.id != "" and isinstance(out.id, str)
            # What a checkpoint keeps of an event serialises (no depth, no odd types).
            if isinstance(out, Prediction):
                kept = slim(SCHEMAS.get(out.model, {}), out).features  # what the buffer keeps
                orjson.dumps([out.version, out.prediction, out.score, kept])
            else:
                orjson.dumps(out._asdict())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes(raw: bytes) -> None:
    check(raw)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS) | TEXT, JSON, max_size=10))
def test_any_json_object(obj: dict[str, Any]) -> None:
    check(orjson.dumps(obj))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {"id": st.one_of(TEXT, NUMBERS), "model": st.just("fraud")},
        optional={
            f: JSON
            | st.builds(
                deep, st.integers(1, 1100), st.sampled_from([b"1", b'"x"', b"{}"]), st.booleans()
            ).map(lambda b: orjson.Fragment(b))
            for f in ("version", "timestamp", "features", "prediction", "score", "label")
        },
    )
)
def test_any_value_in_any_field_even_1100_deep(obj: dict[str, Any]) -> None:
    """Valid envelopes with arbitrary (and arbitrarily deep) values in every field."""
    check(orjson.dumps(obj))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id":"a","model":"fraud","prediction":1,"features":{"country":"\\ud800"}}',
        b'{"id":"\xed\xa0\x80","model":"fraud","prediction":1}',  # a surrogate, UTF-8 encoded
        b'{"id":"a","model":"fraud","prediction":1,"timestamp":1e400}',
        b'{"id":18446744073709551616,"model":"fraud","prediction":1}',
        b'{"id":"a","model":"fraud","prediction":1,"features":{"amount":1e308}}',
        # Found by fuzzing: a repr escapes each of these to 10 characters.
        b'{"id":"a","model":"fraud","prediction":1,"timestamp":"'
        + "\U0010ffff".encode() * 40
        + b'"}',
    ],
)
def test_surrogates_and_out_of_range_numbers(raw: bytes) -> None:
    check(raw)
