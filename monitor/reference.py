"""Reference profile: the binned picture of the training data that windows are compared with.

Numeric features get fixed fine bins at reference quantiles (plus a missing bin), so a window is
a vector of counts per bin that merges by addition; categorical features get the reference's
most frequent categories plus an "unseen" and a "missing" bucket. Profiles are built once from a
training file (``modelmon reference build``) and saved as JSON carrying a sha256 content hash.

Numeric bins are right-closed: with edges ``e``, bin 0 is ``(-inf, e[0]]``, bin ``i`` is
``(e[i-1], e[i]]``, bin ``len(e)`` is ``(e[-1], +inf)`` (infinite values land in the outer
bins) and bin ``len(e) + 1`` holds missing values (None/NaN).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FeatureKind = Literal["numeric", "categorical"]
TASKS = ("binary_classification", "multiclass_classification", "regression")
FORMAT_VERSION = 1
# Floats up to 2**53 are exact integers, so 3.0 and 3 can safely share the category "3".
_EXACT_INT_LIMIT = 2.0**53


class ReferenceError(ValueError):
    """A reference profile or a training file is invalid; the message names the problem."""


def _int_array(value: Any, what: str) -> npt.NDArray[np.int64]:
    arr = np.asarray(value)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ReferenceError(f"{what} must be a one-dimensional list of integers")
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
    """

    edges: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    coarse: npt.NDArray[np.int64]
    ks_bound: float

    def __post_init__(self) -> None:
        edges = np.array(self.edges, dtype=np.float64)
        if edges.ndim != 1 or not np.all(np.isfinite(edges)):
            raise ReferenceError("edges must be a one-dimensional list of finite numbers")
        if np.any(edges[1:] <= edges[:-1]):
            raise ReferenceError("edges must be strictly increasing")
        edges.setflags(write=False)
        counts = _int_array(self.counts, "counts")
        coarse = _int_array(self.coarse, "coarse")
        if counts.size != edges.size + 2 or np.any(counts < 0):
            raise ReferenceError(f"counts must be {edges.size + 2} non-negative integers")
        steps = np.diff(coarse)
        if coarse.size != edges.size + 1 or coarse[0] != 0 or np.any((steps < 0) | (steps > 1)):
            raise ReferenceError(
                f"coarse must be {edges.size + 1} integers rising from 0 in steps of 0 or 1"
            )
        ks_bound = float(self.ks_bound)
        if not 0.0 <= ks_bound <= 1.0:
            raise ReferenceError(f"ks_bound must be in [0, 1], got {ks_bound}")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "coarse", coarse)
        object.__setattr__(self, "ks_bound", ks_bound)

    @property
    def n_bins(self) -> int:
        """Number of fine bins including the missing bin."""
        return int(self.counts.size)

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
        idx = np.searchsorted(self.edges, v, side="left").astype(np.int64)
        return np.where(np.isnan(v), self.n_bins - 1, idx)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "coarse": self.coarse.tolist(),
            "ks_bound": self.ks_bound,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericProfile):
            return NotImplemented
        return (
            np.array_equal(self.edges, other.edges)
            and np.array_equal(self.counts, other.counts)
            and np.array_equal(self.coarse, other.coarse)
            and self.ks_bound == other.ks_bound
        )


def _category_key(value: object) -> str | None:
    """Category label of a raw value; None for missing (None or NaN).

    Integral floats render as integers so a code read as 3.0 from CSV matches 3 or "3" in events.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if number.is_integer() and abs(number) < _EXACT_INT_LIMIT:
            return str(int(number))
        return repr(number)
    return str(value)


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Reference frequencies of a categorical feature.

    ``counts`` has one entry per category, then "unseen" (categories outside ``categories``,
    including rare reference ones folded in at build time), then "missing" (None or NaN).
    """

    categories: tuple[str, ...]
    counts: npt.NDArray[np.int64]
    _lookup: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        categories = tuple(self.categories)
        if not all(isinstance(c, str) for c in categories):
            raise ReferenceError("categories must be strings")
        lookup = {c: i for i, c in enumerate(categories)}
        if len(lookup) != len(categories):
            raise ReferenceError("categories must be unique")
        counts = _int_array(self.counts, "counts")
        if counts.size != len(categories) + 2 or np.any(counts < 0):
            raise ReferenceError(f"counts must be {len(categories) + 2} non-negative integers")
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
        keys = (_category_key(v) for v in values)
        return np.fromiter(
            (missing if k is None else lookup.get(k, unseen) for k in keys), dtype=np.int64
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalProfile):
            return NotImplemented
        return self.categories == other.categories and np.array_equal(self.counts, other.counts)


