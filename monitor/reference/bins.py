"""Per-feature reference profiles: the bins one feature's values fall into, and their counts.

Numeric features get fixed fine bins at reference quantiles (plus a missing bin), so a window is
a vector of counts per bin that merges by addition; categorical features get the reference's
most frequent categories plus an "unseen" and a "missing" bucket.
:mod:`monitor.reference.build` builds them from training values; :mod:`monitor.reference.profile`
bundles one per feature (and one for the prediction) into a model's saved
:class:`~monitor.reference.profile.ReferenceProfile`.

Numeric bins are right-closed: with edges ``e``, bin 0 is ``(-inf, e[0]]``, bin ``i`` is
``(e[i-1], e[i]]``, bin ``len(e)`` is ``(e[-1], +inf)`` (infinite values land in the outer
bins) and bin ``len(e) + 1`` holds missing values (None/NaN).

Data quality rides on the same counts. The reference's finite range is ``[low, e[-1]]``: the
last edge is the largest finite reference value, so the top bin ``(e[-1], +inf)`` is exactly
"above the range"; values below ``low`` share bin 0 with the minimum, so a window keeps them
in a cell of their own (see :mod:`monitor.state.layout`). Optional fields (absent from
profiles written before them, which load unchanged and keep their content hash) record the
reference's own values outside its range and of the wrong type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.reference.edge_grid import EdgeGrid
from monitor.vocabulary import canonical_key

#: Types whose values :func:`canonical_key` returns unchanged.
_SPELLED = frozenset({str, type(None)})


class ReferenceProfileError(ValueError):
    """A reference profile or a training file is invalid; the message names the problem."""


def _int_array(value: Any, what: str) -> npt.NDArray[np.int64]:
    arr = np.asarray(value)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ReferenceProfileError(f"{what} must be a one-dimensional list of integers")
    arr = arr.astype(np.int64)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """Fine quantile bins of a numeric feature with the reference counts in them.

    Attributes
    ----------
    edges : numpy.ndarray of float64
        Finite, strictly increasing right-closed bin edges (see the module docstring).
    counts : numpy.ndarray of int64
        Reference count per bin: ``len(edges) + 1`` value bins, then the missing bin.
    coarse : numpy.ndarray of int64
        Coarse PSI bin of each value bin: non-decreasing from 0 in steps of 0 or 1. About 10
        groups (``coarse_bins``), each holding about 1/10 of the reference; a point mass
        larger than that is a group of its own.
    ks_bound : float
        Largest share of the non-missing reference in one bin whose open interior is
        non-empty. For window samples binned the same way,
        ``D_edges <= D_exact <= D_edges + ks_bound``.
    low : float or None
        The smallest finite reference value. None in profiles written before it was kept:
        ``edges[0]`` stands in (one float step below the minimum when that was a point mass).
    out_of_range : int
        Reference values outside ``[low, edges[-1]]`` (infinities), counted in the outer bins.
    type_mismatch : int
        Reference values of the wrong type (bootstrapped references), counted as missing.
    """

    edges: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    coarse: npt.NDArray[np.int64]
    ks_bound: float
    low: float | None = None
    out_of_range: int = 0
    type_mismatch: int = 0
    _grid: EdgeGrid = field(init=False, repr=False)

    def __post_init__(self) -> None:
        edges = np.array(self.edges, dtype=np.float64)
        if edges.ndim != 1 or not np.all(np.isfinite(edges)):
            raise ReferenceProfileError("edges must be a one-dimensional list of finite numbers")
        if np.any(edges[1:] <= edges[:-1]):
            raise ReferenceProfileError("edges must be strictly increasing")
        edges.setflags(write=False)
        counts = _int_array(self.counts, "counts")
        coarse = _int_array(self.coarse, "coarse")
        if counts.size != edges.size + 2 or np.any(counts < 0):
            raise ReferenceProfileError(f"counts must be {edges.size + 2} non-negative integers")
        steps = np.diff(coarse)
        if coarse.size != edges.size + 1 or coarse[0] != 0 or np.any((steps < 0) | (steps > 1)):
            raise ReferenceProfileError(
                f"coarse must be {edges.size + 1} integers rising from 0 in steps of 0 or 1"
            )
        ks_bound = float(self.ks_bound)
        if not 0.0 <= ks_bound <= 1.0:
            raise ReferenceProfileError(f"ks_bound must be in [0, 1], got {ks_bound}")
        if self.low is not None:
            low = float(self.low)
            # Values below low must fall in bin 0 for the window's "below" cell to fold back.
            with np.errstate(over="ignore"):  # an edge at the float max steps to inf: fine
                top = min(np.nextafter(edges[0], np.inf), edges[-1]) if edges.size else math.nan
            if not edges[:1].size or not edges[0] <= low <= top:
                raise ReferenceProfileError("low must be the first edge or one step above it")
            object.__setattr__(self, "low", low)
        outer = int(counts[0] + counts[-2]) if counts.size > 1 else 0
        _check_count(self.out_of_range, outer, "out_of_range")
        _check_count(self.type_mismatch, int(counts[-1]), "type_mismatch")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "coarse", coarse)
        object.__setattr__(self, "ks_bound", ks_bound)
        object.__setattr__(self, "_grid", EdgeGrid(edges))

    @property
    def n_bins(self) -> int:
        """Number of fine bins including the missing bin."""
        return int(self.counts.size)

    @property
    def range_low(self) -> float:
        """Lower end of the reference range (``low``, else the first edge; NaN without edges)."""
        if self.low is not None:
            return self.low
        return float(self.edges[0]) if self.edges.size else math.nan

    @property
    def n_coarse(self) -> int:
        """Number of coarse PSI value bins (``coarse`` maps into ``0 .. n_coarse - 1``)."""
        return int(self.coarse[-1]) + 1

    def bin_index(self, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Bin of each value (NaN -> the missing bin), vectorised.

        >>> zeros = np.zeros(4, np.int64)
        >>> p = NumericProfile(np.array([1.0, 2.0]), zeros, zeros[:3], 0.0)
        >>> p.bin_index([0.5, 1.0, 1.5, 2.0, 7.0, float("nan")]).tolist()
        [0, 0, 1, 1, 2, 3]
        """
        v = np.asarray(values, dtype=np.float64)
        return np.where(np.isnan(v), self.n_bins - 1, self._grid.search(v))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "coarse": self.coarse.tolist(),
            "ks_bound": self.ks_bound,
            **_optional(low=self.low, out_of_range=self.out_of_range or None),
            **_optional(type_mismatch=self.type_mismatch or None),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericProfile):
            return NotImplemented
        return (
            np.array_equal(self.edges, other.edges)
            and np.array_equal(self.counts, other.counts)
            and np.array_equal(self.coarse, other.coarse)
            and self.ks_bound == other.ks_bound
            and (self.low, self.out_of_range, self.type_mismatch)
            == (other.low, other.out_of_range, other.type_mismatch)
        )


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Reference frequencies of a categorical feature.

    ``counts`` has one entry per category, then "unseen" (categories outside ``categories``,
    including rare reference ones folded in at build time), then "missing" (None or NaN, and
    the ``type_mismatch`` values of the wrong type, if any).
    """

    categories: tuple[str, ...]
    counts: npt.NDArray[np.int64]
    type_mismatch: int = 0
    _lookup: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        categories = tuple(self.categories)
        if not all(isinstance(c, str) for c in categories):
            raise ReferenceProfileError("categories must be strings")
        lookup = {c: i for i, c in enumerate(categories)}
        if len(lookup) != len(categories):
            raise ReferenceProfileError("categories must be unique")
        counts = _int_array(self.counts, "counts")
        if counts.size != len(categories) + 2 or np.any(counts < 0):
            raise ReferenceProfileError(
                f"counts must be {len(categories) + 2} non-negative integers"
            )
        _check_count(self.type_mismatch, int(counts[-1]), "type_mismatch")
        object.__setattr__(self, "categories", categories)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "_lookup", lookup)

    @property
    def n_bins(self) -> int:
        """Number of bins: categories + unseen + missing."""
        return int(self.counts.size)

    def bin_index(self, values: Iterable[object]) -> npt.NDArray[np.int64]:
        """Bin of each value: its category, else unseen; None/NaN -> missing.

        Values are matched by ``str(value)``, except that integral floats render as integers.

        >>> p = CategoricalProfile(("DE", "FR", "3"), np.zeros(5, np.int64))
        >>> p.bin_index(["FR", "XX", None, 3.0, "DE"]).tolist()
        [1, 3, 4, 2, 0]
        """
        unseen = len(self.categories)
        missing = unseen + 1
        lookup = self._lookup
        if isinstance(values, list | tuple) and set(map(type, values)) <= _SPELLED:
            # Strings and None are their own canonical keys: a lookup per value, in C.
            return np.fromiter(
                map((lookup | {None: missing}).get, values, repeat(unseen)),
                dtype=np.int64,
                count=len(values),
            )
        keys = (canonical_key(v) for v in values)
        return np.fromiter(
            (missing if k is None else lookup.get(k, unseen) for k in keys), dtype=np.int64
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
            **_optional(type_mismatch=self.type_mismatch or None),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalProfile):
            return NotImplemented
        return (
            self.categories == other.categories
            and np.array_equal(self.counts, other.counts)
            and self.type_mismatch == other.type_mismatch
        )


Profile = NumericProfile | CategoricalProfile


def _check_count(value: object, most: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= most:
        raise ReferenceProfileError(f"{what} must be an integer in [0, {most}]")


def _optional(**fields: object) -> dict[str, object]:
    """The fields that are set: a profile written without them keeps its content hash."""
    return {k: v for k, v in fields.items() if v is not None}


def json_field(
    d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], *, nullable: bool = False
) -> Any:
    """``d[key]`` if it is of type ``kind`` (bool never counts as a number), else raise."""
    if key not in d:
        raise ReferenceProfileError(f"missing field {key!r}")
    value = d[key]
    if value is None and nullable:
        return None
    # JSON true/false parse as bool, a subclass of int; never accept them as numbers.
    if isinstance(value, bool) or not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(k.__name__ for k in kinds)
        raise ReferenceProfileError(f"field {key!r} must be {expected}, got {type(value).__name__}")
    return value


def profile_from_dict(raw: Any, where: str) -> Profile:
    """Validate and rebuild a profile from its ``to_dict()``; errors are prefixed by ``where``."""
    try:
        if not isinstance(raw, dict):
            raise ReferenceProfileError("expected an object")
        kind = raw.get("kind")
        if kind == "numeric":
            edges = json_field(raw, "edges", list)
            if not all(isinstance(e, int | float) and not isinstance(e, bool) for e in edges):
                raise ReferenceProfileError("edges must be numbers")
            ks_bound = json_field(raw, "ks_bound", (float, int))
            low = json_field(raw, "low", (float, int)) if "low" in raw else None
            return NumericProfile(
                np.array(edges, dtype=np.float64),
                _int_array(json_field(raw, "counts", list), "counts"),
                _int_array(json_field(raw, "coarse", list), "coarse"),
                float(ks_bound),
                None if low is None else float(low),
                _optional_count(raw, "out_of_range"),
                _optional_count(raw, "type_mismatch"),
            )
        if kind == "categorical":
            categories = json_field(raw, "categories", list)
            return CategoricalProfile(
                tuple(categories),
                _int_array(json_field(raw, "counts", list), "counts"),
                _optional_count(raw, "type_mismatch"),
            )
        raise ReferenceProfileError(f"unknown kind {kind!r} (expected 'numeric' or 'categorical')")
    except (ReferenceProfileError, OverflowError) as exc:
        raise ReferenceProfileError(f"{where}: {exc}") from None


def _optional_count(raw: Mapping[str, Any], key: str) -> int:
    """An optional non-negative count field (absent: 0, as in profiles written before it)."""
    return int(json_field(raw, key, int)) if key in raw else 0
