"""A batch decoded as columns is the same as its records decoded one by one.

The reference is the exact path (orjson, then checks in Python), record by record, grouped by
model and partition in record order; the dead letters are those it refuses, with its reasons.
Batches mix valid and hostile records, models, partitions and the labels topic.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.events import DecodeError, Prediction, PredictionBatch, RawRecord
from monitor.ingest.decode import Decoder
from monitor.ingest.route import Pipeline
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import FieldMapping, Settings
from monitor.settings_loader import load_settings

NOW = 1_796_000_000.0
EXACT = Decoder(FieldMapping(), max_future_skew=300.0, fast=False)
SETTINGS: Settings = load_settings(
    None,
    overrides={
        "kafka": {"predictions_topic": "p", "labels_topic": "l"},
        "time": {"max_future_skew": "5m"},
        "models": [
            {
                "name": "fraud",
                "reference": {"bootstrap_events": 100},
                "features": {"x": "numeric", "c": "categorical"},
            }
        ],
    },
)
VALID = st.fixed_dictionaries(
    {
        "id": st.one_of(st.sampled_from(["a", "b", "c"]), st.integers(0, 3)),
        "model": st.sampled_from(["fraud", "churn"]),
        "timestamp": st.sampled_from([NOW - 10, NOW - 10.5, None, "2026-11-27T04:00:00Z"]),
        "features": st.one_of(
            st.none(),
            st.fixed_dictionaries({"x": st.floats(-1, 1), "c": st.sampled_from(["DE", "FR"])}),
        ),
    },
    optional={
        "version": st.sampled_from(["v1", 2, 2.5, None]),
        "prediction": st.sampled_from([0, 1, "yes", None, True]),
        "score": st.sampled_from([0.25, 1, None, {"a": 0.5}]),
    },
)
#: A valid envelope with one field made hostile (or one left out).
HOSTILE = st.tuples(
    VALID,
    st.sampled_from(["id", "model", "timestamp", "features", "prediction", "score", "version"]),
    st.sampled_from([None, "", [1], {"a": {}}, 1.5, NOW + 400, 2**64 - 1, "nope", True, ...]),
).map(lambda t: {k: v for k, v in {**t[0], t[1]: t[2]}.items() if v is not ...})
VALUE = st.one_of(
    VALID.map(orjson.dumps),
    HOSTILE.map(orjson.dumps),
    st.sampled_from([None, b"", b"{", b"[]", b"1"]),
)


def reference(records: list[RawRecord]) -> tuple[dict[Any, list[Prediction]], list[Any]]:
    """Each record through the exact path: events by (model, partition), dead letters."""
    groups: dict[Any, list[Prediction]] = defaultdict(list)
    dead = []
    for rec in records:
        if rec.topic != "p":
            continue
        event = EXACT.prediction(rec.value, rec.timestamp, now=NOW)
        if isinstance(event, DecodeError):
            dead.append((rec.offset, event.reason, event.detail))
        else:
            groups[event.model, rec.partition].append(event)
    return groups, dead


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(VALUE, st.integers(0, 1), st.sampled_from(["p", "p", "p", "l"])), max_size=12
    )
)
def test_a_batch_decodes_as_its_records_one_by_one(rows: list[tuple[Any, int, str]]) -> None:
    records = [
        RawRecord(topic, part, offset, NOW - 30, None, value)
        for offset, (value, part, topic) in enumerate(rows)
    ]
    pipe = Pipeline(SETTINGS, {}, OpsMetrics(CollectorRegistry()), wall=lambda: NOW)
    got = pipe.decode(records)
    want, want_dead = reference(records)
    assert {k: repr(b.events()) for k, b in got.predictions.items()} == {
        k: repr(v) for k, v in want.items()
    }
    for (model, part), batch in got.predictions.items():
        assert batch.model == model
        sources = got.sources["predictions", model, part]
        assert len(sources) == len(batch) and all(r.partition == part for r in sources)
        assert [r.offset for r in sources] == sorted(r.offset for r in sources)
    assert [
        (d.record.offset, d.reason, d.detail) for d in got.dead if d.stream == "predictions"
    ] == want_dead


def test_a_batch_of_the_usual_events_is_one_group_of_columns() -> None:
    events = [
        {"id": f"e{i}", "model": "fraud", "timestamp": NOW - i, "prediction": i % 2}
        for i in range(5)
    ]
    records = [RawRecord("p", 3, i, NOW, None, orjson.dumps(e)) for i, e in enumerate(events)]
    pipe = Pipeline(SETTINGS, {}, OpsMetrics(CollectorRegistry()), wall=lambda: NOW)
    got = pipe.decode(records)
    assert list(got.predictions) == [("fraud", 3)] and not got.dead
    batch = got.predictions["fraud", 3]
    assert batch.ids == [f"e{i}" for i in range(5)]
    assert batch.timestamps.tolist() == [NOW - i for i in range(5)]
    assert batch.predictions == [0, 1, 0, 1, 0] and batch.scores == [None] * 5
    assert batch.features == [{}] * 5 and batch.versions == [None] * 5
    assert got.sources["predictions", "fraud", 3] == records


def test_take_and_concat_keep_rows_whole() -> None:
    preds = [Prediction(f"i{k}", "m", f"v{k}", float(k), {"k": k}, k, k / 10) for k in range(4)]
    batch = PredictionBatch.of("m", preds)
    assert batch.take(np.array([2, 0], dtype=np.intp)).events() == [preds[2], preds[0]]
    assert batch.take(np.array([False, True, False, True])).events() == [preds[1], preds[3]]
    both = PredictionBatch.concat([batch.take(np.array([3])), batch.take(np.array([1]))])
    assert both.events() == [preds[3], preds[1]] and both.model == "m"
    assert PredictionBatch.of("m", []).events() == []
