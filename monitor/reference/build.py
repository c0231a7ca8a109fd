"""Building reference profiles from training values (``modelmon reference build``).

Numeric features get fine bins at reference quantiles with point masses kept exact, a coarse
PSI grouping and the KS bound of binning; categorical features keep their most frequent
categories. :func:`build_reference` assembles a model's
:class:`~monitor.reference.profile.ReferenceProfile` from training columns (see
:mod:`monitor.reference.training_data` for reading them from a file).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from monitor.reference.bins import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    ReferenceProfileError,
)
from monitor.reference.profile import ReferenceProfile, compute_content_hash
from monitor.vocabulary import TASKS, FeatureKind, canonical_key


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
    value a point mass, so binned KS is exact (``ks_bound = 0``). ``low`` is the smallest finite
    value and ``out_of_range`` counts the infinite ones (outside ``[low, edges[-1]]``).

    >>> p = build_numeric_profile(np.array([0.0, 0.0, 0.0, 1.0, 2.0, np.nan]), fine_bins=2)
    >>> p.edges.tolist()  # 0 holds 3/5 of the values: it gets the bin (-5e-324, 0]
    [-5e-324, 0.0, 2.0]
    >>> p.counts.tolist(), p.ks_bound  # bins (-inf,-5e-324] (.,0] (0,2] (2,inf) missing
    ([0, 3, 2, 0, 1], 0.4)
    >>> p.low, build_numeric_profile([np.inf, 1.0, 2.0], fine_bins=2).out_of_range
    (0.0, 1)
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
        low=float(finite[0]) + 0.0 if finite.size else None,
        out_of_range=n - int(finite.size),
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
    with np.errstate(over="ignore"):  # -max steps to -inf, dropped below; no warning for it
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
    counter = Counter(canonical_key(v) for v in values)
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


def _numeric_column(name: str, values: Sequence[object]) -> npt.NDArray[np.float64]:
    try:
        return np.asarray(values, dtype=np.float64)  # None -> NaN (missing)
    except (TypeError, ValueError):
        pass
    for row, value in enumerate(values):  # only on failure: find the row to name
        try:
            np.asarray([value], dtype=np.float64)
        except (TypeError, ValueError):
            raise ReferenceProfileError(
                f"column {name!r} is numeric but row {row} holds {value!r}"
            ) from None
    raise ReferenceProfileError(f"column {name!r} is numeric but holds non-numeric values")


def build_reference(
    model: str,
    task: str,
    columns: Mapping[str, Sequence[object]],
    features: Mapping[str, FeatureKind],
    fine_bins: int = 1000,
    type_mismatch: Mapping[str, int] | None = None,
) -> ReferenceProfile:
    """Build a model's reference profile from training columns.

    ``columns`` holds the feature columns plus optional ``prediction``, ``score`` and ``label``
    (other columns are ignored). The prediction profile is the distribution of ``score`` for
    binary classification, of ``prediction`` for regression (both numeric) and of the
    predicted class for multiclass (categorical); it is None when that column is absent.
    ``type_mismatch`` counts, per feature, the values of the wrong type that the caller already
    replaced by None (a bootstrapped reference; a training file with one is refused).
    """
    if task not in TASKS:
        raise ReferenceProfileError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    absent = [name for name in features if name not in columns]
    if absent:
        raise ReferenceProfileError(f"feature column(s) missing from the training data: {absent}")
    used = [*features, *(c for c in ("prediction", "score", "label") if c in columns)]
    lengths = {name: len(columns[name]) for name in used}
    if len(set(lengths.values())) > 1:
        raise ReferenceProfileError(f"columns have different lengths: {lengths}")
    rows = next(iter(lengths.values()), 0)
    if rows == 0:
        raise ReferenceProfileError("the training data has no rows")
    profiles: dict[str, Profile] = {}
    for name, kind in features.items():
        if kind == "numeric":
            profiles[name] = build_numeric_profile(_numeric_column(name, columns[name]), fine_bins)
        elif kind == "categorical":
            profiles[name] = build_categorical_profile(columns[name])
        else:
            raise ReferenceProfileError(f"feature {name!r}: unknown kind {kind!r}")
        if mismatched := (type_mismatch or {}).get(name, 0):
            profiles[name] = replace(profiles[name], type_mismatch=mismatched)
    prediction: Profile | None = None
    source = "score" if task == "binary_classification" else "prediction"
    if source in columns:
        if task == "multiclass_classification":
            prediction = build_categorical_profile(columns[source])
        else:
            prediction = build_numeric_profile(_numeric_column(source, columns[source]), fine_bins)
    content_hash = compute_content_hash(model, task, rows, profiles, prediction)
    return ReferenceProfile(model, task, rows, profiles, prediction, content_hash)
