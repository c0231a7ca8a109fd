"""Which unseen categories: a heavy-hitters summary per categorical feature, pane and window.

The window's count vectors say *how many* values of a categorical feature were absent from the
reference (the unseen cell, :mod:`monitor.state.layout`); this says *which*. A Misra-Gries
summary (:mod:`monitor.stats.heavy_hitters`) is not subtractable, so it cannot slide like the
running totals of :class:`~monitor.state.window.PaneRing`. Instead each pane keeps its own
summary per feature (at most ``capacity`` counters), a pane that slides out is dropped whole,
and the evaluation merges the live panes' summaries. The merge keeps the summary's guarantee
over exactly the window's unseen values: each reported count is at most ``error`` below the
true one, ``error <= unseen values / (capacity + 1)``.

Memory is bounded: panes x categorical features x ``capacity`` counters per window, each value
cut to :data:`MAX_VALUE_CHARS` characters. The values are reported in the status API and the
webhook evidence only, never as metric labels (unbounded label values would explode the series).
The summaries are checkpointed with the windows; a checkpoint written before them restores with
none (the window then names only the unseen values that arrive after the restart).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from monitor.events import PredictionBatch
from monitor.reference.bins import CategoricalProfile
from monitor.state import restore_checks as checks
from monitor.state.layout import PREDICTION, Slot
from monitor.state.window import FloatArray, IntArray, distinct_panes, pane_ids
from monitor.stats.heavy_hitters import DEFAULT_CAPACITY, MisraGries
from monitor.vocabulary import canonical_key

#: Longest unseen value kept, in characters (a longer one is cut, so a hostile value is bounded).
MAX_VALUE_CHARS: Final = 120
#: How many of the most frequent unseen values the evaluation reports per feature.
TOP_UNSEEN: Final = 10


class UnseenPanes:
    """Per-pane heavy-hitters summaries of one window's unseen categories.

    Its panes follow the window's :class:`~monitor.state.window.PaneRing`: :meth:`add` is
    given the ring's head after the ring counted the same events.

    Examples
    --------
    >>> u = UnseenPanes(length=20.0, pane=10.0, features=("country",))
    >>> u.add(np.array([1.0, 2.0, 15.0]), "country", ["XX", "XX", "YY"], head=1)
    >>> u.top("country")
    ([('XX', 2), ('YY', 1)], 0)
    >>> u.add(np.zeros(0), "country", [], head=2)   # pane 0 slides out
    >>> u.top("country")
    ([('YY', 1)], 0)
    """

    def __init__(
        self,
        length: float,
        pane: float,
        features: Sequence[str],
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.pane = float(pane)
        self.n_panes = round(length / pane)
        self.features = tuple(features)
        self.capacity = capacity
        self.panes: dict[int, dict[str, MisraGries]] = {}

    def advance(self, head: int | None) -> None:
        """Drop the panes that slid out of the window ending at pane ``head``."""
        if head is None:
            return
        for pane_id in [p for p in self.panes if p <= head - self.n_panes]:
            del self.panes[pane_id]

    def add(
        self, timestamps: FloatArray, feature: str, values: Sequence[str], head: int | None
    ) -> None:
        """Count one feature's unseen ``values`` (one per timestamp) in their panes."""
        self.advance(head)
        if head is None or not len(values):
            return
        panes = pane_ids(timestamps, self.pane)
        inside = (panes > head - self.n_panes) & (panes <= head)
        for pane_id in distinct_panes(panes[inside]):
            picked = np.flatnonzero(panes == pane_id).tolist()
            sketches = self.panes.setdefault(pane_id, {})
            sketch = sketches.setdefault(feature, MisraGries(self.capacity))
            sketch.add(values[i][:MAX_VALUE_CHARS] for i in picked)

    def clamp(self, head: int) -> None:
        """Drop the panes after ``head`` (see ``PaneRing.clamp``)."""
        for pane_id in [p for p in self.panes if p > head]:
            del self.panes[pane_id]

    def merge_from(self, other: UnseenPanes, head: int | None) -> None:
        """Merge ``other``'s panes inside the window ending at ``head`` into this one's."""
        self.advance(head)
        if head is None:
            return
        for pane_id, sketches in other.panes.items():
            if not head - self.n_panes < pane_id <= head:
                continue
            mine = self.panes.setdefault(pane_id, {})
            for feature, sketch in sketches.items():
                mine.setdefault(feature, MisraGries(self.capacity)).merge(sketch)

    def merged(self, feature: str) -> MisraGries:
        """The window's summary of ``feature``: every live pane's, merged."""
        out = MisraGries(self.capacity)
        for sketches in self.panes.values():
            if feature in sketches:
                out.merge(sketches[feature])
        return out

    def top(self, feature: str, n: int = TOP_UNSEEN) -> tuple[list[tuple[str, int]], int]:
        """The ``n`` most frequent unseen values with their counts, and the counts' error."""
        sketch = self.merged(feature)
        return sketch.top(n), sketch.error

    def to_state(self) -> list[Any]:
        """``[[pane_id, {feature: [total, [[value, count], ...]]}], ...]`` (JSON)."""
        return [
            [pane_id, {f: [s.total, [[v, c] for v, c in s.top(s.capacity)]] for f, s in sk.items()}]
            for pane_id, sk in sorted(self.panes.items())
        ]

    def load_state(self, meta: object, head: int | None, what: str) -> None:
        """Restore :meth:`to_state`, checked against the window ending at ``head``."""
        panes: dict[int, dict[str, MisraGries]] = {}
        for item in checks.sequence(meta, what, self.n_panes):
            raw_id, raw_sketches = _pair(item, f"{what} pane")
            if head is None:
                raise ValueError(f"{what}: panes but no window head")
            pane_id = checks.integer(raw_id, f"{what} pane id", head - self.n_panes + 1, head)
            if pane_id in panes:
                raise ValueError(f"{what}: pane {pane_id} twice")
            sketches = checks.mapping(raw_sketches, f"{what} pane {pane_id}")
            panes[pane_id] = {
                feature: self._sketch(raw, f"{what} pane {pane_id} {feature}")
                for feature, raw in sketches.items()
                if self._known(feature, what)
            }
        self.panes = panes

    def _known(self, feature: str, what: str) -> bool:
        if feature not in self.features:
            raise ValueError(f"{what}: {feature!r} is not a categorical feature of the model")
        return True

    def _sketch(self, raw: object, what: str) -> MisraGries:
        total_raw, items = _pair(raw, what)
        total = checks.integer(total_raw, f"{what} total", 0)
        counters: dict[str, int] = {}
        for entry in checks.sequence(items, f"{what} counters", self.capacity):
            value, count = _pair(entry, f"{what} counter")
            text = checks.text(value, f"{what} value")
            if len(text) > MAX_VALUE_CHARS or text in counters:
                raise ValueError(f"{what}: a value too long or given twice")
            counters[text] = checks.integer(count, f"{what} count", 1)
        try:
            return MisraGries.restore(self.capacity, counters, total)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None


