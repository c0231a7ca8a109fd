"""Event-time sliding windows made of panes of mergeable counts.

Pure: event time is always an argument, no clock is read. A window of length ``L`` is ``L / P``
panes of ``P`` seconds; pane ``k`` holds the events with ``k*P <= t < (k+1)*P``. The window
ends at the pane of the newest event time seen (the *head*), so it covers the panes
``(head - n_panes, head]``. A running total is kept: adding to a pane adds to the total, and a
pane that slides out is subtracted, so evaluation reads one vector whatever the traffic.

The watermark is the newest event time seen minus the allowed lateness; an event older than the
watermark *at the moment it arrives* is late: counted by the caller, never stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from monitor.state import restore_checks as checks

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_EMPTY = np.iinfo(np.int64).min
#: The pane id of a free slot (public for the state topic's pane records).
EMPTY_PANE = _EMPTY


def accept_on_time(
    timestamps: FloatArray, newest_seen: float, allowed_lateness: float
) -> tuple[npt.NDArray[np.bool_], float]:
    """Mask of events that are not late, and the newest event time after the batch.

    Vectorised but order-exact: event ``i`` is judged against the newest time seen *before*
    it (earlier batches and earlier records of this batch), as if processed one by one, so the
    result does not depend on how records were split into batches.

    >>> ts = np.array([100.0, 50.0, 200.0, 150.0, 30.0])
    >>> mask, newest = accept_on_time(ts, newest_seen=90.0, allowed_lateness=60.0)
    >>> mask.tolist(), newest
    ([True, True, True, True, False], 200.0)
    """
    if timestamps.size == 0:
        return np.zeros(0, dtype=bool), newest_seen
    before = np.maximum.accumulate(np.concatenate(([newest_seen], timestamps[:-1])))
    mask = timestamps >= before - allowed_lateness
    return mask, float(max(newest_seen, float(timestamps.max())))


def pane_ids(timestamps: npt.ArrayLike, pane: float) -> IntArray:
    """The pane of each time: the ``k`` with ``k*pane <= t < (k+1)*pane`` in float arithmetic.

    >>> pane_ids(np.array([1_700_000_000.0, 0.3]), 0.1).tolist()
    [17000000000, 2]

    ``floor(t / pane)`` alone is off by one near a boundary when the pane is not a binary
    fraction (0.1 s) at epoch scale: the quotient rounds across the integer, and
    :meth:`PaneRing.bounds` (``k * pane``) would then place the event outside the pane that
    counted it (the model state's too-late count compares times with those bounds).
    """
    t = np.asarray(timestamps, dtype=np.float64)
    k = np.floor(t / pane)
    k -= k * pane > t
    k += (k + 1) * pane <= t
    return k.astype(np.int64)


def distinct_panes(panes: IntArray) -> list[int]:
    """The distinct pane ids, ascending: usually one (a batch spans seconds), found in two
    reductions instead of a sort or a hash table.

    >>> distinct_panes(np.array([7, 7, 7])), distinct_panes(np.array([9, 7, 9]))
    ([7], [7, 9])
    """
    if not panes.size:
        return []
    lo, hi = int(panes.min()), int(panes.max())
    return [lo] if lo == hi else np.unique(panes).tolist()


def pane_id(timestamp: float, pane: float) -> int:
    """:func:`pane_ids` of one time."""
    return int(pane_ids(np.array([timestamp]), pane)[0])


def _check_panes(pane_ids: IntArray, head: int | None, n_panes: int, prefix: str) -> None:
    """Each live pane sits in its own slot and inside the window that ends at ``head``."""
    live = pane_ids != _EMPTY
    if not live.any():
        return
    ids = pane_ids[live]
    if (
        head is None
        or (ids <= head - n_panes).any()
        or (ids > head).any()
        or ((ids % n_panes) != np.flatnonzero(live)).any()
    ):
        raise ValueError(f"checkpoint {prefix}: pane ids do not fit a window ending at {head}")


class PaneRing:
    """A sliding window of fixed-width count vectors, one row per pane, in a ring buffer.

    Parameters
    ----------
    length, pane:
        Window length and pane size in seconds; ``length`` is a whole number of panes.
    width:
        Number of counters per pane (all features' bins side by side).

    Examples
    --------
    >>> ring = PaneRing(length=30.0, pane=10.0, width=3)
    >>> ring.add(np.array([0.0, 5.0, 12.0]), np.array([0, 1, 1]))
    >>> ring.total.tolist()
    [1, 2, 0]
    >>> ring.add(np.array([31.0]), np.array([2]))   # head moves to pane 3: pane 0 slides out
    >>> ring.total.tolist(), ring.bounds()
    ([0, 1, 1], (10.0, 40.0))
    """

    def __init__(self, length: float, pane: float, width: int) -> None:
        self.pane = float(pane)
        self.n_panes = round(length / pane)
        self.width = width
        # int32 per pane keeps a 1h/1m window of 20 features x 1000 bins under 5 MB.
        self.slots = np.zeros((self.n_panes, width), dtype=np.int32)
        self.pane_ids = np.full(self.n_panes, _EMPTY, dtype=np.int64)
        self.total = np.zeros(width, dtype=np.int64)
        self.head: int | None = None

    def pane_of(self, timestamps: FloatArray) -> IntArray:
        return pane_ids(timestamps, self.pane)

    def advance(self, head: int) -> None:
        """Move the head to pane ``head`` (never backwards), expiring panes that slide out."""
        if self.head is not None and head <= self.head:
            return
        self.head = head
        stale = (self.pane_ids != _EMPTY) & (self.pane_ids <= head - self.n_panes)
        for slot in np.flatnonzero(stale):
            self.total -= self.slots[slot]
            self.slots[slot] = 0
            self.pane_ids[slot] = _EMPTY

    def clamp(self, head: int) -> None:
        """Pull the head back to pane ``head``, dropping the panes after it (a watermark that
        ran ahead of the wall clock; see ``ModelState.clamp_event_time``)."""
        if self.head is None or head >= self.head:
            return
        self.head = head
        for slot in np.flatnonzero((self.pane_ids != _EMPTY) & (self.pane_ids > head)):
            self.total -= self.slots[slot]
            self.slots[slot] = 0
            self.pane_ids[slot] = _EMPTY

    def in_window(self, pane_ids: IntArray) -> npt.NDArray[np.bool_]:
        if self.head is None:
            return np.zeros(pane_ids.shape, dtype=bool)
        return (pane_ids > self.head - self.n_panes) & (pane_ids <= self.head)

    def add(self, timestamps: FloatArray, bins: IntArray, per_event: int = 1) -> None:
        """Count events: ``bins`` holds ``per_event`` counter indices per event, event-major.

        The head first advances to the newest pane in the batch; events whose pane is then
        outside the window are not stored (they would have slid out anyway).
        """
        if timestamps.size == 0:
            return
        panes = self.pane_of(timestamps)
        self.advance(int(panes.max()))
        keep = self.in_window(panes)
        if not keep.all():
            panes, bins = panes[keep], bins.reshape(-1, per_event)[keep].ravel()
        ids = distinct_panes(panes)
        if not ids:
            return
        if len(ids) == 1:  # the usual batch: one count vector
            self.add_counts(ids[0], np.bincount(bins, minlength=self.width))
            return
        # One bincount for all panes: each pane's counters side by side.
        rank = np.searchsorted(np.array(ids), panes)
        flat = np.repeat(rank * self.width, per_event) + bins
        counts = np.bincount(flat, minlength=len(ids) * self.width).reshape(len(ids), -1)
        for pane_id, row in zip(ids, counts, strict=True):
            self.add_counts(pane_id, row)

    def add_counts(self, pane_id: int, counts: IntArray) -> bool:
        """Add a count vector to pane ``pane_id`` if it is inside the window."""
        if self.head is None or not (self.head - self.n_panes < pane_id <= self.head):
            return False
        slot = pane_id % self.n_panes
        if self.pane_ids[slot] != pane_id:
            self.slots[slot] = 0
            self.pane_ids[slot] = pane_id
        self.slots[slot] += counts.astype(np.int32, copy=False)
        self.total += counts
        return True

    def merge_from(self, other: PaneRing) -> None:
        """Add ``other``'s panes (same geometry) that fall inside this window; the head first
        moves to the newer of the two (a group merges its partitions' windows this way)."""
        if other.head is None:
            return
        self.advance(other.head)
        for slot in np.flatnonzero(other.pane_ids != _EMPTY).tolist():
            self.add_counts(int(other.pane_ids[slot]), other.slots[slot])

    def to_state(self, arrays: dict[str, npt.NDArray[Any]], prefix: str) -> dict[str, Any]:
        """Put the panes into ``arrays`` under ``prefix``; returns the scalar part."""
        arrays[f"{prefix}.slots"] = self.slots
        arrays[f"{prefix}.pane_ids"] = self.pane_ids
        return {"head": self.head, "width": self.width, "n_panes": self.n_panes}

    def load_state(
        self, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]], prefix: str
    ) -> None:
        """Restore :meth:`to_state`; raises ValueError for any part that does not fit."""
        meta = checks.mapping(meta, f"{prefix} window")
        if (meta.get("width"), meta.get("n_panes")) != (self.width, self.n_panes):
            raise ValueError("window shape differs from the checkpoint (config changed)")
        head = checks.optional_integer(meta.get("head"), f"{prefix}.head")
        slots = checks.array(arrays, f"{prefix}.slots", np.int32, (self.n_panes, self.width))
        pane_ids = checks.array(arrays, f"{prefix}.pane_ids", np.int64, (self.n_panes,))
        _check_panes(pane_ids, head, self.n_panes, prefix)
        if (slots < 0).any():
            raise ValueError(f"checkpoint array {prefix}.slots holds negative counts")
        self.slots, self.pane_ids, self.head = slots.copy(), pane_ids.copy(), head
        # The total is derived, so a checkpoint cannot hold an inconsistent one.
        self.total = self.slots.sum(axis=0, dtype=np.int64)

    def bounds(self) -> tuple[float, float]:
        """Event-time ``[start, end)`` the window covers (NaN before the first event)."""
        if self.head is None:
            return float("nan"), float("nan")
        return (self.head - self.n_panes + 1) * self.pane, (self.head + 1) * self.pane


@dataclass(frozen=True)
class WindowView:
    """An immutable copy of a window's totals, taken at evaluation time."""

    name: str
    start: float
    end: float
    total: IntArray
    #: Categorical feature → (its most frequent unseen values with counts, the counts' error).
    unseen: dict[str, tuple[list[tuple[str, int]], int]] = field(default_factory=dict)


class Mergeable(Protocol):
    def to_state(self) -> dict[str, Any]: ...
    def merge(self, other: Any) -> None: ...
    def subtract(self, other: Any) -> None: ...
    def clear(self) -> None: ...


A = TypeVar("A", bound=Mergeable)


class AccumulatorRing(Generic[A]):
    """Like :class:`PaneRing`, for mergeable accumulators (performance sums) instead of counts.

    Its head follows a :class:`PaneRing` of the same model (predictions move time forward;
    labels only update the pane of their prediction while that pane is still in the window).
    """

    def __init__(self, length: float, pane: float, factory: Callable[[], A]) -> None:
        self.pane = float(pane)
        self.n_panes = round(length / pane)
        self._factory = factory
        self.slots = [factory() for _ in range(self.n_panes)]
        self.pane_ids = np.full(self.n_panes, _EMPTY, dtype=np.int64)
        self.total = factory()
        self.head: int | None = None

    def advance(self, head: int | None) -> None:
        if head is None or (self.head is not None and head <= self.head):
            return
        self.head = head
        self._drop((self.pane_ids != _EMPTY) & (self.pane_ids <= head - self.n_panes))

    def clamp(self, head: int) -> None:
        """Like :meth:`PaneRing.clamp`."""
        if self.head is None or head >= self.head:
            return
        self.head = head
        self._drop((self.pane_ids != _EMPTY) & (self.pane_ids > head))

    def _drop(self, panes: npt.NDArray[np.bool_]) -> None:
        """Empty these panes. The total is summed again from the panes left, not reduced by
        subtraction: float sums cannot take back an overflow (inf - inf is NaN), and a huge
        value (one target in the wrong units) leaves the small ones lost to rounding after it
        is subtracted; a busy window, never empty, would never recover."""
        if not panes.any():
            return
        for slot in np.flatnonzero(panes):
            self.slots[slot].clear()
        self.pane_ids[panes] = _EMPTY
        self.total.clear()
        for slot in np.flatnonzero(self.pane_ids != _EMPTY):
            self.total.merge(self.slots[slot])

    def merge_from(self, other: AccumulatorRing[A]) -> None:
        """Like :meth:`PaneRing.merge_from`: ``other``'s panes inside this window, merged in."""
        if other.head is None:
            return
        self.advance(other.head)
        assert self.head is not None
        for slot in np.flatnonzero(other.pane_ids != _EMPTY).tolist():
            pane_id = int(other.pane_ids[slot])
            if not (self.head - self.n_panes < pane_id <= self.head):
                continue
            mine = pane_id % self.n_panes
            if self.pane_ids[mine] != pane_id:
                self.slots[mine].clear()
                self.pane_ids[mine] = pane_id
            self.slots[mine].merge(other.slots[slot])
            self.total.merge(other.slots[slot])

    def to_state(self) -> dict[str, Any]:
        live = np.flatnonzero(self.pane_ids != _EMPTY).tolist()
        return {
            "head": self.head,
            "panes": [[int(self.pane_ids[i]), self.slots[i].to_state()] for i in live],
        }

    def load_state(self, meta: dict[str, Any], from_state: Callable[[Any], A]) -> None:
        """Restore :meth:`to_state`; ``from_state`` rebuilds (and checks) one accumulator."""
        meta = checks.mapping(meta, "accumulator window")
        head = checks.optional_integer(meta.get("head"), "accumulator window head")
        panes = checks.sequence(meta.get("panes"), "accumulator panes", max_len=self.n_panes)
        slots = [self._factory() for _ in range(self.n_panes)]
        pane_ids = np.full(self.n_panes, _EMPTY, dtype=np.int64)
        total = self._factory()
        for item in panes:
            pane_id, state = checks.sequence(item, "accumulator pane", max_len=2)
            slot = checks.integer(pane_id, "accumulator pane id") % self.n_panes
            if pane_ids[slot] != _EMPTY:
                raise ValueError(f"checkpoint holds two accumulator panes for slot {slot}")
            slots[slot] = from_state(state)
            pane_ids[slot] = pane_id
            total.merge(slots[slot])
        _check_panes(pane_ids, head, self.n_panes, "accumulator window")
        self.slots, self.pane_ids, self.total, self.head = slots, pane_ids, total, head

    def add(
        self, timestamps: FloatArray, fill: Callable[[A, npt.NDArray[np.bool_]], None]
    ) -> npt.NDArray[np.bool_]:
        """Add rows by pane: ``fill(acc, mask)`` adds the masked rows to a fresh accumulator.

        Returns the mask of rows that fell outside the window (their pane already slid out).
        """
        if timestamps.size == 0 or self.head is None:
            return np.ones(timestamps.size, dtype=bool)
        panes = pane_ids(timestamps, self.pane)
        inside = (panes > self.head - self.n_panes) & (panes <= self.head)
        for pane_id in distinct_panes(panes[inside]):
            part = self._factory()
            fill(part, panes == pane_id)
            slot = pane_id % self.n_panes
            if self.pane_ids[slot] != pane_id:
                self.slots[slot].clear()
                self.pane_ids[slot] = pane_id
            self.slots[slot].merge(part)
            self.total.merge(part)
        return ~inside