Profile = NumericProfile | CategoricalProfile


def build_numeric_profile(
    values: npt.ArrayLike, fine_bins: int = 1000, coarse_bins: int = 10
) -> NumericProfile:
    """Fine quantile bins for a numeric feature (NaN = missing).

    Edges are the reference values at ``fine_bins + 1`` evenly spaced ranks (so min and max
    are edges), plus, for every value holding more than ``1 / fine_bins`` of the non-missing
    reference (a point mass, e.g. many zeros), the edge ``nextafter(v, -inf)`` so that the bin
    ``(nextafter(v, -inf), v]`` holds only ``v``. Both empirical CDFs are flat inside such a
    bin, so ties do not loosen the KS bound. Infinite values fall into the outer bins.

    Degenerate inputs: all-missing (or empty) input gives no edges, a single value bin and
    ``ks_bound = 0`` (KS against it is NaN since the reference side is empty); a constant
    input gives edges ``[nextafter(v, -inf), v]``; fewer than ``fine_bins`` values make every
    value a point mass, so binned KS is exact (``ks_bound = 0``).

    >>> p = build_numeric_profile(np.array([0.0, 0.0, 0.0, 1.0, 2.0, np.nan]), fine_bins=2)
    >>> p.edges.tolist()  # 0 holds 3/5 of the values: it gets the bin (-5e-324, 0]
    [-5e-324, 0.0, 2.0]
    >>> p.counts.tolist(), p.ks_bound  # bins (-inf,-5e-324] (.,0] (0,2] (2,inf) missing
    ([0, 3, 2, 0, 1], 0.4)
    """
    if fine_bins < 1 or coarse_bins < 1:
        raise ValueError("fine_bins and coarse_bins must be at least 1")
    x = np.asarray(values, dtype=np.float64).ravel()
    missing = np.isnan(x)
    ordered = np.sort(x[~missing])
    n = int(ordered.size)
    # Infinite values sit at the two ends of the sort; edges come from the finite middle.
    first = int(np.searchsorted(ordered, -np.inf, side="right"))
    stop = int(np.searchsorted(ordered, np.inf, side="left"))
    finite = ordered[first:stop]
    edges = _quantile_edges(finite, n, fine_bins)
    # Right-closed bins: the count up to and including each edge comes straight off the sort.
    at_or_below = np.searchsorted(ordered, edges, side="right")
    bins = np.diff(np.concatenate(([0], at_or_below, [n]))).astype(np.int64)
    return NumericProfile(
        edges=edges,
        counts=np.append(bins, np.count_nonzero(missing)),
        coarse=_coarse_map(bins, coarse_bins),
        ks_bound=_ks_bound(edges, bins, n),
    )


def _quantile_edges(
    finite: npt.NDArray[np.float64], n: int, fine_bins: int
) -> npt.NDArray[np.float64]:
    if finite.size == 0:
        return np.empty(0, dtype=np.float64)
    ranks = np.round(np.linspace(0, finite.size - 1, fine_bins + 1)).astype(np.intp)
    starts = np.flatnonzero(np.concatenate(([True], finite[1:] != finite[:-1])))
    run_lengths = np.diff(np.append(starts, finite.size))
    heavy = finite[starts[run_lengths * fine_bins > n]]
    below = np.nextafter(heavy, -np.inf)
    edges = np.unique(np.concatenate((finite[ranks], heavy, below[np.isfinite(below)])))
    return edges + 0.0  # turns -0.0 into 0.0 so equal data always hash alike


