"""The processed positions: a batch marks what its records marked one by one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from monitor.events import Offsets, RawRecord
from monitor.ingest.progress import Progress

RECORDS = st.lists(
    st.builds(
        lambda t, p, o: RawRecord(t, p, o, 0.0, None, b"{}"),
        st.sampled_from(["p", "l"]),
        st.integers(0, 2),
        st.integers(0, 50),
    ),
    max_size=8,
)


def one_by_one(start: Offsets, batches: list[list[RawRecord]]) -> tuple[Offsets, Offsets]:
    nxt, first = dict(start), {}
    for batch in batches:
        for r in batch:
            key = (r.topic, r.partition)
            nxt[key] = max(nxt.get(key, -1), r.offset + 1)
            first.setdefault(key, r.offset)
    return nxt, first


@given(
    st.dictionaries(st.tuples(st.sampled_from(["p", "l"]), st.integers(0, 2)), st.integers(0, 60)),
    st.lists(RECORDS, max_size=4),
)
def test_batches_mark_what_their_records_mark_one_by_one(
    start: Offsets, batches: list[list[RawRecord]]
) -> None:
    progress = Progress(start)
    for batch in batches:
        progress.mark(batch)
    nxt, first = one_by_one(start, batches)
    assert progress.positions() == nxt
    roles = {"p": "predictions", "l": "labels"}
    ranges: dict[str, dict[str, list[int]]] = {}
    for t, p in sorted(first):
        ranges.setdefault(roles[t], {})[str(p)] = [first[t, p], nxt[t, p] - 1]
    assert progress.ranges(roles) == ranges


def test_a_replayed_batch_never_moves_the_position_back() -> None:
    progress = Progress({("p", 0): 100})
    progress.mark([RawRecord("p", 0, o, 0.0, None, None) for o in (40, 41, 42)])
    assert progress.get("p", 0) == 100
    assert progress.ranges({"p": "predictions"}) == {"predictions": {"0": [40, 99]}}
