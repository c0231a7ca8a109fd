"""The domain's shared words: feature kinds, tasks, and one spelling per class or category.

Everything that names a feature kind or a task, or turns a raw class/category value into the
key it is counted under, takes it from here, so the config, the reference profiles and the
performance encoding cannot drift apart.
"""

from __future__ import annotations

import math
from typing import Final, Literal, get_args

import numpy as np

FeatureKind = Literal["numeric", "categorical"]
Task = Literal["binary_classification", "multiclass_classification", "regression"]
TASKS: Final[tuple[Task, ...]] = get_args(Task)

#: Integral floats up to this magnitude render as integers; beyond it a float is not an exact
#: integer any more, so it keeps its float spelling.
_EXACT_INT_LIMIT: Final = 2.0**53


def canonical_key(value: object) -> str | None:
    """The one spelling of a class or category value; None for missing (None or NaN).

    Producers and training files disagree on types for the same value: a label ``1``, ``1.0``,
    ``true`` or ``"1"``, a category code ``3`` read back from CSV as ``3.0``. Booleans count as
    the integers they are in Python, JSON-number-wise (``True`` is ``"1"``), so a binary label
    sent as ``true`` matches ``positive_class: 1``; integral floats render as integers.

    >>> [canonical_key(v) for v in (1, 1.0, True, False, "1", "fraud", 2.5, None, float("nan"))]
    ['1', '1', '1', '0', '1', 'fraud', '2.5', None, None]
    >>> canonical_key(np.int64(3)), canonical_key(np.float32(3.0)), canonical_key(1e300)
    ('3', '3', '1e+300')
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
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


def fits_kind(value: object, kind: FeatureKind) -> bool:
    """Whether a feature value has a JSON type its kind accepts (missing always fits).

    Numeric features take numbers (a boolean is not one); categorical features take any JSON
    scalar. A value that does not fit is a *type mismatch*: counted for its feature, treated
    as missing for drift, and never a reason to drop the prediction.

    >>> [fits_kind(v, "numeric") for v in (1, 2.5, None, True, "3", [1])]
    [True, True, True, False, False, False]
    >>> [fits_kind(v, "categorical") for v in ("DE", 3, 2.0, False, None, {"a": 1}, [1])]
    [True, True, True, True, True, False, False]
    """
    if value is None:
        return True
    if kind == "numeric":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str | int | float)