def _ks_bound(edges: npt.NDArray[np.float64], bins: npt.NDArray[np.int64], n: int) -> float:
    # Inside a bin (a, b) the gap between the CDFs can exceed the larger gap at a or b by at
    # most the reference mass of (a, b] - including the mass at b itself, because the window
    # may put its values just below b. Bins (nextafter(v, -inf), v] contain no point besides
    # their right edge, so they add nothing.
    if n == 0:
        return 0.0
    has_interior = np.ones(bins.size, dtype=bool)
    has_interior[1:-1] = edges[1:] > np.nextafter(edges[:-1], np.inf)
    return float(bins[has_interior].max() / n)


def _coarse_map(bins: npt.NDArray[np.int64], coarse_bins: int) -> npt.NDArray[np.int64]:
    n = int(bins.sum())
    group = np.zeros(bins.size, dtype=np.int64)
    if n == 0:
        return group
    # Walk the fine bins in order, closing a group once it holds 1/coarse_bins of the
    # reference: groups are reference quantiles, and a point mass at least that large is a group
    # of its own. Empty fine bins ride along, so every group holds reference mass.
    current, mass = 0, 0
    for i, count in enumerate(bins.tolist()):
        if mass * coarse_bins >= n:
            current, mass = current + 1, 0
        group[i] = current
        mass += count
    # A last group under half a share is a rounding sliver (fixed cut points would leave one
    # next to a point mass); it joins its neighbour rather than become a noisy PSI bin.
    if current > 0 and mass * 2 * coarse_bins < n:
        group[group == current] = current - 1
    return group


def build_categorical_profile(
    values: Iterable[object], max_categories: int = 100
) -> CategoricalProfile:
    """Frequencies of the ``max_categories`` most frequent categories (ties by name).

    Rarer categories fold into the unseen bucket, where the same values will land at run time.

    >>> p = build_categorical_profile(["a", "b", "a", None, "c", 1.0], max_categories=2)
    >>> p.categories, p.counts.tolist()
    (('a', '1'), [2, 1, 2, 1])
    """
    if max_categories < 0:
        raise ValueError("max_categories must be >= 0")
    counter = Counter(_category_key(v) for v in values)
    n_missing = counter.pop(None, 0)
    ranked = sorted(
        ((k, c) for k, c in counter.items() if k is not None), key=lambda kc: (-kc[1], kc[0])
    )
    kept = ranked[:max_categories]
    n_unseen = sum(c for _, c in ranked[max_categories:])
    return CategoricalProfile(
        categories=tuple(k for k, _ in kept),
        counts=np.array([c for _, c in kept] + [n_unseen, n_missing], dtype=np.int64),
    )


