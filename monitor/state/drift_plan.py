"""Every feature's drift and data quality from one window's count vector, in a few numpy calls.

Evaluating features one at a time costs tens of microseconds of Python each, and an evaluation
tick visits every feature of every model and window (10 models × 50 features × 3 windows is
1,500 of them). A :class:`DriftPlan` is built once per reference layout: it knows where each
feature's cells sit in the count vector (:mod:`monitor.state.layout`) and holds the reference
side of every statistic. :meth:`DriftPlan.evaluate` then gathers a window's cells into one table
per kind (a row per feature, value bins padded with cells empty on both sides, which no
statistic sees, then the missing bin), folds the data-quality cells back (a mismatched value is
missing, one below the range is in bin 0: :mod:`monitor.state.layout`), and runs the row-wise
statistics of :mod:`monitor.stats.drift` (PSI and chi-square once, over every slot's small
table side by side). Numbers equal the one-feature functions on each slot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.reference.bins import NumericProfile
from monitor.state.layout import PREDICTION, Slot
from monitor.state.quality import reference_quality
from monitor.state.window import IntArray
from monitor.stats.drift import chi2_rows, coarsen_rows, js_rows, ks_against, psi_rows
from monitor.vocabulary import FeatureKind

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FeatureColumns:
    """One entry per slot of the plan, in its order (NaN where a statistic does not apply)."""

    count: IntArray
    psi: FloatArray
    ks_statistic: FloatArray  # numeric only
    ks_pvalue: FloatArray
    chi2_pvalue: FloatArray
    js_distance: FloatArray  # categorical only
    missing: FloatArray
    type_mismatch: FloatArray
    out_of_range: FloatArray  # numeric only
    unseen: FloatArray  # categorical only
    numeric: npt.NDArray[np.bool_]

    @property
    def pvalue(self) -> FloatArray:
        """The p-value each feature's verdict uses: KS (numeric) or chi-square (categorical)."""
        return np.where(self.numeric, self.ks_pvalue, self.chi2_pvalue)


