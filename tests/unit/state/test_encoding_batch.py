"""A batch's targets are each event's targets: the encoder's column paths change no value."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.settings import ModelSettings
from monitor.state.encoding import TargetEncoder
from monitor.vocabulary import Task

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([2**53, 2.0**53, 1.0, -0.0, 0.5, float("nan"), float("inf"), 2**63 - 1]),
    st.floats(-3, 3),
    st.sampled_from(["0", "1", "a", "b", "c", "", "nan"]),
)
SCORES = st.one_of(
    st.none(),
    st.floats(0, 1),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.floats(0, 1), max_size=3),
)


def encoder(task: Task) -> TargetEncoder:
    return TargetEncoder(
        ModelSettings(
            name="m",
            reference=Path("unused.json"),
            task=task,
            features={"x": "numeric"},
            classes=["a", "b", 2**53] if task == "multiclass_classification" else None,
        )
    )


def one_by_one(enc: TargetEncoder, value: Any, score: Any) -> tuple[float, list[float]]:
    """The encoding of one event, as the per-event code computed it before issue 12."""
    y = enc._value(value)
    proba = [math.nan] * enc.proba_width
    if enc.task == "binary_classification" and isinstance(score, float):
        proba[0] = score
        if value is None:
            y = 1.0 if score >= 0.5 else 0.0
    elif enc.task == "multiclass_classification" and isinstance(score, dict):
        proba = [score.get(c, math.nan) for c in enc.classes]
        if value is None and not any(math.isnan(v) for v in proba):
            y = float(np.argmax(proba))
    return y, proba


@settings(max_examples=300)
@given(
    st.sampled_from(["binary_classification", "multiclass_classification", "regression"]),
    st.lists(st.tuples(VALUES, SCORES), max_size=10),
)
def test_a_batch_encodes_as_each_event_alone(task: Task, rows: list[tuple[Any, Any]]) -> None:
    enc = encoder(task)
    y, proba = enc.predictions([v for v, _ in rows], [s for _, s in rows])
    want = [one_by_one(enc, v, s) for v, s in rows]
    np.testing.assert_array_equal(y, [w[0] for w in want])
    np.testing.assert_array_equal(
        proba, np.array([w[1] for w in want], np.float32).reshape(len(rows), enc.proba_width)
    )
    labels = enc._values([v for v, _ in rows])
    np.testing.assert_array_equal(labels, [enc._value(v) for v, _ in rows])


def test_equal_numbers_spelled_apart_keep_their_own_class() -> None:
    """2**53 and 2.0**53 are equal in Python but not the same class key: a table by value
    would give both the first one's encoding."""
    enc = encoder("multiclass_classification")
    assert enc._values([2**53, 2.0**53]).tolist()[0] == 2.0
    assert math.isnan(enc._values([2**53, 2.0**53]).tolist()[1])
