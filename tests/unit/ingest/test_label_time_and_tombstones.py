"""Label event times (epoch, RFC 3339, the Kafka time when absent or null, the refusals) on the
exact path and on the daemon's (a batch of one through the columns, the exact decoder for what
they refuse), and tombstones (null-value records) through ``Pipeline.decode``."""

from __future__ import annotations

import orjson
import pytest

from monitor.events import DecodeError, Label, RawRecord
from monitor.ingest.decode import Decoder
from monitor.settings import FieldMapping, Settings
from tests.support.decoding import BatchOfOne
from tests.support.pipeline_rig import pipeline, record

KAFKA_TS = 1_795_000_000.0
NOW = 1_796_000_000.0
SKEW = 300.0


AnyDecoder = Decoder | BatchOfOne


@pytest.fixture(params=[BatchOfOne, Decoder], ids=["batch path", "exact path"])
def dec(request: pytest.FixtureRequest) -> AnyDecoder:
    return request.param(FieldMapping(), max_future_skew=SKEW)  # type: ignore[no-any-return]


def label(**over: object) -> bytes:
    event: dict[str, object] = {"id": "p1", "model": "fraud", "label": 1}
    event.update(over)
    return orjson.dumps(event)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (label(timestamp=1795003600), 1795003600.0),
        (label(timestamp=1795003600.25), 1795003600.25),
        # 1_795_003_600 = 20_775 days (2026-11-18) + 43_600 s (12:06:40) after the epoch
        (label(timestamp="2026-11-18T12:06:40Z"), 1795003600.0),
        (label(timestamp="2026-11-18T14:06:40+02:00"), 1795003600.0),
        (label(), KAFKA_TS),
        (label(timestamp=None), KAFKA_TS),
        (label(timestamp=NOW + SKEW), NOW + SKEW),
    ],
    ids=["epoch int", "epoch float", "rfc3339 Z", "rfc3339 offset", "absent", "null", "at skew"],
)
def test_label_event_time(dec: AnyDecoder, raw: bytes, expected: float) -> None:
    lab = dec.label(raw, KAFKA_TS, now=NOW)
    assert isinstance(lab, Label), lab
    assert lab.timestamp == expected
    assert (lab.id, lab.model, lab.label) == ("p1", "fraud", 1)


@pytest.mark.parametrize(
    ("raw", "kafka_ts", "reason"),
    [
        (label(timestamp=1795003600123), KAFKA_TS, "bad_timestamp"),  # milliseconds
        (label(timestamp="yesterday"), KAFKA_TS, "bad_timestamp"),
        (label(timestamp=True), KAFKA_TS, "bad_timestamp"),
        (label(timestamp=NOW + SKEW + 1), KAFKA_TS, "future_timestamp"),
        (label(), NOW + SKEW + 1, "future_timestamp"),  # the Kafka time is bounded too
        (label(timestamp="2026-11-18T12:06:40"), KAFKA_TS, "bad_timestamp"),  # no zone
    ],
    ids=["milliseconds", "text", "boolean", "future", "future kafka time", "naive"],
)
def test_label_event_time_refused(
    dec: AnyDecoder, raw: bytes, kafka_ts: float, reason: str
) -> None:
    err = dec.label(raw, kafka_ts, now=NOW)
    assert isinstance(err, DecodeError) and err.reason == reason, err


def test_label_time_from_a_mapped_nested_field() -> None:
    fields = FieldMapping(timestamp="meta.at", label="truth")
    for kind in (BatchOfOne, Decoder):
        dec = kind(fields, max_future_skew=SKEW)
        raw = b'{"id": "p1", "model": "fraud", "truth": 0, "meta": {"at": 1795003600}}'
        lab = dec.label(raw, KAFKA_TS, now=NOW)
        assert isinstance(lab, Label) and (lab.timestamp, lab.label) == (1795003600.0, 0)
        # The top-level "timestamp" is not the mapped field: the Kafka time stands in.
        raw = b'{"id": "p1", "model": "fraud", "truth": 0, "timestamp": 1795003600}'
        lab = dec.label(raw, KAFKA_TS, now=NOW)
        assert isinstance(lab, Label) and lab.timestamp == KAFKA_TS


# -- tombstones ---------------------------------------------------------------------------------


def tombstone(topic: str, offset: int) -> RawRecord:
    return RawRecord(topic, 0, offset, 1_795_000_000.0, b"key", None)


def test_tombstones_are_dead_letters_named_empty_and_cost_only_themselves(
    churn_settings: Settings,
) -> None:
    p, registry = pipeline(churn_settings)
    good_label = RawRecord(
        "l", 0, 7, 1_795_000_000.0, None, orjson.dumps({"id": "p1", "model": "churn", "label": 1})
    )
    batch = [record(1), tombstone("p", 2), record(3), tombstone("l", 5), good_label]
    batch.append(tombstone("elsewhere", 9))  # not a topic of ours: ignored, not dead
    decoded = p.decode(batch)
    assert [(d.record.offset, d.stream, d.reason) for d in decoded.dead] == [
        (2, "predictions", "empty"),
        (5, "labels", "empty"),
    ]
    assert all(d.record.value is None and d.record.key == b"key" for d in decoded.dead)
    assert decoded.predictions["churn", 0].ids == ["p1", "p3"]
    assert decoded.labels["churn", 0].ids == ["p1"]
    for stream in ("predictions", "labels"):
        value = registry.get_sample_value(
            "modelmon_invalid_events_total", {"stream": stream, "reason": "empty"}
        )
        assert value == 1.0, stream


def test_a_batch_of_only_tombstones_applies_nothing(churn_settings: Settings) -> None:
    p, _ = pipeline(churn_settings)
    decoded = p.decode([tombstone("p", 0), tombstone("l", 1)])
    assert not decoded.predictions and not decoded.labels
    assert p.apply(decoded) == []
    assert int(p.states["churn"].windows["1h"].total.sum()) == 0
