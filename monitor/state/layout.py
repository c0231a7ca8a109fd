"""Where each feature's counts sit in a model's side-by-side count vector, and what they mean.

Every prediction lands in exactly one *cell* per slot, so a batch is counted with one
``bincount`` per pane. A slot holds its profile's bins (values, then missing) followed by
:data:`EXTRA_CELLS` data-quality cells:

- *type mismatch*: a value of the wrong JSON type (:func:`monitor.vocabulary.fits_kind`);
- *below range* (numeric): a value under the reference's finite minimum. The top value bin is
  already "above the range" (its lower edge is the reference maximum), but values below the
  minimum share bin 0 with the minimum itself, so they get a cell of their own.

For drift both fold back (:mod:`monitor.state.drift_plan`): a mismatched value is missing, a
value below the range is in bin 0, exactly as the plain bins would have counted them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Final

import numpy as np

from monitor.events import Prediction
from monitor.reference.bins import CategoricalProfile, NumericProfile, Profile
from monitor.reference.profile import ReferenceProfile
from monitor.settings import ModelSettings
from monitor.state.window import IntArray
from monitor.vocabulary import FeatureKind, fits_kind

PREDICTION: Final = "__prediction__"
#: Type-mismatch and below-range cells after each slot's bins.
EXTRA_CELLS: Final = 2
#: Types whose every value fits a kind (:func:`monitor.vocabulary.fits_kind`), by exact type:
#: a value of any other type (a subclass, a bool for numeric) is checked one by one.
NUMERIC_TYPES: Final = frozenset({float, int, type(None)})
SCALAR_TYPES: Final = frozenset({str, float, int, bool, type(None)})


@dataclass(frozen=True)
class Slot:
    """Where one feature's cells sit in the side-by-side count vector."""

    name: str
    profile: Profile
    offset: int

    @property
    def kind(self) -> FeatureKind:
        return "numeric" if isinstance(self.profile, NumericProfile) else "categorical"

    @property
    def stop(self) -> int:
        return self.offset + self.profile.n_bins + EXTRA_CELLS


def layout(cfg: ModelSettings, reference: ReferenceProfile) -> tuple[Slot, ...]:
    """The configured features (config order) then the prediction distribution, if any."""
    slots: list[Slot] = []
    offset = 0
    for name, kind in cfg.features.items():
        profile = reference.features.get(name)
        if profile is None:
            raise ValueError(f"model {cfg.name}: reference has no feature {name!r}")
        expected = NumericProfile if kind == "numeric" else CategoricalProfile
        if not isinstance(profile, expected):
            raise ValueError(
                f"model {cfg.name}: feature {name!r} is {kind} in the config "
                "but not in the reference"
            )
        slots.append(Slot(name, profile, offset))
        offset += profile.n_bins + EXTRA_CELLS
    if reference.prediction is not None:
        slots.append(Slot(PREDICTION, reference.prediction, offset))
    return tuple(slots)


def prediction_value(cfg: ModelSettings, p: Prediction) -> object:
    """The scalar whose distribution is tracked as prediction drift.

    Binary: the positive-class score (the prediction itself when no score is sent);
    regression: the predicted value; multiclass: the predicted class.
    """
    if cfg.task == "binary_classification":
        return p.score if isinstance(p.score, float) else p.prediction
    return p.prediction


def cell_column(slot: Slot, values: Sequence[object]) -> IntArray:
    """The cell (offset included) each value lands in.

    >>> import numpy as np
    >>> p = NumericProfile(np.array([1.0, 2.0]), np.zeros(4, np.int64), np.zeros(3, np.int64), 0.0)
    >>> cell_column(Slot("x", p, 10), [1.5, None, "7", 0.5, 1.0, 9.0]).tolist()
    [11, 13, 14, 15, 10, 12]
    """
    kind = slot.kind
    fitting = NUMERIC_TYPES if kind == "numeric" else SCALAR_TYPES
    if set(map(type, values)) <= fitting:  # the usual case: every value fits, checked in C
        fits: list[bool] = []
        clean = values
    else:
        fits = [fits_kind(v, kind) for v in values]
        clean = (
            values if all(fits) else [v if ok else None for v, ok in zip(values, fits, strict=True)]
        )
    n_bins = slot.profile.n_bins
    if isinstance(slot.profile, NumericProfile):
        x = np.array(clean, dtype=np.float64)  # None -> NaN: the missing bin
        cells = slot.profile.bin_index(x)
        cells[x < slot.profile.range_low] = n_bins + 1
    else:
        cells = slot.profile.bin_index(clean)
    if clean is not values:
        cells[~np.array(fits, dtype=bool)] = n_bins
    return cells + slot.offset


def prediction_column(cfg: ModelSettings, slot: Slot, preds: Sequence[Prediction]) -> IntArray:
    """Cells of the tracked prediction value; one of another type counts as missing."""
    values = [prediction_value(cfg, p) for p in preds]
    if isinstance(slot.profile, NumericProfile):
        values = [v if fits_kind(v, "numeric") else None for v in values]
    return cell_column(slot, values)


def feature_column(features: Sequence[dict[str, Any]], name: str) -> list[Any]:
    """One feature's values (None where absent) from the events' feature objects, in C.

    >>> feature_column([{"a": 1}, {}, {"a": "x", "b": 2}], "a")
    [1, None, 'x']
    """
    return list(map(dict.get, features, repeat(name)))


def columns(cfg: ModelSettings, slots: Sequence[Slot], preds: Sequence[Prediction]) -> IntArray:
    """Cells of every slot, laid side by side per prediction (event-major), flattened."""
    features = [p.features for p in preds]
    cols = [
        prediction_column(cfg, s, preds)
        if s.name == PREDICTION
        else cell_column(s, feature_column(features, s.name))
        for s in slots
    ]
    return np.stack(cols, axis=1).ravel()
