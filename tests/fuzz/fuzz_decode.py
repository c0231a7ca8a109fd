"""Coverage-guided fuzzing of the decoder with atheris: ``make fuzz`` (``FUZZ_SECONDS=300``).

Whatever the bytes, and whatever sits in any field of an otherwise valid envelope (nested up to
1,100 levels, odd numbers, any string), the decoder returns an event or a ``DecodeError`` with a
known reason and a bounded detail, and never raises; an event it returns has a non-empty id,
an event time within ``max_future_skew`` of ``now`` and nothing a checkpoint cannot serialise.
A failed check or an exception is a crash: libFuzzer stops and writes the input to
``crash-<sha1>``. Extra arguments go to libFuzzer (``-runs=N``, ``-max_total_time=S``, a corpus
directory). atheris is the ``fuzz`` extra, not needed for ``make test``; the CI runs the
hypothesis version of these checks (``tests/unit/ingest/test_decode_fuzz.py``).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

NOW = 1_796_000_000.0
SKEW = 300.0
SCHEMAS = {"fraud": {"amount": "numeric", "country": "categorical"}}
FIELDS = ("id", "model", "version", "timestamp", "features", "prediction", "score", "label")


def _value(fdp: Any) -> bytes:
    """One JSON value (as bytes) chosen by the fuzzer, valid or not."""
    kind = fdp.ConsumeIntInRange(0, 6)
    if kind == 0:
        depth, obj = fdp.ConsumeIntInRange(0, 1100), fdp.ConsumeBool()
        leaf = _value(fdp) if fdp.ConsumeBool() else b"1"
        return (
            (b'{"a":' * depth + leaf + b"}" * depth) if obj else b"[" * depth + leaf + b"]" * depth
        )
    if kind == 1:
        return orjson.dumps(fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64)))
    if kind == 2:
        return str(fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 12))).encode()
    if kind == 3:
        return repr(fdp.ConsumeRegularFloat()).encode()
    if kind == 4:  # a features object: configured names, unknown ones, any values
        names = ["amount", "country", fdp.ConsumeUnicodeNoSurrogates(8)]
        return b"{" + b",".join(orjson.dumps(n) + b":" + _value(fdp) for n in names) + b"}"
    if kind == 5:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))  # anything, JSON or not
    return fdp.PickValueInList([b"null", b"true", b"[]", b"{}", b'""', b"4.0e9", b"1e400"])


def one_input(data: bytes) -> None:
    import atheris

    from monitor.events import DecodeError, Label, Prediction
    from monitor.ingest.decode import REASONS, Decoder
    from monitor.settings import FieldMapping
    from monitor.state.bootstrap import slim

    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        raw = fdp.ConsumeBytes(fdp.remaining_bytes())
    else:
        fields = {f: _value(fdp) for f in FIELDS if fdp.ConsumeBool()}
        fields.setdefault("model", b'"fraud"')
        raw = b"{" + b",".join(orjson.dumps(k) + b":" + v for k, v in fields.items()) + b"}"
    kafka_ts = fdp.ConsumeFloat()
    decoder = Decoder(FieldMapping(), max_future_skew=SKEW)
    for decode in (decoder.prediction, decoder.label):
        out = decode(raw, kafka_ts, now=NOW)
        if isinstance(out, DecodeError):
            assert out.reason in REASONS, out
            assert len(out.detail) <= 200, out
            continue
        assert isinstance(out, Prediction | Label), out
        assert out.id != "" and out.timestamp <= NOW + SKEW, out
        if isinstance(out, Prediction):
            kept = slim(SCHEMAS.get(out.model, {}), out).features  # what the buffer keeps
            orjson.dumps([out.id, out.version, out.prediction, out.score, kept])
        else:
            orjson.dumps(out._asdict())


def main() -> None:
    try:
        import atheris
    except ImportError:
        sys.exit(
            "atheris is not installed: pip install -e '.[fuzz]' (wheels for CPython 3.11-3.13 "
            "on Linux x86_64; elsewhere it builds with clang). The hypothesis checks in "
            "tests/unit/ingest/test_decode_fuzz.py run without it."
        )
    import monitor.ingest.decode  # noqa: F401  (loaded before instrumenting)

    atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
