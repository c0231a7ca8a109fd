"""Windows at epoch scale with fractional panes: any batching gives the one-by-one result.

``test_window.py`` uses one geometry and times 0–400 s. Here times are 1.7e9–2.0e9 s (where a
float64 has about 2.4e-7 s of resolution), panes are fractions of a second or not
representable in binary (0.1, 0.3), several partitions interleave, and times sit on, just
before and just after pane and lateness boundaries. The oracle is the module docstrings' rules,
one event at a time, with the boundaries as the floats the windows report: pane ``k`` holds
``k*P <= t < (k+1)*P`` (``PaneRing.bounds`` computes ``k*P``), found by exact division and
then checked against those products; an event is late when older than its partition's newest
time minus the lateness; the window is the ``n`` panes ending at the newest accepted pane.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.state.event_time import PartitionClocks
from monitor.state.window import PaneRing, pane_id, pane_ids

WIDTH = 3
# (length, pane, allowed lateness): lateness a whole number of panes or none, so events land
# exactly on the lateness boundary as well as on pane boundaries.
GEOMETRIES = [
    (60.0, 7.5, 22.5),
    (3.0, 0.1, 0.3),
    (0.9, 0.3, 0.6),
    (2.5, 0.25, 0.0),
    (3600.0, 45.0, 90.0),
]

Event = tuple[int, float, int]  # (partition, time, counter)


@st.composite
def streams(draw: st.DrawFn) -> tuple[tuple[float, float, float], list[Event], list[int]]:
    geometry = draw(st.sampled_from(GEOMETRIES), label="geometry")
    length, pane, _ = geometry
    n = round(length / pane)
    first = math.floor(draw(st.floats(1.7e9, 2.0e9), label="start") / pane)
    events = []
    for _ in range(draw(st.integers(1, 60), label="events")):
        k = first + draw(st.integers(0, 3 * n))  # spans three windows: panes slide out
        t = k * pane
        nudge = draw(st.sampled_from(["on", "below", "above", "inside"]))
        if nudge == "below":
            t = float(np.nextafter(t, -np.inf))
        elif nudge == "above":
            t = float(np.nextafter(t, np.inf))
        elif nudge == "inside":
            t += draw(st.floats(0, pane, exclude_max=True))
        events.append((draw(st.integers(0, 2)), t, draw(st.integers(0, WIDTH - 1))))
    cuts = draw(st.lists(st.integers(0, len(events)), max_size=8), label="cuts")
    return geometry, events, cuts


def run(
    geometry: tuple[float, float, float], events: list[Event], cuts: list[int]
) -> tuple[PaneRing, int, int]:
    """Batches as the model state applies them: each polled batch split by partition (arrival
    order kept), judged against that partition's time, the accepted ones counted into the
    ring. Returns the ring, the late events and the on-time events before the window start."""
    length, pane, lateness = geometry
    ring = PaneRing(length=length, pane=pane, width=WIDTH)
    clocks = PartitionClocks(allowed_lateness=lateness, idle_timeout=math.inf)
    late = too_late = 0
    bounds = sorted({0, len(events), *cuts})
    for lo, hi in itertools.pairwise(bounds):
        for part in sorted({e[0] for e in events[lo:hi]}):
            mine = [e for e in events[lo:hi] if e[0] == part]
            ts = np.array([e[1] for e in mine])
            on_time = clocks.accept(part, ts, arrived_at=0.0)
            late += int((~on_time).sum())
            ring.add(ts[on_time], np.array([e[2] for e in mine])[on_time])
            too_late += int((ts[on_time] < ring.bounds()[0]).sum())
    return ring, late, too_late


def one_by_one(
    geometry: tuple[float, float, float], events: list[Event]
) -> tuple[list[int], int | None, int, int]:
    """The oracle: (window totals, head pane, late, accepted events that arrived after their
    pane had slid out), from exact fractions."""
    length, pane_f, lateness_f = geometry
    pane, n = Fraction(pane_f), round(length / pane_f)
    newest: dict[int, Fraction] = {}
    late = too_late = 0
    head: int | None = None
    accepted: list[tuple[int, int]] = []
    for part, t_f, counter in events:
        t = Fraction(t_f)
        if part in newest and t_f < float(newest[part]) - lateness_f:
            late += 1
            continue
        newest[part] = max(t, newest.get(part, t))
        k = math.floor(t / pane)
        k -= k * pane_f > t_f  # the boundary products, as floats (see the module docstring)
        k += (k + 1) * pane_f <= t_f
        head = k if head is None else max(head, k)
        too_late += k <= head - n
        accepted.append((k, counter))
    totals = [0] * WIDTH
    for k, counter in accepted:
        if head is not None and head - n < k <= head:
            totals[counter] += 1
    return totals, head, late, too_late


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(streams())
def test_epoch_scale_panes_merge_to_the_one_by_one_window(
    stream: tuple[tuple[float, float, float], list[Event], list[int]],
) -> None:
    geometry, events, cuts = stream
    whole, late_whole, _ = run(geometry, events, [])
    split, late_split, _ = run(geometry, events, cuts)
    totals, head, late, too_late = one_by_one(geometry, events)

    assert (split.head, split.total.tolist()) == (whole.head, whole.total.tolist())
    assert (split.head, split.total.tolist()) == (head, totals)
    assert late_split == late_whole == late
    # "Too late" (stored nowhere): judged by the window bounds at arrival, as the model
    # state counts it; with one batch per event that is the oracle's count exactly.
    one_each = run(geometry, events, list(range(len(events))))
    assert one_each[2] == too_late
    # The panes add up to the total, and each live pane's id is its slot's.
    assert split.slots.sum(axis=0).tolist() == split.total.tolist()
    live = split.pane_ids != np.iinfo(np.int64).min
    assert ((split.pane_ids[live] % split.n_panes) == np.flatnonzero(live)).all()


def test_pane_ids_keep_their_contract_on_and_around_every_boundary() -> None:
    """``k*P <= t < (k+1)*P`` as floats, for times on a boundary product and 1-3 float steps
    either side, 200,000 boundaries per pane at epoch scale (plain ``floor(t / P)`` breaks it
    for a few percent of them)."""
    rng = np.random.default_rng(12)
    for pane in (0.1, 0.3, 0.25, 7.5, 45.0, 1 / 3, 0.7):
        k = rng.integers(int(1.7e9 / pane), int(2.0e9 / pane), 200_000)
        t = k * pane
        times = [t]
        below, above = t, t
        for _ in range(3):
            below, above = np.nextafter(below, -np.inf), np.nextafter(above, np.inf)
            times += [below, above]
        every = np.concatenate(times)
        got = pane_ids(every, pane)
        assert (got * pane <= every).all() and (every < (got + 1) * pane).all(), pane
        assert pane_id(float(every[0]), pane) == got[0]
