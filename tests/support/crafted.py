"""Strategies for crafted state: any JSON value, any array shape and dtype, every position in a
JSON tree. Shared by the checkpoint and the state-topic record tests (both read untrusted
``meta`` + arrays)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st


def json_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON tree (containers too), in a stable order."""
    items = list(enumerate(node)) if isinstance(node, list) else sorted(node.items())
    out = []
    for key, child in items:
        out.append((*prefix, key))
        if isinstance(child, dict | list) and child:
            out.extend(json_paths(child, (*prefix, key)))
    return out


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what JSON (orjson) can hold
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
SHAPES = st.lists(st.integers(0, 70), min_size=0, max_size=3).map(tuple)
DTYPES = st.sampled_from(
    [np.int32, np.int64, np.uint64, np.uint8, np.float32, np.float64, np.bool_]
)
