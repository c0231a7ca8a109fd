"""The status page's short history: a bounded ring of recent snapshots and inline SVG sparklines.

The ring holds references to immutable :class:`~monitor.snapshot.Snapshot` objects (the last
``size`` evaluations, nothing older), so it costs a few snapshots of memory and is lost on a
restart. The evaluator records every snapshot it swaps in; the page records the one it renders
too (a repeat is not recorded twice).
"""

from __future__ import annotations

import math
import threading
from collections import deque

from monitor.snapshot import Snapshot

#: Where one feature's series lives: (model, window, feature).
SeriesKey = tuple[str, str, str]
WIDTH, HEIGHT, PAD = 96, 22, 2.0
#: The vertical scale never shrinks below this, so noise around 0 draws as a flat line.
PSI_SCALE_FLOOR = 0.1


class History:
    """The last ``size`` snapshots (thread-safe: the evaluator records, HTTP workers read).

    Parameters
    ----------
    size
        How many evaluations a sparkline spans (at least 2).
    """

    def __init__(self, size: int = 30) -> None:
        if size < 2:
            raise ValueError("a history needs at least 2 snapshots")
        self._ring: deque[Snapshot] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, snap: Snapshot) -> None:
        """Add ``snap`` unless it is the newest one already held."""
        with self._lock:
            if not self._ring or self._ring[-1] is not snap:
                self._ring.append(snap)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ring)

    def psi_series(self) -> dict[SeriesKey, list[float]]:
        """Per (model, window, feature), its PSI in each held snapshot, oldest first.

        A snapshot without that feature's statistics (not enough data, no reference yet)
        contributes NaN, so the gaps keep their place on the time axis.
        """
        with self._lock:
            snaps = list(self._ring)
        series: dict[SeriesKey, list[float]] = {}
        for i, snap in enumerate(snaps):
            for m in snap.models:
                for w in m.windows:
                    for f in w.features:
                        key = (m.model, w.window, f.feature)
                        values = series.setdefault(key, [math.nan] * len(snaps))
                        values[i] = f.psi
        return series


def sparkline(values: list[float], alarm: bool = False) -> str:
    """An inline SVG polyline of ``values`` (NaN: a gap), the newest point marked.

    Parameters
    ----------
    values
        Oldest first; non-finite values are skipped.
    alarm
        Draw the newest point in the alarm colour.

    Returns
    -------
    str
        ``<svg>`` markup with numbers only in its attributes, or an empty string with fewer
        than two finite points.
    """
    points = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    if len(points) < 2:
        return ""
    top = max(PSI_SCALE_FLOOR, *(v for _, v in points))
    step = (WIDTH - 2 * PAD) / max(1, len(values) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return PAD + i * step, HEIGHT - PAD - (HEIGHT - 2 * PAD) * max(0.0, v) / top

    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in points))
    last_x, last_y = xy(*points[-1])
    title = f"PSI over the last {len(values)} evaluations: {points[0][1]:.3f} → {points[-1][1]:.3f}"
    return (
        f'<svg class=spark width={WIDTH} height={HEIGHT} viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role=img aria-label="{title}"><title>{title}</title>'
        f'<polyline fill=none stroke=currentColor stroke-width=1.5 points="{coords}"/>'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r=2.5 '
        f'class="{"dot alarm" if alarm else "dot"}"/></svg>'
    )
