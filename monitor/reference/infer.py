"""Feature kinds inferred from training data, for ``modelmon reference build`` without a config.

A column whose every present value is a number is numeric, any other is categorical. The
event's own fields (``id``, ``timestamp``, the model's outputs...) are not features unless named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from monitor.reference.bins import ReferenceProfileError
from monitor.vocabulary import FeatureKind

#: Columns that describe the event rather than the model's inputs: skipped unless named.
NOT_FEATURES = ("id", "model", "version", "timestamp", "prediction", "score", "label")


@dataclass(frozen=True)
class Inferred:
    """The features chosen and their kinds, and the columns skipped as event fields."""

    kinds: dict[str, FeatureKind]
    skipped: tuple[str, ...]

    def describe(self) -> str:
        """One line saying what was inferred, for the person who has to check it.

        >>> Inferred({"a": "numeric", "b": "categorical"}, ("id",)).describe()
        'numeric: a; categorical: b; not features: id'
        """
        parts = []
        for kind in ("numeric", "categorical"):
            names = [n for n, k in self.kinds.items() if k == kind]
            if names:
                parts.append(f"{kind}: {', '.join(names)}")
        if self.skipped:
            parts.append(f"not features: {', '.join(self.skipped)}")
        return "; ".join(parts)

    def config_snippet(self) -> str:
        """The ``features:`` mapping to paste into a model's config (YAML flow style).

        >>> Inferred({"a": "numeric", "b": "categorical"}, ()).config_snippet()
        'features: {a: numeric, b: categorical}'
        """
        return "features: {" + ", ".join(f"{n}: {k}" for n, k in self.kinds.items()) + "}"


def _all_numbers(values: Iterable[object]) -> bool:
    return all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values
    )


def infer_kinds(
    columns: Mapping[str, Sequence[object]],
    features: Sequence[str] | None = None,
    categorical: Iterable[str] = (),
) -> Inferred:
    """Each feature's kind from its values; ``categorical`` forces a kind, ``features`` picks.

    ``features`` None means every column but :data:`NOT_FEATURES`. A named column that the
    data does not have is refused, naming it.

    >>> infer_kinds({"id": ["a"], "x": [1.0], "c": ["DE"], "z": [5.0]}, categorical=["z"]).kinds
    {'x': 'numeric', 'c': 'categorical', 'z': 'categorical'}
    """
    forced = set(categorical)
    chosen = (
        list(features) if features is not None else [c for c in columns if c not in NOT_FEATURES]
    )
    unknown = [n for n in [*chosen, *sorted(forced)] if n not in columns]
    if unknown:
        raise ReferenceProfileError(
            f"no column named {', '.join(dict.fromkeys(unknown))} in the training data "
            f"(it has: {', '.join(columns)})"
        )
    not_chosen = sorted(forced - set(chosen))
    if not_chosen:
        raise ReferenceProfileError(
            f"--categorical {', '.join(not_chosen)}: not among the features; add it to --features"
        )
    if not chosen:
        raise ReferenceProfileError("the training data has no feature columns")
    kinds: dict[str, FeatureKind] = {
        name: "categorical" if name in forced or not _all_numbers(columns[name]) else "numeric"
        for name in chosen
    }
    skipped = tuple(c for c in columns if c not in kinds)
    return Inferred(kinds, skipped)
