"""A batch decoded as columns is the same as its records decoded one by one (both streams).

Both the typed features of a configured model (fraud) and the features object of any other
model (churn: not configured) are exercised.

The reference is the exact path (orjson, then checks in Python), record by record, grouped by
model and partition in record order; the dead letters are those it refuses, with its reasons.
Batches mix valid and hostile records, models, partitions and the labels topic.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import orjson
import pytest
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
EXACT = Decoder(FieldMapping(), max_future_skew=300.0)
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
            st.dictionaries(
                st.sampled_from(["x", "c", "zz"]),
                st.one_of(
                    st.none(), st.integers(-2, 2), st.floats(-1, 1), st.sampled_from(["DE", True])
                ),
            ),
        ),
    },
    optional={
        "version": st.sampled_from(["v1", 2, 2.5, None]),
        "prediction": st.sampled_from([0, 1, "yes", None, True]),
        "score": st.sampled_from([0.25, 1, None, {"a": 0.5}]),
        "request": st.sampled_from(["r", 1e300, None, {"host": "h"}]),  # a producer's own key
    },
)
#: A valid envelope with one field made hostile (or one left out).
HOSTILE = st.tuples(
    VALID,
    st.sampled_from(["id", "model", "timestamp", "features", "prediction", "score", "version"]),
    st.sampled_from([None, "", [1], {"a": {}}, 1.5, NOW + 400, 2**64 - 1, "nope", True, ...]),
).map(lambda t: {k: v for k, v in {**t[0], t[1]: t[2]}.items() if v is not ...})
#: A label (the same ids, models and times), or one with a field made hostile or left out.
LABEL = st.tuples(
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.sampled_from(["a", "b"]), st.integers(0, 3)),
            "model": st.sampled_from(["fraud", "churn"]),
            "label": st.sampled_from([0, 1, 1.0, True, "yes", ""]),
        },
        optional={
            "timestamp": st.sampled_from([NOW - 5, None, "2026-11-27T04:00:00Z"]),
            "request": st.sampled_from(["r", [1]]),
        },
    ),
    st.sampled_from(["id", "model", "label", "timestamp", "none"]),
    st.sampled_from([None, "", [1], NOW + 400, 2**64 - 1, 1e300, ...]),
).map(lambda t: {k: v for k, v in {**t[0], t[1]: t[2]}.items() if v is not ... and k != "none"})
VALUE = st.one_of(
    VALID.map(orjson.dumps),
    HOSTILE.map(orjson.dumps),
    LABEL.map(orjson.dumps),
    st.sampled_from([None, b"", b"{", b"[]", b"1"]),
)
STREAMS = {"p": "predictions", "l": "labels"}


def reference(records: list[RawRecord]) -> tuple[dict[Any, list[Any]], list[Any]]:
    """Each record through the exact path: events by (stream, model, partition), dead
    letters."""
    groups: dict[Any, list[Any]] = defaultdict(list)
    dead = []
    for rec in records:
        decode = EXACT.prediction if rec.topic == "p" else EXACT.label
        event = decode(rec.value, rec.timestamp, now=NOW)
        if isinstance(event, DecodeError):
            dead.append((rec.offset, STREAMS[rec.topic], event.reason, event.detail))
        else:
            groups[STREAMS[rec.topic], event.model, rec.partition].append(event)
    return groups, dead


def shown(events: list[Any]) -> str:
    """``repr`` (it tells ``1`` from ``1.0`` and ``True``) of events whose features are read
    as the state reads them: by name, a null one the same as an absent one."""
    return repr(
        [
            e._replace(features={k: v for k, v in sorted(e.features.items()) if v is not None})
            if isinstance(e, Prediction)
            else e
            for e in events
        ]
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(VALUE, st.integers(0, 1), st.sampled_from(["p", "p", "p", "l"])), max_size=12
    )
)
def test_a_batch_decodes_as_its_records_one_by_one(rows: list[tuple[Any, int, str]]) -> None:
    same_as_one_by_one(
        [
            RawRecord(topic, part, offset, NOW - 30, None, value)
            for offset, (value, part, topic) in enumerate(rows)
        ]
    )


def same_as_one_by_one(records: list[RawRecord]) -> None:
    pipe = Pipeline(SETTINGS, {}, OpsMetrics(CollectorRegistry()), wall=lambda: NOW)
    got = pipe.decode(records)
    want, want_dead = reference(records)
    batches = {("predictions", *k): b for k, b in got.predictions.items()}
    batches |= {("labels", *k): b for k, b in got.labels.items()}
    assert {k: shown(b.events()) for k, b in batches.items()} == {
        k: shown(v) for k, v in want.items()
    }
    for (stream, model, part), batch in batches.items():
        assert batch.model == model
        sources = got.sources[stream, model, part]
        assert len(sources) == len(batch) and all(r.partition == part for r in sources)
        assert [r.offset for r in sources] == sorted(r.offset for r in sources)
    dead = [(d.record.offset, d.stream, d.reason, d.detail) for d in got.dead]
    assert sorted(dead) == sorted(want_dead)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id":"a","model":"fraud","model":"churn","prediction":1}',
        b'{"id":"a","model":"churn","model":"fraud","prediction":1}',
        b'{"id":"a","model":"fraud","prediction":1,"features":{"x":1,"x":"s"}}',
        b'{"id":"a","model":"fraud","prediction":1,"features":{"x":"s","x":1}}',
        b'{"id":"a","model":"fraud","prediction":1,"features":{"x":1e400}}',
        b'{"id":"a","model":"fraud","prediction":1,"features":{"x":18446744073709551615}}',
        b'{"prediction":1,"id":"a","features":{"c":[1]},"model":"fraud"}',
        b'{"id":"a","prediction":1,"features":{"c":3}}',
        b'{"id":"a","model":"fraud","prediction":1,"request_id":"r","features":{"x":2}}',
        b'{"id":"a","model":"fraud","prediction":1,"request_id":"\xff"}',
        b'{"id":"a","model":"fraud","prediction":1,"request_id":1e400}',
        b'{"id":"a","model":"fraud","prediction":1,"r":[1],"features":{"x":2,"zz":1}}',
    ],
)
def test_edges_decode_as_one_by_one(raw: bytes) -> None:
    same_as_one_by_one([RawRecord("p", 0, 0, NOW - 30, None, raw)])


def test_a_batch_of_the_usual_events_is_one_group_of_typed_columns() -> None:
    events = [
        {"id": f"e{i}", "model": "fraud", "timestamp": NOW - i, "prediction": i % 2}
        | ({"features": {"x": i, "c": "DE"}} if i else {})
        for i in range(5)
    ]
    records = [RawRecord("p", 3, i, NOW, None, orjson.dumps(e)) for i, e in enumerate(events)]
    pipe = Pipeline(SETTINGS, {}, OpsMetrics(CollectorRegistry()), wall=lambda: NOW)
    got = pipe.decode(records)
    assert list(got.predictions) == [("fraud", 3)] and not got.dead
    batch = got.predictions["fraud", 3]
    assert batch.typed
    assert batch.ids == [f"e{i}" for i in range(5)]
    assert batch.timestamps.tolist() == [NOW - i for i in range(5)]
    assert batch.predictions == [0, 1, 0, 1, 0] and batch.scores == [None] * 5
    assert batch.feature("x") == [None, 1, 2, 3, 4] and batch.feature("nope") == [None] * 5
    assert batch.feature_rows(["c", "x"]) == [(None, None)] + [("DE", i) for i in range(1, 5)]
    assert batch.feature_dicts()[:2] == [{}, {"x": 1, "c": "DE"}]
    assert batch.versions == [None] * 5
    assert list(got.sources["predictions", "fraud", 3]) == records


def test_an_unknown_feature_or_model_keeps_the_features_objects() -> None:
    """A feature the model does not declare (counted downstream), a value of the wrong type
    (a type mismatch) or a model not configured: the batch's features stay objects."""
    events = [
        {"id": "a", "model": "fraud", "prediction": 1, "features": {"x": 1.5}},
        {"id": "b", "model": "fraud", "prediction": 1, "features": {"x": 2, "zz": 1}},
        {"id": "c", "model": "fraud", "prediction": 1, "features": {"x": "2"}},
        {"id": "d", "model": "churn", "prediction": 1, "features": {"x": 1}},
    ]
    records = [RawRecord("p", 0, i, NOW - 5, None, orjson.dumps(e)) for i, e in enumerate(events)]
    pipe = Pipeline(SETTINGS, {}, OpsMetrics(CollectorRegistry()), wall=lambda: NOW)
    got = pipe.decode(records)
    fraud, churn = got.predictions["fraud", 0], got.predictions["churn", 0]
    assert not fraud.typed and not churn.typed
    assert fraud.features == [{"x": 1.5}, {"x": 2, "zz": 1}, {"x": "2"}]
    assert churn.features == [{"x": 1}]


def test_take_and_concat_keep_rows_whole() -> None:
    preds = [Prediction(f"i{k}", "m", f"v{k}", float(k), {"k": k}, k, k / 10) for k in range(4)]
    batch = PredictionBatch.of("m", preds)
    assert batch.take(np.array([2, 0], dtype=np.intp)).events() == [preds[2], preds[0]]
    assert batch.take(np.array([False, True, False, True])).events() == [preds[1], preds[3]]
    both = PredictionBatch.concat([batch.take(np.array([3])), batch.take(np.array([1]))])
    assert both.events() == [preds[3], preds[1]] and both.model == "m"
    assert PredictionBatch.of("m", []).events() == []
