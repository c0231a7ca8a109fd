"""A batch's cells are each value's cells: the columnar paths change no count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.events import Prediction, PredictionBatch
from monitor.reference.bins import CategoricalProfile, NumericProfile
from monitor.settings import ModelSettings
from monitor.state.layout import Slot, cell_column, columns, numeric_matrix

NUMERIC = Slot(
    "x", NumericProfile(np.array([1.0, 2.0]), np.zeros(4, np.int64), np.zeros(3, np.int64), 0.0), 3
)
CATEGORICAL = Slot("c", CategoricalProfile(("DE", "FR", "3"), np.zeros(5, np.int64)), 7)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-3, 5),
    st.sampled_from(["DE", "FR", "3", "XX", "", "1"]),
    st.just(np.float64(1.5)),
    st.just([1]),
)


@settings(max_examples=300)
@given(st.lists(VALUES, max_size=12), st.booleans())
def test_a_batch_lands_where_each_value_lands(values: list[object], numeric: bool) -> None:
    slot = NUMERIC if numeric else CATEGORICAL
    one_by_one = [int(cell_column(slot, [v])[0]) for v in values]
    assert cell_column(slot, values).tolist() == one_by_one


def test_a_feature_reads_absent_as_none() -> None:
    rows = [{"a": 1}, {}, {"b": 2, "a": None}]
    batch = PredictionBatch.of("m", [Prediction("i", "m", None, 0.0, r, 1, None) for r in rows])
    assert batch.feature("a") == [1, None, None]


SLOTS = (
    Slot("a", NUMERIC.profile, 0),
    Slot("c", CATEGORICAL.profile, 5),
    Slot("b", NUMERIC.profile, 11),
)
ROW = st.dictionaries(st.sampled_from(["a", "b", "c", "z"]), VALUES, max_size=4)


@settings(max_examples=300)
@given(st.lists(ROW, max_size=10))
def test_the_numeric_features_read_together_land_where_each_alone_lands(
    rows: list[dict[str, object]],
) -> None:
    """The matrix path (every numeric feature present and a number) and the feature-by-feature
    path lay out the same cells, whichever the batch takes."""
    cfg = ModelSettings(
        name="m", reference=Path("unused.json"), features={"a": "numeric", "c": "categorical"}
    )
    batch = PredictionBatch.of(
        "m", [Prediction(str(i), "m", None, 0.0, r, 1, None) for i, r in enumerate(rows)]
    )
    alone = [cell_column(s, batch.feature(s.name)) for s in SLOTS]
    want = np.stack(alone, axis=1).ravel() if rows else np.zeros(0, np.int64)
    assert columns(cfg, SLOTS, batch).tolist() == want.tolist()


def test_the_matrix_path_is_taken_only_when_every_numeric_value_is_a_number() -> None:
    def batch(*rows: dict[str, object]) -> PredictionBatch:
        return PredictionBatch.of("m", [Prediction("i", "m", None, 0.0, r, 1, None) for r in rows])

    assert numeric_matrix(batch({"a": 1, "b": None}), ["a", "b"]) is not None
    assert numeric_matrix(batch({"a": 1, "b": True}), ["a", "b"]) is None  # a bool is no number
    assert numeric_matrix(batch({"a": 1}), ["a", "b"]) is None  # absent: by column, as None
    assert numeric_matrix(batch({"a": 1}), []) is None
