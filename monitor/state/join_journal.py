"""What a label join took in since it was last published, and the join rebuilt from that.

Group mode (``coordination.enabled``) keeps each input partition's pending predictions in
Kafka, so that a replica that takes a partition over (its owner died with its disk) still
joins the labels that arrive after the handoff. Publishing the whole join at every flush would
cost far more than the input (a million pending rows are about 40 MB): instead each flush
publishes the rows inserted since the previous one and the keys that joined since, and a new
owner folds those entries, oldest first. Expiry and eviction are not journalled: they follow
from the rows' times and the join's bounds, and the new owner applies them again.

Pure: numpy in, numpy out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

#: Row states, as :mod:`monitor.state.join` numbers them.
_JOINED = 1
COLUMNS = ("keys", "ts", "pred", "proba", "state")


@dataclass
class JoinJournal:
    """Rows inserted and keys joined since the last :meth:`take`."""

    proba_width: int
    _rows: list[tuple[npt.NDArray[Any], ...]] = field(default_factory=list)
    #: Keys joined, in order (a dict as an ordered set: an id that comes again is dropped in
    #: O(1), not by a scan of every key joined since the last take, on each batch).
    joined: dict[int, None] = field(default_factory=dict)

    def inserted(
        self,
        keys: npt.NDArray[np.uint64],
        ts: npt.NDArray[np.float64],
        pred: npt.NDArray[np.float64],
        proba: npt.NDArray[np.float32],
        state: npt.NDArray[np.uint8],
    ) -> None:
        if keys.size:
            if self.joined:  # a key comes again only once its row died: that row's join is moot
                for k in keys.tolist():
                    self.joined.pop(k, None)
            self._rows.append((keys.copy(), ts.copy(), pred.copy(), proba.copy(), state.copy()))

    def take(self) -> dict[str, npt.NDArray[Any]]:
        """The entries as columns (``joined`` too), and an empty journal."""
        out = concat(self._rows, self.proba_width)
        out["joined"] = np.fromiter(self.joined, dtype=np.uint64, count=len(self.joined))
        self._rows, self.joined = [], {}
        return out

    def requeue(self, taken: dict[str, npt.NDArray[Any]]) -> None:
        """Put back a :meth:`take` whose publication failed, ahead of what came since."""
        since = {k for row in self._rows for k in row[0].tolist()}  # rows inserted since
        self._rows.insert(0, tuple(taken[name] for name in COLUMNS))
        earlier = dict.fromkeys(k for k in taken["joined"].tolist() if k not in since)
        self.joined = earlier | self.joined


def concat(rows: list[tuple[npt.NDArray[Any], ...]], proba_width: int) -> dict[str, Any]:
    if not rows:
        return {
            "keys": np.zeros(0, np.uint64),
            "ts": np.zeros(0),
            "pred": np.zeros(0),
            "proba": np.zeros((0, proba_width), np.float32),
            "state": np.zeros(0, np.uint8),
        }
    return {name: np.concatenate([r[i] for r in rows]) for i, name in enumerate(COLUMNS)}


def fold(entries: Iterable[dict[str, npt.NDArray[Any]]], proba_width: int) -> dict[str, Any]:
    """The join's rows after ``entries`` (journal takes, oldest first), keys sorted.

    A key inserted twice keeps its last row: the join refuses a repeated id while it knows it,
    so an earlier row had expired or been evicted before the id came again. A joined key marks
    its row joined if it joined in the take that inserted the row or a later one (an earlier
    join was of the row that died; within one take, :meth:`JoinJournal.inserted` drops it).

    >>> a = {"keys": np.array([5, 3], np.uint64), "ts": np.array([1.0, 2.0]),
    ...      "pred": np.zeros(2), "proba": np.zeros((2, 1), np.float32),
    ...      "state": np.zeros(2, np.uint8), "joined": np.zeros(0, np.uint64)}
    >>> b = {**a, "keys": np.array([7], np.uint64), "ts": np.array([3.0]), "pred": np.zeros(1),
    ...      "proba": np.zeros((1, 1), np.float32), "state": np.zeros(1, np.uint8),
    ...      "joined": np.array([5], np.uint64)}
    >>> out = fold([a, b], 1)
    >>> out["keys"].tolist(), out["state"].tolist()
    ([3, 5, 7], [0, 1, 0])
    """
    rows: list[tuple[npt.NDArray[Any], ...]] = []
    row_take: list[npt.NDArray[np.intp]] = [np.zeros(0, np.intp)]
    joined: list[npt.NDArray[np.uint64]] = [np.zeros(0, np.uint64)]
    joined_take: list[npt.NDArray[np.intp]] = [np.zeros(0, np.intp)]
    for i, e in enumerate(entries):
        rows.append(tuple(e[name] for name in COLUMNS))
        row_take.append(np.full(e["keys"].size, i, np.intp))
        joined.append(e["joined"])
        joined_take.append(np.full(e["joined"].size, i, np.intp))
    out = concat(rows, proba_width)
    n = out["keys"].size
    _, first_reversed = np.unique(out["keys"][::-1], return_index=True)  # sorted by key
    last = n - 1 - first_reversed
    out = {name: col[last] for name, col in out.items()}
    took = np.concatenate(row_take)[last]
    keys, jkeys, jtake = out["keys"], np.concatenate(joined), np.concatenate(joined_take)
    if keys.size and jkeys.size:
        at = np.minimum(np.searchsorted(keys, jkeys), keys.size - 1)
        hit = keys[at] == jkeys
        latest = np.full(keys.size, -1, np.intp)
        np.maximum.at(latest, at[hit], jtake[hit])
        done = latest >= took
        out["state"] = np.where(done, np.uint8(_JOINED), out["state"]).astype(np.uint8)
    return out
