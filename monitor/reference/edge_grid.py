"""Which fine bin a number falls in, without a binary search per number.

``np.searchsorted`` over a profile's ~1,000 fine edges branches about ten times per value, and
on live data (not a benchmark repeating one array, which the branch predictor learns) most of
those branches are mispredicted: ~65 ns a value, the largest single cost of counting an event
with ten numeric features. :class:`EdgeGrid` splits the edges' range into a few cells per edge
and records, per cell, how many edges lie below it; a value's cell gives its bin to within a
few edges, which a few branch-free numpy passes settle. The answer is then checked against
the definition of the bin (``edges[i - 1] < x <= edges[i]``) and any value that fails it
(NaN, or edges so close together that floating-point rounding defeats the grid) is searched
the ordinary way, so the result is always exactly ``np.searchsorted(edges, x)``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: Grid cells per edge: more cells, fewer edges per cell (fewer passes), a larger table.
CELLS_PER_EDGE = 4
#: At most this many edges to walk past after the lookup; more (edges crowded in a small part
#: of the range: heavy tails) and plain binary search is used.
MAX_STEPS = 4
#: Below this many edges, binary search is a handful of branches: not worth a grid.
MIN_EDGES = 32


class EdgeGrid:
    """``np.searchsorted(edges, x)`` (side "left") for strictly increasing finite ``edges``.

    >>> grid = EdgeGrid(np.linspace(0.0, 1.0, 101))
    >>> x = np.array([-1.0, 0.0, 0.005, 0.01, 0.5, 0.995, 1.0, 2.0, np.inf, np.nan])
    >>> grid.search(x).tolist() == np.searchsorted(grid.edges, x).tolist()
    True
    """

    def __init__(self, edges: npt.NDArray[np.float64]) -> None:
        self.edges = edges
        self._grid: tuple[float, float, int, npt.NDArray[np.int32], int] | None = None
        n = edges.size
        if n < MIN_EDGES:
            return
        lo, cells = float(edges[0]), CELLS_PER_EDGE * n
        with np.errstate(over="ignore"):  # a range wider than the float max: no grid
            span = float(edges[-1]) - lo
        scale = cells / span if 0.0 < span < math.inf else 0.0
        if not 0.0 < scale < math.inf:
            return
        cell = np.arange(cells, dtype=np.float64)
        # A value's computed cell may be one off its true one (rounding): each cell's count
        # starts one cell below it, and the walk covers up to one cell above it.
        below = np.searchsorted(edges, lo + (cell - 1.0) / scale)
        steps = int((np.searchsorted(edges, lo + (cell + 2.0) / scale, "right") - below).max())
        if steps > MAX_STEPS:
            return
        self._grid = lo, scale, cells - 1, below.astype(np.int32), steps  # int32: half the bytes
        # bounds[i] = edges[i] (+inf past the last); bounds[i - 1] = -inf for i = 0.
        self._bounds = np.concatenate((edges, [math.inf, -math.inf]))

    def search(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """The number of edges below each value (NaN: all of them, as numpy sorts NaN last)."""
        if self._grid is None or x.ndim != 1:  # a scalar or a table: rare, searched plainly
            return np.searchsorted(self.edges, x)
        guess = self._walk(x, *self._grid)
        bounds = self._bounds
        wrong = ~((bounds[guess - 1] < x) & (x <= bounds[guess]))
        if wrong.any():
            guess[wrong] = np.searchsorted(self.edges, x[wrong])
        return guess

    def _walk(
        self,
        x: npt.NDArray[np.float64],
        lo: float,
        scale: float,
        top: int,
        below: npt.NDArray[np.int32],
        steps: int,
    ) -> npt.NDArray[np.intp]:
        """Each value's bin by the grid alone (right unless rounding defeated it, or NaN)."""
        with np.errstate(over="ignore", invalid="ignore"):  # huge values: inf, clipped below
            t = (x - lo) * scale
        np.fmax(t, 0.0, out=t)  # fmax/fmin: NaN becomes 0 (settled below), -inf the first cell
        np.fmin(t, top, out=t)
        guess = below[t.astype(np.intp)].astype(np.intp)
        bounds = self._bounds
        for _ in range(steps):
            guess += bounds[guess] < x
        return guess
