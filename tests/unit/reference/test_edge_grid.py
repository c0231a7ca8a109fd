"""The edge grid is binary search by another route: ``np.searchsorted(edges, x)``, always.

Edges come evenly spread (the grid is used), crowded within a few float steps of one another
(the grid's cells are rounded away and the check must send values back to binary search), or
heavy-tailed (no grid); values are drawn around and on the edges, one float step either side,
outside the range, infinite and NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.reference.edge_grid import MIN_EDGES, EdgeGrid


@st.composite
def edge_sets(draw: st.DrawFn) -> np.ndarray[Any, Any]:
    n = draw(st.integers(MIN_EDGES, 400))
    start = draw(st.floats(-1e6, 1e6))
    shape = draw(st.sampled_from(["even", "quantiles", "crowded", "heavy"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if shape == "even":
        edges = start + np.cumsum(rng.uniform(0.5, 1.5, n))
    elif shape == "quantiles":
        edges = np.quantile(rng.normal(start, 10.0, 20 * n), np.linspace(0, 1, n + 2)[1:-1])
    elif shape == "crowded":  # consecutive floats: no cell is wider than a rounding error
        edges = start + np.arange(n) * np.spacing(abs(start) + 1.0)
    else:
        edges = start + np.cumsum(rng.lognormal(0.0, 3.0, n))
    return np.unique(edges)


@st.composite
def values_for(draw: st.DrawFn, edges: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lo, hi = edges[0], edges[-1]
    on = rng.choice(edges, 50)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, lo - 1.0, hi + 1.0, 1e308, -1e308]
    return np.concatenate(
        (
            rng.uniform(lo - (hi - lo) / 10, hi + (hi - lo) / 10, 200),
            on,
            np.nextafter(on, np.inf),
            np.nextafter(on, -np.inf),
            specials,
            draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=20)),
        )
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_grid_finds_what_binary_search_finds(data: st.DataObject) -> None:
    edges = data.draw(edge_sets())
    x = data.draw(values_for(edges))
    grid = EdgeGrid(edges)
    assert grid.search(x).tolist() == np.searchsorted(edges, x).tolist()
    if grid._grid is not None and np.diff(edges).min() > 1e-6 * np.abs(edges).max():
        # Cells wider than rounding: the grid alone is right (binary search only for NaN),
        # at its cells' boundaries too, where a value's computed cell may be one off.
        lo, scale, top = grid._grid[:3]
        bounds = lo + np.arange(top + 2) / scale
        finite = np.concatenate(
            (x[~np.isnan(x)], bounds, np.nextafter(bounds, np.inf), np.nextafter(bounds, -np.inf))
        )
        walked = grid._walk(finite, *grid._grid)
        assert walked.tolist() == np.searchsorted(edges, finite).tolist()
    strided = np.repeat(x, 2)[::2]  # a matrix column: not contiguous
    assert grid.search(strided).tolist() == np.searchsorted(edges, strided).tolist()


def test_the_grid_is_used_where_it_helps_and_not_elsewhere() -> None:
    rng = np.random.default_rng(0)
    normal = np.quantile(rng.normal(100, 15, 20_000), np.linspace(0, 1, 1001)[1:-1])
    assert EdgeGrid(normal)._grid is not None
    heavy = np.quantile(rng.lognormal(0, 2, 20_000), np.linspace(0, 1, 1001)[1:-1])
    assert EdgeGrid(heavy)._grid is None
    assert EdgeGrid(np.arange(MIN_EDGES - 1.0))._grid is None
    crowded = 1e9 + np.arange(64) * np.spacing(1e9)
    x = np.concatenate((crowded, np.nextafter(crowded, 0), [np.nan]))
    assert EdgeGrid(crowded).search(x).tolist() == np.searchsorted(crowded, x).tolist()
