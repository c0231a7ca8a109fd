"""The label join's journal (issue 15): a new owner that folds a partition's journal takes
continues the join as the old owner would have.

The oracle is the original join itself: after any sequence of predictions (repeated ids
included), labels (early, joined, repeated) and takes, a join rebuilt from the folded takes
(and the early labels, which the state record carries) must answer every later event as the
original does: the same pending count, the same pairs for a later label, the same duplicates.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.state.join import LabelJoin, Pairs, id_keys
from monitor.state.join_journal import JoinJournal, fold

T0 = 1_800_000_000.0
WIDTH = 2
POOL = [f"id-{i}" for i in range(24)]
Taken = dict[str, npt.NDArray[np.generic]]


def make_join(journal: bool = True) -> LabelJoin:
    j = LabelJoin(ttl=3600.0, label_wait=600.0, max_pending=10_000, proba_width=WIDTH)
    if journal:
        j.journal = JoinJournal(WIDTH)
    return j


def predict(j: LabelJoin, ids: list[str], t: float) -> tuple[list[bool], list[tuple], dict]:
    n = len(ids)
    keys = id_keys(ids)
    ts = t + np.arange(n, dtype=np.float64) * 0.25
    pred = (keys % np.uint64(2)).astype(np.float64)
    proba = np.stack([(keys % np.uint64(97)) / 97.0, (keys % np.uint64(89)) / 89.0], axis=1)
    fresh, pairs, counts = j.add_predictions(keys, ts, pred, proba.astype(np.float32))
    return fresh.tolist(), tuples(pairs), vars(counts)


def label(j: LabelJoin, ids: list[str], t: float) -> tuple[list[tuple], dict]:
    keys = id_keys(ids)
    y = (keys % np.uint64(3) == 0).astype(np.float64)
    pairs, counts = j.add_labels(keys, y, np.full(len(ids), t))
    return tuples(pairs), vars(counts)


def tuples(pairs: Pairs) -> list[tuple]:
    return sorted(
        (
            float(pairs.ts[i]),
            float(pairs.y_pred[i]),
            tuple(pairs.proba[i].tolist()),
            float(pairs.y_true[i]),
            float(pairs.delay[i]),
        )
        for i in range(len(pairs))
    )


def rebuilt(
    takes: list[Taken], early: dict[int, tuple[float, float]], expired_at: float | None = None
) -> LabelJoin:
    """A fresh join, as a new owner makes it: the folded takes and the record's early labels;
    expiry is not journalled, the new owner applies it again (at the old owner's last time)."""
    rows = fold(takes, WIDTH)
    j = make_join()
    j.install(rows["keys"], rows["ts"], rows["pred"], rows["proba"], rows["state"], dict(early))
    if expired_at is not None:
        j.expire(expired_at)
    return j


def assert_continues_alike(got: LabelJoin, want: LabelJoin, t: float) -> None:
    """Every id of the pool, then once more: labels, repeated predictions, repeated labels."""
    assert got.pending() == want.pending()
    assert got.early == want.early
    for i, name in enumerate(POOL):  # one at a time: a pair is the pair of that id
        assert label(got, [name], t + i) == label(want, [name], t + i), name
    assert got.pending() == want.pending()
    assert predict(got, POOL, t + 100) == predict(want, POOL, t + 100)
    assert label(got, POOL, t + 200) == label(want, POOL, t + 200)
    assert got.pending() == want.pending()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("predict"), st.lists(st.sampled_from(POOL), min_size=1, max_size=6)),
        st.tuples(st.just("label"), st.lists(st.sampled_from(POOL), min_size=1, max_size=6)),
        st.tuples(st.just("take"), st.just([])),
        st.tuples(st.just("expire"), st.just([])),  # past the TTL: ids may come again after
    ),
    max_size=40,
)


def run(
    j: LabelJoin, script: list[tuple[str, list[str]]]
) -> tuple[list[Taken], float, float | None]:
    """Apply ``script`` to ``j``; returns the journal takes (a final one included), the last
    time and the time of the last expiry (None if none)."""
    assert j.journal is not None
    takes, t, expired_at = [], T0, None
    for op, ids in script:
        t += 3.0
        if op == "predict":
            predict(j, ids, t)
        elif op == "label":
            label(j, ids, t)
        elif op == "expire":
            t += j.ttl + 1.0
            j.expire(t)
            expired_at = t
        else:
            takes.append(j.journal.take())
    takes.append(j.journal.take())
    return takes, t, expired_at


@settings(max_examples=150, deadline=None)
@given(script=ops)
def test_a_join_rebuilt_from_its_journal_continues_like_the_original(
    script: list[tuple[str, list[str]]],
) -> None:
    original = make_join()
    takes, t, expired_at = run(original, script)
    assert_continues_alike(rebuilt(takes, original.early, expired_at), original, t + 10)