def compute_content_hash(
    model: str,
    task: str,
    rows: int,
    features: Mapping[str, Profile],
    prediction: Profile | None,
) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of a profile's content."""
    payload = {
        "model": model,
        "task": task,
        "rows": rows,
        "features": {name: p.to_dict() for name, p in features.items()},
        "prediction": None if prediction is None else prediction.to_dict(),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ReferenceProfile:
    """Everything a model's windows are compared with; saved as JSON (see :meth:`save`)."""

    model: str
    task: str
    rows: int
    features: Mapping[str, Profile]
    prediction: Profile | None
    content_hash: str

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ReferenceError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if (
            isinstance(self.rows, bool)
            or not isinstance(self.rows, int | np.integer)
            or self.rows < 0
        ):
            raise ReferenceError(f"rows must be a non-negative integer, got {self.rows!r}")
        object.__setattr__(self, "rows", int(self.rows))
        object.__setattr__(self, "features", dict(self.features))
        named = [(f"feature {k!r}", p) for k, p in self.features.items()]
        for where, profile in [*named, ("prediction", self.prediction)]:
            if profile is None:
                continue
            if not isinstance(profile, NumericProfile | CategoricalProfile):
                raise ReferenceError(f"{where}: not a NumericProfile or CategoricalProfile")
            # Every reference row lands in exactly one bin (possibly the missing one).
            if int(profile.counts.sum()) != self.rows:
                raise ReferenceError(
                    f"{where}: counts sum to {int(profile.counts.sum())}, expected rows={self.rows}"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "task": self.task,
            "rows": self.rows,
            "features": {name: p.to_dict() for name, p in self.features.items()},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "content_hash": self.content_hash,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceProfile:
        """Validate and rebuild a profile; raise ReferenceError naming the problem."""
        if not isinstance(d, Mapping):
            raise ReferenceError("expected a JSON object at the top level")
        if d.get("format_version") != FORMAT_VERSION:
            raise ReferenceError(
                f"unsupported format_version {d.get('format_version')!r} "
                f"(expected {FORMAT_VERSION})"
            )
        model = _field(d, "model", str)
        task = _field(d, "task", str)
        rows = _field(d, "rows", int)
        raw_features = _field(d, "features", dict)
        features = {
            str(name): _profile_from_dict(raw, f"feature {name!r}")
            for name, raw in raw_features.items()
        }
        raw_prediction = _field(d, "prediction", dict, nullable=True)
        prediction = (
            None if raw_prediction is None else _profile_from_dict(raw_prediction, "prediction")
        )
        stored = _field(d, "content_hash", str)
        profile = cls(model, task, rows, features, prediction, stored)  # validates the content
        actual = compute_content_hash(model, task, rows, features, prediction)
        if actual != stored:
            raise ReferenceError(
                f"content hash mismatch (stored {stored[:12]}…, computed {actual[:12]}…): the "
                "profile was modified or corrupted; rebuild it with `modelmon reference build`"
            )
        return profile

    def save(self, path: Path | str) -> None:
        """Write the profile as JSON atomically (temp file, fsync, rename)."""
        target = Path(path)
        text = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path | str) -> ReferenceProfile:
        """Read and validate a profile written by :meth:`save`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ReferenceError(f"cannot read reference profile {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ReferenceError(f"reference profile {path} is not UTF-8 text") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReferenceError(
                f"reference profile {path} is not valid JSON ({exc.msg} at line {exc.lineno} "
                f"column {exc.colno}); was it truncated?"
            ) from None
        try:
            return cls.from_dict(data)
        except ReferenceError as exc:
            raise ReferenceError(f"reference profile {path}: {exc}") from None


def _field(
    d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], *, nullable: bool = False
) -> Any:
    if key not in d:
        raise ReferenceError(f"missing field {key!r}")
    value = d[key]
    if value is None and nullable:
        return None
    # JSON true/false parse as bool, a subclass of int; never accept them as numbers.
    if isinstance(value, bool) or not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(k.__name__ for k in kinds)
        raise ReferenceError(f"field {key!r} must be {expected}, got {type(value).__name__}")
    return value


def _profile_from_dict(raw: Any, where: str) -> Profile:
    try:
        if not isinstance(raw, dict):
            raise ReferenceError("expected an object")
        kind = raw.get("kind")
        if kind == "numeric":
            edges = _field(raw, "edges", list)
            if not all(isinstance(e, int | float) and not isinstance(e, bool) for e in edges):
                raise ReferenceError("edges must be numbers")
            ks_bound = _field(raw, "ks_bound", (float, int))
            return NumericProfile(
                np.array(edges, dtype=np.float64),
                _int_array(_field(raw, "counts", list), "counts"),
                _int_array(_field(raw, "coarse", list), "coarse"),
                float(ks_bound),
            )
        if kind == "categorical":
            categories = _field(raw, "categories", list)
            return CategoricalProfile(
                tuple(categories), _int_array(_field(raw, "counts", list), "counts")
            )
        raise ReferenceError(f"unknown kind {kind!r} (expected 'numeric' or 'categorical')")
    except (ReferenceError, OverflowError) as exc:
        raise ReferenceError(f"{where}: {exc}") from None


def _numeric_column(name: str, values: Sequence[object]) -> npt.NDArray[np.float64]:
    try:
        return np.asarray(values, dtype=np.float64)  # None -> NaN (missing)
    except (TypeError, ValueError):
        pass
    for row, value in enumerate(values):  # only on failure: find the row to name
        try:
            np.asarray([value], dtype=np.float64)
        except (TypeError, ValueError):
            raise ReferenceError(
                f"column {name!r} is numeric but row {row} holds {value!r}"
            ) from None
    raise ReferenceError(f"column {name!r} is numeric but holds non-numeric values")


def build_reference(
    model: str,
    task: str,
    columns: Mapping[str, Sequence[object]],
    features: Mapping[str, FeatureKind],
    fine_bins: int = 1000,
) -> ReferenceProfile:
    """Build a model's reference profile from training columns.

    ``columns`` holds the feature columns plus optional ``prediction``, ``score`` and ``label``
    (other columns are ignored). The prediction profile is the distribution of ``score`` for
    binary classification, of ``prediction`` for regression (both numeric) and of the
    predicted class for multiclass (categorical); it is None when that column is absent.
    """
    if task not in TASKS:
        raise ReferenceError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    absent = [name for name in features if name not in columns]
    if absent:
        raise ReferenceError(f"feature column(s) missing from the training data: {absent}")
    used = [*features, *(c for c in ("prediction", "score", "label") if c in columns)]
    lengths = {name: len(columns[name]) for name in used}
    if len(set(lengths.values())) > 1:
        raise ReferenceError(f"columns have different lengths: {lengths}")
    rows = next(iter(lengths.values()), 0)
    if rows == 0:
        raise ReferenceError("the training data has no rows")
    profiles: dict[str, Profile] = {}
    for name, kind in features.items():
        if kind == "numeric":
            profiles[name] = build_numeric_profile(_numeric_column(name, columns[name]), fine_bins)
        elif kind == "categorical":
            profiles[name] = build_categorical_profile(columns[name])
        else:
            raise ReferenceError(f"feature {name!r}: unknown kind {kind!r}")
    prediction: Profile | None = None
    source = "score" if task == "binary_classification" else "prediction"
    if source in columns:
        if task == "multiclass_classification":
            prediction = build_categorical_profile(columns[source])
        else:
            prediction = build_numeric_profile(_numeric_column(source, columns[source]), fine_bins)
    content_hash = compute_content_hash(model, task, rows, profiles, prediction)
    return ReferenceProfile(model, task, rows, profiles, prediction, content_hash)


def read_training_file(path: Path | str) -> dict[str, list[object]]:
    """Read training data into columns.

    ``.csv``: a header row, then one row per example; numeric cells become floats, empty
    cells None, anything else stays a string. ``.jsonl``: one JSON object per line (blank lines
    skipped); a nested ``"features"`` object is flattened into columns; a key absent from a
    line is None in that row.
    """
    source = Path(path)
    suffix = source.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(source)
        if suffix in (".jsonl", ".ndjson"):
            return _read_jsonl(source)
    except OSError as exc:
        raise ReferenceError(f"cannot read training file {source}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ReferenceError(f"training file {source} is not UTF-8 text") from exc
    raise ReferenceError(f"{source}: unsupported training file type {suffix!r}; use .csv or .jsonl")


def _parse_cell(cell: str) -> object:
    if not cell.strip():
        return None
    try:
        return float(cell)
    except ValueError:
        return cell


def _read_csv(path: Path) -> dict[str, list[object]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise ReferenceError(f"{path}: empty file; expected a header row")
        if len(set(header)) != len(header):
            raise ReferenceError(f"{path}: duplicate column names in the header")
        columns: dict[str, list[object]] = {name: [] for name in header}
        targets = list(columns.values())
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ReferenceError(
                    f"{path}:{reader.line_num}: expected {len(header)} fields, found {len(row)}"
                )
            for target, cell in zip(targets, row, strict=True):
                target.append(_parse_cell(cell))
    return columns


def _read_jsonl(path: Path) -> dict[str, list[object]]:
    records: list[dict[str, object]] = []
    names: dict[str, None] = {}  # ordered union of the keys seen
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReferenceError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ReferenceError(f"{path}:{lineno}: expected a JSON object")
            nested = obj.pop("features", None)
            if nested is not None:
                if not isinstance(nested, dict):
                    raise ReferenceError(f"{path}:{lineno}: 'features' must be an object")
                clash = sorted(obj.keys() & nested.keys())
                if clash:
                    raise ReferenceError(
                        f"{path}:{lineno}: features {clash} clash with top-level keys"
                    )
                obj.update(nested)
            records.append(obj)
            names.update(dict.fromkeys(obj))
    return {name: [record.get(name) for record in records] for name in names}