def _pair(value: object, what: str) -> tuple[Any, Any]:
    items = checks.sequence(value, what, 2)
    if len(items) != 2:
        raise ValueError(f"{what} must be a JSON array of two items")
    return items[0], items[1]


def unseen_columns(
    slots: Sequence[Slot], cells: IntArray, batch: PredictionBatch
) -> list[tuple[str, IntArray, list[str]]]:
    """For each categorical feature with unseen values in the batch: its name, the rows and
    the values (``cells`` as :func:`monitor.state.layout.columns` lays them out)."""
    if not slots or not len(batch):
        return []
    grid = cells.reshape(len(batch), len(slots))
    out = []
    for j, slot in enumerate(slots):
        if slot.name == PREDICTION or not isinstance(slot.profile, CategoricalProfile):
            continue
        rows = np.flatnonzero(grid[:, j] == slot.offset + slot.profile.n_bins - 2)
        if rows.size:
            # Only a present value of a fitting type reaches the unseen cell: never None.
            values = batch.feature(slot.name)
            keys = (canonical_key(values[i]) for i in rows.tolist())
            out.append((slot.name, rows, ["" if k is None else k for k in keys]))
    return out


def categorical_features(slots: Sequence[Slot]) -> tuple[str, ...]:
    """The categorical features (not the prediction) among ``slots``."""
    return tuple(
        s.name for s in slots if s.name != PREDICTION and isinstance(s.profile, CategoricalProfile)
    )
