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
from itertools import chain
from typing import Final

import numpy as np
import numpy.typing as npt

from monitor.events import PredictionBatch
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


def prediction_values(cfg: ModelSettings, batch: PredictionBatch) -> list[object]:
    """The scalar whose distribution is tracked as prediction drift, per prediction.

    Binary: the positive-class score (the prediction itself when no score is sent);
    regression: the predicted value; multiclass: the predicted class.
    """
    if cfg.task != "binary_classification":
        return batch.predictions
    if set(map(type, batch.scores)) <= {float}:
        return list(batch.scores)
    return [
        s if isinstance(s, float) else p
        for p, s in zip(batch.predictions, batch.scores, strict=True)
    ]


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
        cells = numeric_cells(slot.profile, np.array(clean, dtype=np.float64))
    else:
        cells = slot.profile.bin_index(clean)
    if clean is not values:
        cells[~np.array(fits, dtype=bool)] = n_bins
    return cells + slot.offset


def numeric_cells(profile: NumericProfile, x: npt.NDArray[np.float64]) -> IntArray:
    """The cell of each number (NaN: missing), its slot's offset not added."""
    cells = profile.bin_index(x)
    cells[x < profile.range_low] = profile.n_bins + 1
    return cells


def prediction_column(cfg: ModelSettings, slot: Slot, batch: PredictionBatch) -> IntArray:
    """Cells of the tracked prediction value; one of another type counts as missing."""
    values = prediction_values(cfg, batch)
    if isinstance(slot.profile, NumericProfile) and not set(map(type, values)) <= NUMERIC_TYPES:
        values = [v if fits_kind(v, "numeric") else None for v in values]
    return cell_column(slot, values)


def columns(cfg: ModelSettings, slots: Sequence[Slot], batch: PredictionBatch) -> IntArray:
    """Cells of every slot, laid side by side per prediction (event-major), flattened.

    The numeric features are read together, a row of them per event (one pass over the
    events' features, one type check and one float array for all); a batch where one of them
    is absent or of another type goes feature by feature instead.
    """
    grid = np.empty((len(batch), len(slots)), dtype=np.int64)
    numeric = [j for j, s in enumerate(slots) if s.name != PREDICTION and s.kind == "numeric"]
    matrix = numeric_matrix(batch, [slots[j].name for j in numeric])
    for j, s in enumerate(slots):
        if s.name == PREDICTION:
            grid[:, j] = prediction_column(cfg, s, batch)
        elif matrix is not None and s.kind == "numeric":
            assert isinstance(s.profile, NumericProfile)
            grid[:, j] = numeric_cells(s.profile, matrix[:, numeric.index(j)]) + s.offset
        else:
            grid[:, j] = cell_column(s, batch.feature(s.name))
    return grid.ravel()


def numeric_matrix(batch: PredictionBatch, names: Sequence[str]) -> npt.NDArray[np.float64] | None:
    """The ``names`` of every event as an (events, names) float matrix (None: missing), or
    ``None`` when one is absent from an event or not a number (the caller goes by column).
    Typed features (:class:`~monitor.events.PredictionBatch`) are numbers already.

    >>> def batch(*features):
    ...     return PredictionBatch("m", [], [], np.zeros(0), list(features), [], [])
    >>> numeric_matrix(batch({"a": 1.0, "b": None}, {"a": 2, "b": 3.5}), ["a", "b"]).tolist()
    [[1.0, nan], [2.0, 3.5]]
    >>> numeric_matrix(batch({"a": 1.0}, {"a": "1"}), ["a"]) is None
    True
    """
    if not names or not batch.features:
        return None
    rows = batch.feature_rows(names)
    if rows is None:
        return None
    flat = rows if len(names) == 1 else list(chain.from_iterable(rows))
    if not batch.typed and not set(map(type, flat)) <= NUMERIC_TYPES:
        return None
    # fromiter: a third faster than array() on a list, the same floats (None: NaN).
    matrix = np.fromiter(flat, dtype=np.float64, count=len(flat))
    return matrix.reshape(len(batch.features), len(names))
