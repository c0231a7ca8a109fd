"""The join's checkpoint part: each malformed piece is refused with its own message, the
64-bit key limits are exact, a dead row is a valid row, and the columns' size is exact."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from monitor.state.join import DEAD, LabelJoin

WIDTH = 2


def make() -> LabelJoin:
    return LabelJoin(ttl=100.0, label_wait=10.0, max_pending=1000, proba_width=WIDTH, max_early=2)


def columns(
    keys: list[int], state: list[int] | None = None, ts: list[float] | None = None
) -> dict[str, npt.NDArray[Any]]:
    n = len(keys)
    return {
        "j.keys": np.array(keys, dtype=np.uint64),
        "j.ts": np.array(ts if ts is not None else [1.0] * n, dtype=np.float64),
        "j.pred": np.arange(n, dtype=np.float64),
        "j.proba": np.full((n, WIDTH), 0.5, dtype=np.float32),
        "j.state": np.array(state if state is not None else [0] * n, dtype=np.uint8),
    }


def test_a_valid_part_restores_with_dead_rows_and_every_64_bit_key() -> None:
    j = make()
    early = [[str(2**64 - 1), 1.0, 3.0], ["00000000000000000007", 0.0, 4]]  # 20 digits each
    j.load_state({"early": early}, columns([5, 9, 2**63], state=[0, DEAD, 1]), "j")
    assert j.keys.tolist() == [5, 9, 2**63]
    assert j.state.tolist() == [0, DEAD, 1]
    assert j.early == {2**64 - 1: (1.0, 3.0), 7: (0.0, 4.0)}
    j.load_state({"early": []}, columns([4]), "j")  # one row is trivially sorted
    assert j.keys.tolist() == [4]


def test_nbytes_counts_the_sorted_columns_exactly() -> None:
    j = make()
    assert j.nbytes() == 0
    j.load_state({"early": []}, columns([1, 2, 3]), "j")
    assert j.nbytes() == 3 * (8 + 8 + 8 + 4 * WIDTH + 1)


@pytest.mark.parametrize(
    ("meta", "arrays", "message"),
    [
        ([], columns([1]), "j join must be a JSON object"),
        ({"early": []}, {}, "checkpoint array j.keys is missing or not one-dimensional"),
        (
            {"early": []},
            {**columns([1]), "j.keys": np.zeros((1, 1), np.uint64)},
            "checkpoint array j.keys is missing or not one-dimensional",
        ),
        ({"early": []}, columns([2, 1]), "checkpoint array j.keys is not strictly increasing"),
        ({"early": []}, columns([1, 1]), "checkpoint array j.keys is not strictly increasing"),
        ({"early": []}, columns([1, 3, 2]), "checkpoint array j.keys is not strictly increasing"),
        (
            {"early": []},
            columns([1, 2], state=[0, DEAD + 1]),
            "checkpoint j: row states or times out of range",
        ),
        (
            {"early": []},
            columns([1, 2], ts=[1.0, np.inf]),
            "checkpoint j: row states or times out of range",
        ),
        ({"early": {}}, columns([1]), "j early labels must be a JSON array"),
        ({"early": [["1", 1.0, 1.0]] * 3}, columns([1]), "j early labels has 3 items, more than 2"),
        ({"early": ["1"]}, columns([1]), "j early label must be a JSON array"),
        ({"early": [["1", 1.0, 1.0, 0]]}, columns([1]), "j early label has 4 items, more than 3"),
        ({"early": [[1, 1.0, 1.0]]}, columns([1]), "early label key must be a string"),
        ({"early": [["1", "y", 1.0]]}, columns([1]), "early label value must be a number"),
        ({"early": [["1", 1.0, None]]}, columns([1]), "early label time must be a number"),
    ],
)
def test_a_malformed_part_is_refused(meta: Any, arrays: Any, message: str) -> None:
    j = make()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        j.load_state(meta, arrays, "j")
    assert j.keys.size == 0  # nothing applied


@pytest.mark.parametrize(
    "key",
    [
        "x1",
        "-1",
        str(2**64),  # 20 digits, one past the largest key
        "99999999999999999999",  # 20 digits
        "000000000000000000001",  # 21 digits, small
    ],
)
def test_an_early_label_key_outside_64_bits_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match=r"^checkpoint j: early label key is not a 64-bit key$"):
        make().load_state({"early": [[key, 1.0, 1.0]]}, columns([1]), "j")
