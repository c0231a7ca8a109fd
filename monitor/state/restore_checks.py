"""Checks for state read back from a checkpoint: a file on disk is input, not trusted.

Every ``load_state`` reads its part through these, so a damaged or crafted part raises
:class:`ValueError` naming what is wrong before anything is applied, and no value of a wrong
type or shape reaches the live state (where it would fail later, in the consume loop, on every
restart).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "array",
    "integer",
    "mapping",
    "number",
    "optional_integer",
    "optional_text",
    "sequence",
    "text",
]

_INT_LIMIT = 2**62


def array(
    arrays: Mapping[str, npt.NDArray[Any]],
    name: str,
    dtype: type[np.generic],
    shape: tuple[int, ...],
) -> npt.NDArray[Any]:
    """The array ``name``, which must have exactly ``dtype`` and ``shape``.

    >>> array({"a": np.zeros(3, np.int64)}, "a", np.int64, (3,)).tolist()
    [0, 0, 0]
    >>> array({"a": np.zeros(3, np.int64)}, "a", np.int32, (3,))
    Traceback (most recent call last):
    ...
    ValueError: checkpoint array a is int64 (3,), expected int32 (3,)
    """
    found = arrays.get(name)
    if found is None:
        raise ValueError(f"checkpoint array {name} is missing")
    want = np.dtype(dtype)
    if found.dtype != want or found.shape != shape:
        raise ValueError(
            f"checkpoint array {name} is {found.dtype} {found.shape}, expected {want} {shape}"
        )
    return found


def mapping(value: object, what: str) -> dict[str, Any]:
    """``value`` as a JSON object (string keys)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{what} must be a JSON object")
    return value


def sequence(value: object, what: str, max_len: int | None = None) -> list[Any]:
    """``value`` as a JSON array of at most ``max_len`` items."""
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a JSON array")
    if max_len is not None and len(value) > max_len:
        raise ValueError(f"{what} has {len(value)} items, more than {max_len}")
    return value


def integer(value: object, what: str, minimum: int = -_INT_LIMIT, maximum: int = _INT_LIMIT) -> int:
    """``value`` as an integer (a boolean is not one) in ``[minimum, maximum]``.

    The default range keeps any arithmetic with it inside numpy's int64.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be an integer")
    if not minimum <= value <= maximum:
        raise ValueError(f"{what} must be in [{minimum}, {maximum}]")
    return value


def optional_integer(value: object, what: str) -> int | None:
    """``value`` as an integer (in the default range) or None."""
    return None if value is None else integer(value, what)


def number(value: object, what: str) -> float:
    """``value`` as a finite float (integers accepted, booleans not).

    >>> number(3, "x"), number(2.5, "x")
    (3.0, 2.5)
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{what} must be a number")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{what} must be finite")
    return out


def text(value: object, what: str) -> str:
    """``value`` as a string."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


def key64(value: object, what: str, where: str) -> int:
    """A 64-bit key kept as a decimal string (JSON has no exact 64-bit integers)."""
    digits = text(value, what)
    if not (digits.isdigit() and len(digits) <= 20 and int(digits) < 2**64):
        raise ValueError(f"{where}: {what} is not a 64-bit key")
    return int(digits)


def optional_text(value: object, what: str) -> str | None:
    """``value`` as a string or None."""
    return None if value is None else text(value, what)
