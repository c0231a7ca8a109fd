"""A poll's records as columns read as the records themselves, whichever way they are taken."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from monitor.events import RawRecord, RecordBatch

RECORDS = st.lists(
    st.builds(
        RawRecord,
        st.sampled_from(["p", "l"]),
        st.integers(0, 3),
        st.integers(0, 2**40),
        st.floats(0, 2e9),
        st.none() | st.binary(max_size=4),
        st.none() | st.binary(max_size=8),
    ),
    max_size=12,
)


@given(RECORDS, st.data())
def test_columns_read_as_the_records(records: list[RawRecord], data: st.DataObject) -> None:
    batch = RecordBatch.of(records)
    assert RecordBatch.of(batch) is batch
    assert len(batch) == len(records) and bool(batch) == bool(records)
    assert list(batch) == records and [batch[i] for i in range(len(batch))] == records
    assert batch.offsets == [r.offset for r in records]
    assert batch.values == [r.value for r in records]
    rows = data.draw(st.lists(st.integers(0, max(len(records) - 1, 0)), max_size=5))
    if records:
        assert list(batch.take(rows)) == [records[i] for i in rows]
    start, stop = data.draw(st.integers(0, 12)), data.draw(st.integers(0, 12))
    assert list(batch[start:stop]) == records[start:stop]