@settings(max_examples=80, deadline=None)
@given(script=ops, fail_at=st.integers(0, 40), republish=st.booleans())
def test_a_failed_publication_requeued_loses_nothing_and_a_republished_take_is_idempotent(
    script: list[tuple[str, list[str]]], fail_at: int, republish: bool
) -> None:
    # One take's publication fails: it is put back ahead of what came since, and the next take
    # holds it. If the broker did store it after all (the ack was lost), the topic holds it
    # twice: folding it twice must change nothing.
    original = make_join()
    assert original.journal is not None
    published: list[Taken] = []
    t, failed = T0, False
    for step, (op, ids) in enumerate(script):
        t += 3.0
        if op == "predict":
            predict(original, ids, t)
        elif op == "label":
            label(original, ids, t)
        else:
            taken = original.journal.take()
            if step >= fail_at and not failed:
                failed = True
                original.journal.requeue(taken)
                if republish:
                    published.append(taken)
            else:
                published.append(taken)
    published.append(original.journal.take())
    assert_continues_alike(rebuilt(published, original.early), original, t + 10)


def test_folding_the_same_takes_twice_changes_nothing() -> None:
    j = make_join()
    assert j.journal is not None
    predict(j, ["a", "b", "c"], T0)
    first = j.journal.take()
    label(j, ["b", "zz"], T0 + 5)
    predict(j, ["d", "zz"], T0 + 6)
    second = j.journal.take()
    once = fold([first, second], WIDTH)
    twice = fold([first, first, second, first, second], WIDTH)
    assert once.keys() == twice.keys()
    for name in once:
        assert once[name].dtype == twice[name].dtype
        assert np.array_equal(once[name], twice[name]), name
    assert_continues_alike(rebuilt([first, first, second, second], j.early), j, T0 + 100)


def test_requeue_puts_the_failed_take_ahead_of_what_came_since() -> None:
    j = make_join()
    assert j.journal is not None
    predict(j, ["a", "b"], T0)
    label(j, ["a"], T0 + 1)
    failed = j.journal.take()
    assert failed["keys"].size == 2 and failed["joined"].tolist() == id_keys(["a"]).tolist()
    predict(j, ["c"], T0 + 2)
    label(j, ["b"], T0 + 3)
    j.journal.requeue(failed)
    again = j.journal.take()
    assert again["keys"].tolist() == id_keys(["a", "b", "c"]).tolist()
    assert again["joined"].tolist() == id_keys(["a", "b"]).tolist()
    assert again["proba"].shape == (3, WIDTH)
    empty = j.journal.take()
    assert empty["keys"].size == 0 and empty["proba"].shape == (0, WIDTH)


@pytest.mark.parametrize("first_joined", [False, True])
def test_an_id_that_comes_again_after_its_row_expired_folds_to_its_new_row(
    first_joined: bool,
) -> None:
    # Found by the property above: the fold kept a repeated key's *first* row, which had
    # expired, so the new owner joined a later label to the dead prediction (wrong pane and
    # values) or, after its own expiry, lost the new prediction; and a join of the dead row
    # marked the new one joined, so its label was refused as a duplicate.
    j = make_join()
    predict(j, ["a"], T0)
    if first_joined:
        label(j, ["a"], T0 + 1)
    takes = [j.journal.take()]  # type: ignore[union-attr]
    j.expire(T0 + 4000)
    predict(j, ["a"], T0 + 4000)  # the same id again, a new prediction to the join
    takes.append(j.journal.take())  # type: ignore[union-attr]
    new = rebuilt(takes, j.early, expired_at=T0 + 4000)
    assert new.pending() == j.pending() == 1
    assert label(new, ["a"], T0 + 4001) == label(j, ["a"], T0 + 4001)
    assert label(j, ["a"], T0 + 4002)[1]["duplicate_labels"] == 1


def test_a_prediction_joined_to_an_early_label_is_journalled_joined() -> None:
    # The label came first (it waits in the early labels, which the state record carries); the
    # prediction's row is journalled already joined, so its repeat label is a duplicate.
    j = make_join()
    label(j, ["x"], T0)
    predict(j, ["x", "y"], T0 + 1)
    assert j.early == {}
    new = rebuilt([j.journal.take()], j.early)  # type: ignore[union-attr]
    assert new.pending() == 1
    assert label(new, ["x"], T0 + 2)[1]["duplicate_labels"] == 1
    assert_continues_alike(new, j, T0 + 10)


def test_labels_joined_in_bulk_from_the_sorted_rows_are_journalled_once_in_order() -> None:
    """The steady state: labels for predictions already merged out of the insert buffer take
    the join's bulk path; the journal must name each joined key, in the labels' order."""
    j = make_join()
    predict(j, POOL[:8], T0)
    j.expire(T0 + 10)  # merges the insert buffer into the sorted rows
    j.journal.take()  # type: ignore[union-attr]
    ids = [POOL[5], POOL[1], POOL[6]]
    pairs, counts = label(j, ids, T0 + 20)
    assert (counts["joined"], counts["duplicate_labels"], len(pairs)) == (3, 0, 3)
    assert j.journal.take()["joined"].tolist() == id_keys(ids).tolist()  # type: ignore[union-attr]
    _, again = label(j, ids, T0 + 30)  # all three again: duplicates, nothing journalled
    assert (again["joined"], again["duplicate_labels"]) == (0, 3)
    assert j.journal.take()["joined"].tolist() == []  # type: ignore[union-attr]
