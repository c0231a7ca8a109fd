"""Join expiry and eviction by hand: the TTL boundary, stale early labels under the bound, and
exactly the oldest rows evicted (dead rows among them), across shuffled arrival orders."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.state.join import LabelJoin


def make(max_pending: int = 1000, max_early: int = 100) -> LabelJoin:
    return LabelJoin(
        ttl=100.0, label_wait=10.0, max_pending=max_pending, proba_width=1, max_early=max_early
    )


def predict(j: LabelJoin, keys: list[int], ts: list[float]) -> None:
    n = len(keys)
    j.add_predictions(
        np.array(keys, np.uint64), np.array(ts), np.zeros(n), np.zeros((n, 1), np.float32)
    )


def test_a_prediction_exactly_ttl_old_is_kept() -> None:
    j = make()
    predict(j, [1, 2], [100.0, 99.5])
    counts = j.expire(now=200.0)  # cutoff 100: key 2 is older, key 1 exactly at it
    assert counts.expired_unlabelled == 1
    assert j.keys.tolist() == [1]


def test_stale_early_labels_go_even_when_the_rest_fit_the_bound() -> None:
    j = make(max_early=2)
    j.add_labels(np.array([7, 8], np.uint64), np.ones(2), np.array([100.0, 105.0]))
    counts = j.expire(now=112.0)  # 7 waited longer than label_wait; 8 did not
    assert counts.orphan_labels == 1
    assert list(j.early) == [8]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eviction_takes_exactly_the_oldest_live_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ts = rng.permutation(np.arange(1000.0, 1050.0))  # 50 distinct times, shuffled
    keys = rng.permutation(np.arange(1, 51)).tolist()
    j = make(max_pending=40)
    predict(j, [999], [900.0])  # expires (older than the TTL): a dead row at eviction time
    predict(j, keys, ts.tolist())
    counts = j.expire(now=1049.0)
    assert (counts.expired_unlabelled, counts.evicted) == (1, 10)
    kept = {k for k, t in zip(keys, ts, strict=True) if t >= 1010.0}  # the 40 newest
    assert set(j.keys.tolist()) == kept


def test_one_row_over_the_bound_is_evicted() -> None:
    j = make(max_pending=2)
    predict(j, [1, 2, 3], [10.0, 12.0, 11.0])
    assert j.expire(now=12.0).evicted == 1
    assert j.keys.tolist() == [2, 3]


def test_repeated_labels_are_counted_each_and_no_pair_has_float64_scores() -> None:
    j = make()
    predict(j, [1, 2], [10.0, 11.0])
    keys = np.array([1, 2], np.uint64)
    pairs, counts = j.add_labels(keys, np.ones(2), np.array([12.0, 12.0]))
    assert counts.joined == 2
    again, counts = j.add_labels(keys, np.ones(2), np.array([13.0, 13.0]))
    assert counts.duplicate_labels == 2
    assert again.proba.shape == (0, 1)
    assert again.proba.dtype == pairs.proba.dtype == np.float32


def test_a_repeat_is_recognised_in_the_sorted_part_while_the_buffer_holds_others() -> None:
    j = make()
    predict(j, [1], [10.0])
    j.expire(now=10.0)  # flushes key 1 into the sorted columns
    predict(j, [2], [11.0])  # the buffer is not empty now
    keys = np.array([1, 3, 3], np.uint64)
    fresh, _, counts = j.add_predictions(
        keys, np.full(3, 12.0), np.zeros(3), np.zeros((3, 1), np.float32)
    )
    assert fresh.tolist() == [False, True, False]
    assert counts.duplicate_predictions == 2


def test_one_batch_larger_than_twice_the_buffer() -> None:
    j = make(max_pending=10_000)
    keys = list(range(1, 5001))
    predict(j, keys, [float(k) for k in keys])
    assert j.pending() == 5000
    j.expire(now=5000.0)  # TTL 100: keys 4900..5000 stay
    assert j.keys.tolist() == list(range(4900, 5001))


@pytest.mark.parametrize("where", ["sorted", "buffer", "early"])
def test_every_repeated_label_is_counted(where: str) -> None:
    j = make()
    if where != "early":
        predict(j, [1], [10.0])
    if where == "sorted":
        j.expire(now=10.0)  # flushes the prediction into the sorted columns
    key = 1 if where != "early" else 9
    _, counts = j.add_labels(np.full(3, key, np.uint64), np.ones(3), np.full(3, 12.0))
    assert counts.duplicate_labels == 2
    assert counts.joined == (0 if where == "early" else 1)


def test_a_full_insert_buffer_is_merged_and_held_to_max_pending_at_once() -> None:
    j = make(max_pending=10)
    n = 32_768  # exactly the insert buffer's merge size
    keys = np.arange(1, n + 1, dtype=np.uint64)
    _, _, counts = j.add_predictions(
        keys, np.arange(n, dtype=np.float64), np.zeros(n), np.zeros((n, 1), np.float32)
    )
    assert counts.evicted == n - 10
    assert j.pending() == 10
    assert j.keys.tolist() == list(range(n - 9, n + 1))  # the newest ten
