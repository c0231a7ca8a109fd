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