def _padded(rows: Sequence[npt.NDArray[np.int64]], fill: int | None) -> npt.NDArray[np.int64]:
    """Ragged rows (none empty) as one table, each padded on the right with ``fill`` (None:
    its own last entry)."""
    out = np.zeros((len(rows), max(map(len, rows), default=0)), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
        out[i, len(r) :] = r[-1] if fill is None else fill
    return out


#: At most this many blocks of adjacent slots are cut out of the count vector; past it, one
#: gather costs less than so many small copies.
MAX_BLOCKS = 4


def _blocks(slots: Sequence[Slot]) -> list[tuple[int, int, int]] | None:
    """The slots as blocks of adjacent ones of one size: (first cell, slots, cells per slot),
    in order; None when their widths differ (rows are padded: gathered instead) or there are
    too many blocks.

    >>> p = NumericProfile(np.array([1.0]), np.array([4, 4, 2]), np.array([0, 1]), 0.0)
    >>> _blocks([Slot("a", p, 0), Slot("b", p, 5), Slot("c", p, 12)])
    [(0, 2, 5), (12, 1, 5)]
    """
    if len({s.profile.n_bins for s in slots}) != 1:
        return None
    blocks: list[tuple[int, int, int]] = []
    for s in slots:
        size = s.stop - s.offset
        if blocks and blocks[-1][2] == size and blocks[-1][0] + blocks[-1][1] * size == s.offset:
            blocks[-1] = (blocks[-1][0], blocks[-1][1] + 1, size)  # right after the last one
        else:
            blocks.append((s.offset, 1, size))
    return blocks if len(blocks) <= MAX_BLOCKS else None


class _Kind:
    """The slots of one kind: where their cells are, and the reference side of the statistics.

    Rows are ``value bins (padded) + missing``; ``sentinel`` indexes a zero appended to the count
    vector, which is what the padding gathers.
    """

    def __init__(self, slots: Sequence[Slot], where: npt.NDArray[np.intp], sentinel: int) -> None:
        self.where = where  # their places among the plan's slots
        self.numeric = bool(slots) and isinstance(slots[0].profile, NumericProfile)
        n_bins = np.array([s.profile.n_bins for s in slots], dtype=np.int64)
        offsets = np.array([s.offset for s in slots], dtype=np.int64)
        values = _padded([s.offset + np.arange(s.profile.n_bins - 1) for s in slots], sentinel)
        self.gather = np.concatenate((values, (offsets + n_bins - 1)[:, None]), axis=1)
        # Usually one block of numeric features and the prediction's slot: cut out as views,
        # one copy, instead of gathering each cell by index.
        self.blocks = _blocks(slots)
        self.mismatch = offsets + n_bins  # folded into missing
        self.below = offsets + n_bins + 1  # numeric: folded into bin 0
        self.top = offsets + n_bins - 2  # the top value bin (numeric) or unseen (categorical)
        ref = [s.profile.counts for s in slots]
        ref_rows = _padded([r[:-1] for r in ref], 0)
        self.ref = np.column_stack((ref_rows, [r[-1] for r in ref]))
        if self.numeric:
            profiles = [s.profile for s in slots if isinstance(s.profile, NumericProfile)]
            coarse = _padded([p.coarse for p in profiles], 0)
            self.ref_psi = coarsen_rows(self.ref, coarse, max(p.n_coarse for p in profiles))
            cum_ref = np.cumsum(self.ref[:, :-1], axis=1)
            self.n_ref = cum_ref[:, -1].astype(np.float64)
            with np.errstate(invalid="ignore"):  # an empty reference: 0 / 0, NaN
                self.ref_cdf = cum_ref / self.n_ref[:, None]
            # The last value bin of each coarse bin (coarse bins are runs, checked on load); a
            # padded coarse bin repeats the row's last one, so its count below comes out 0.
            self.coarse_ends = _padded(
                [np.flatnonzero(np.diff(p.coarse, append=p.n_coarse)) for p in profiles], None
            )

    def counts(self, cells: IntArray) -> IntArray:
        """The drift counts of every slot of this kind (``cells`` ends with the sentinel 0)."""
        if self.blocks is not None:
            n = self.gather.shape[1]
            rows = np.concatenate(
                [cells[a : a + k * size].reshape(k, size)[:, :n] for a, k, size in self.blocks]
            )
        else:
            rows = np.take(cells, self.gather)  # take: faster than indexing, same result
        rows[:, -1] += cells[self.mismatch]
        if self.numeric:
            rows[:, 0] += cells[self.below]
        return rows


class DriftPlan:
    """The drift and quality statistics of ``slots`` (any kinds, any offsets) for a count vector.

    >>> p = NumericProfile(np.array([1.0]), np.array([4, 4, 2]), np.array([0, 1]), 0.0)
    >>> cols = DriftPlan((Slot("x", p, 0),)).evaluate(np.array([3, 4, 1, 1, 1]))
    >>> cols.count.tolist(), cols.psi.round(4).tolist(), cols.missing.tolist()
    ([10], [0.0], [0.1])
    """

    def __init__(self, slots: Sequence[Slot]) -> None:
        self.slots = tuple(slots)
        #: The features among them: all but the prediction's slot, last when present (as
        #: :func:`~monitor.state.layout.layout` orders them).
        self.n_features = sum(s.name != PREDICTION for s in self.slots)
        self.width = max((s.stop for s in self.slots), default=0)
        numeric = np.array([isinstance(s.profile, NumericProfile) for s in self.slots], bool)
        self._numeric = numeric
        numeric.flags.writeable = False  # every evaluation's columns share it
        self._kinds = tuple(
            _Kind([self.slots[i] for i in where], where, self.width)
            for where in (np.flatnonzero(numeric), np.flatnonzero(~numeric))
        )
        # Per slot, for the evaluation's per-feature loop (no property calls in it).
        self.names = tuple(s.name for s in self.slots)
        self.kinds: tuple[FeatureKind, ...] = tuple(s.kind for s in self.slots)
        self.ks_bounds = tuple(
            s.profile.ks_bound if isinstance(s.profile, NumericProfile) else None
            for s in self.slots
        )
        self.reference_quality = tuple(reference_quality(s.profile) for s in self.slots)
        # PSI and chi-square of every slot in one table (numeric: coarse bins + missing;
        # categorical: categories + unseen + missing), zero-padded: a bin empty on both sides
        # adds nothing to either. Small tables: one call each instead of one per kind.
        present = [kind for kind in self._kinds if kind.where.size]
        tables = [kind.ref_psi if kind.numeric else kind.ref for kind in present]
        self._small_ref = np.zeros((len(self.slots), max((t.shape[1] for t in tables), default=0)))
        for kind, table in zip(present, tables, strict=True):
            self._small_ref[kind.where, : table.shape[1]] = table

    def evaluate(self, total: IntArray) -> FeatureColumns:
        """Statistics of every slot over ``total``, the window's count vector."""
        if total.shape[0] < self.width:
            raise ValueError(f"count vector has {total.shape[0]} cells; slots need {self.width}")
        cells = np.append(total[: self.width], 0)  # the sentinel the padding gathers
        k = len(self.slots)
        count = np.zeros(k, dtype=np.int64)
        # The float columns, NaN where they do not apply.
        ks_statistic, ks_pvalue, js, missing, mismatch, out_of_range, unseen = np.full(
            (7, k), math.nan
        )
        small = np.zeros_like(self._small_ref)
        for kind in self._kinds:
            where = kind.where
            if not where.size:
                continue
            rows = kind.counts(cells)
            if kind.numeric:
                cum = np.cumsum(rows[:, :-1], axis=1)
                n = cum[:, -1] + rows[:, -1]  # the value bins' total, and the missing bin
            else:
                n = rows.sum(axis=1)
            count[where] = n
            with np.errstate(invalid="ignore"):  # n = 0: 0 / 0, NaN ratios
                missing[where] = cells[kind.gather[:, -1]] / n
                mismatch[where] = cells[kind.mismatch] / n
                top = cells[kind.top]
                if kind.numeric:  # above the range: the top value bin; below: its own cell
                    out_of_range[where] = (top + cells[kind.below]) / n
                else:
                    unseen[where] = top / n
            if kind.numeric:
                ks_statistic[where], ks_pvalue[where], _, _ = ks_against(
                    kind.ref_cdf, kind.n_ref, cum
                )
                # Coarse bins from the cumulative counts: exact integer differences, and no
                # second pass over the fine bins.
                ends = np.take_along_axis(cum, kind.coarse_ends, axis=1)
                width = ends.shape[1]
                small[where, :width] = np.diff(ends, axis=1, prepend=0)
                small[where, width] = rows[:, -1]
            else:
                small[where, : rows.shape[1]] = rows
                js[where] = js_rows(kind.ref, rows)
        return FeatureColumns(
            count=count,
            psi=psi_rows(self._small_ref, small),
            ks_statistic=ks_statistic,
            ks_pvalue=ks_pvalue,
            chi2_pvalue=chi2_rows(self._small_ref, small)[1],
            js_distance=js,
            missing=missing,
            type_mismatch=mismatch,
            out_of_range=out_of_range,
            unseen=unseen,
            numeric=self._numeric,
        )
