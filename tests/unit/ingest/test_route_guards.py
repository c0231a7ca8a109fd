"""The pipeline's guards: one record's content costs that record, never the batch or the daemon."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.events import Prediction
from monitor.ingest.route import DETAIL_MAX, Pipeline
from monitor.settings import Settings
from tests.support.pipeline_rig import T0, pipeline, record


def counted(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def window_total(p: Pipeline) -> int:
    ring = p.states["churn"].windows["1h"]
    return int(ring.total[: p.states["churn"].slots[0].stop].sum())


def test_a_decoder_that_raises_costs_one_record(
    churn_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch path raising sends every record the exact way; that raising costs one."""
    p, registry = pipeline(churn_settings)
    decode = p._decoder.prediction

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise IndexError("a bug of the batch path")

    def flaky(raw: bytes | None, kafka_ts: float, *, now: float) -> Any:
        if raw is not None and b'"p3"' in raw:
            raise RecursionError("maximum recursion depth exceeded " + "x" * 1000)
        return decode(raw, kafka_ts, now=now)

    monkeypatch.setattr(p._columns, "predictions", broken)
    monkeypatch.setattr(p._decoder, "prediction", flaky)
    dead = p.process([record(i) for i in range(6)])
    assert [(d.record.offset, d.reason) for d in dead] == [(3, "internal_error")]
    assert dead[0].detail.startswith("RecursionError: maximum recursion depth exceeded")
    assert len(dead[0].detail) == DETAIL_MAX
    assert counted(registry, "modelmon_invalid_events_total", stream="predictions",
                   reason="internal_error") == 1  # fmt: skip
    assert counted(registry, "modelmon_events_total", model="churn", stream="predictions") == 5
    assert window_total(p) == 5


class Unhashable(str):
    """A category value that passes every type check and then fails to bin (a bug stand-in)."""

    __slots__ = ()

    def __hash__(self) -> int:
        raise TypeError("unhashable category")


def test_an_apply_that_raises_on_one_event_costs_that_event_only(churn_settings: Settings) -> None:
    """The batch fails, is applied again one by one: the culprit is dead-lettered, every
    other event is counted exactly once (no duplicates, nothing late, windows exact)."""
    p, registry = pipeline(churn_settings)
    batch = p.decode([record(i) for i in range(8)])
    # Content no decoder produces, planted past it: binning it raises mid-batch.
    batch.predictions["churn", 0].features[5] = {"x": 1.0, "c": Unhashable()}
    dead = p.apply(batch)
    assert [(d.record.offset, d.reason, d.stream) for d in dead] == [
        (5, "internal_error", "predictions")
    ]
    assert counted(registry, "modelmon_events_total", model="churn", stream="predictions") == 7
    for name in ("modelmon_duplicate_events_total", "modelmon_late_events_total"):
        assert counted(registry, name, model="churn", stream="predictions") == 0, name
    assert window_total(p) == 7
    assert p.states["churn"].perf.join.pending() == 7
    assert p.states["churn"].newest_seen == T0 + 7


def test_a_failing_add_leaves_the_model_state_as_it_was(churn_settings: Settings) -> None:
    p, _ = pipeline(churn_settings)
    p.process([record(i) for i in range(4)])
    state = p.states["churn"]
    before: dict[str, Any] = {}
    meta_before = state.to_state(before, "m")
    bad = [
        Prediction("q1", "churn", None, T0 + 100, {"x": 1.0, "c": "a"}, 1, 0.9),
        Prediction("q2", "churn", None, T0 + 200, {"x": 1.0, "c": Unhashable()}, 0, 0.1),
    ]
    with pytest.raises(TypeError):
        state.add_predictions(bad)
    after: dict[str, Any] = {}
    assert state.to_state(after, "m") == meta_before
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_empty_ids_are_dead_letters_not_duplicates_of_each_other(churn_settings: Settings) -> None:
    p, registry = pipeline(churn_settings)
    dead = p.process([record(0, id=""), record(1, id=""), record(2, "l", id="", label=1)])
    assert [(d.stream, d.reason) for d in dead] == [
        ("predictions", "missing_id"),
        ("predictions", "missing_id"),
        ("labels", "missing_id"),
    ]
    assert counted(registry, "modelmon_duplicate_events_total", model="churn",
                   stream="predictions") == 0  # fmt: skip


def test_a_far_future_event_is_a_dead_letter_and_moves_no_watermark(
    churn_settings: Settings,
) -> None:
    p, registry = pipeline(churn_settings)
    dead = p.process([record(0), record(1, timestamp=4.0e9), record(2)])
    assert [(d.record.offset, d.reason) for d in dead] == [(1, "future_timestamp")]
    assert p.states["churn"].newest_seen == T0 + 2
    assert counted(registry, "modelmon_late_events_total", model="churn", stream="predictions") == 0
    assert window_total(p) == 2
