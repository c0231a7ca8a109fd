"""A batch's cells are each value's cells: the columnar paths change no count."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.reference.bins import CategoricalProfile, NumericProfile
from monitor.state.layout import Slot, cell_column, feature_column

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


def test_feature_column_reads_absent_as_none() -> None:
    assert feature_column([{"a": 1}, {}, {"b": 2, "a": None}], "a") == [1, None, None]
