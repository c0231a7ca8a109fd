"""Event time per input partition: lateness judged per partition, a watermark over them all.

Pure: event time comes in with the events and wall time is an argument, no clock is read.

A Kafka topic is ordered per partition, not as a whole: when a backlog is consumed (a restart,
a deploy, an outage) one partition is read ahead of another by minutes. Judging lateness against
the newest time of *all* partitions then drops the slow partitions' events as late. Here each
partition has its own newest time, so an event is late only if it is older than its own
partition's newest time minus the allowed lateness: the same events are accepted whatever the
interleaving of partitions (:func:`~monitor.state.window.accept_on_time` keeps it exact per
partition whatever the batching).

The windows end at the newest time over all partitions (their *head*), so an event of a slow
partition that falls before the longest window's start is outside every window (counted by the
caller, never stored: it would have slid out by the end of the backlog anyway). The *watermark*
is the newest time of the slowest partition that is still active: nothing older is still to
come (within lateness). A partition that has delivered nothing for ``idle_timeout`` (wall time)
stops holding it back, as stream processors do with idle inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.state import restore_checks as checks
from monitor.state.window import FloatArray, accept_on_time

_NEVER = float("-inf")


class PartitionClocks:
    """The newest event time seen in each input partition of one model.

    Examples
    --------
    >>> clocks = PartitionClocks(allowed_lateness=60.0, idle_timeout=30.0)
    >>> clocks.accept(0, np.array([1000.0, 1010.0]), arrived_at=5.0).tolist()
    [True, True]
    >>> clocks.accept(1, np.array([400.0, 390.0, 200.0]), arrived_at=5.0).tolist()  # slow
    [True, True, False]
    >>> clocks.head, clocks.watermark(now=10.0), clocks.watermark(now=100.0)
    (1010.0, 400.0, 1010.0)
    """

    def __init__(self, allowed_lateness: float, idle_timeout: float) -> None:
        self.allowed_lateness = allowed_lateness
        self.idle_timeout = idle_timeout
        self.newest: dict[int, float] = {}
        #: Wall time of each partition's last batch (not checkpointed: after a restore a
        #: partition holds the watermark back only once it delivers again).
        self.last_active: dict[int, float] = {}

    def accept(
        self, partition: int, timestamps: FloatArray, arrived_at: float
    ) -> npt.NDArray[np.bool_]:
        """Mask of ``partition``'s events (in arrival order) that are not late; updates its time."""
        mask, newest = self.judge(partition, timestamps)
        self.advance(partition, newest, arrived_at)
        return mask

    def judge(self, partition: int, timestamps: FloatArray) -> tuple[npt.NDArray[np.bool_], float]:
        """Like :meth:`accept`, changing nothing: (mask, the partition's newest time after)."""
        return accept_on_time(timestamps, self.newest.get(partition, _NEVER), self.allowed_lateness)

    def advance(self, partition: int, newest: float, arrived_at: float) -> None:
        """Record what :meth:`judge` found for a batch of ``partition`` that arrived then."""
        if newest > _NEVER:
            self.newest[partition] = newest
        self.last_active[partition] = arrived_at

    def clamp(self, bound: float) -> bool:
        """Pull every partition's newest time back to ``bound``; returns whether any was past."""
        past = {p: bound for p, t in self.newest.items() if t > bound}
        self.newest.update(past)
        return bool(past)

    @property
    def head(self) -> float:
        """The newest event time over every partition (where the windows end)."""
        return max(self.newest.values(), default=_NEVER)

    def watermark(self, now: float | None = None) -> float:
        """The newest time of the slowest active partition (``now``: wall time; None: all).

        With no active partition (a quiet stream) it is the head.
        """
        active = [
            t
            for p, t in self.newest.items()
            if now is None or now - self.last_active.get(p, _NEVER) <= self.idle_timeout
        ]
        return min(active) if active else self.head

    def merge_from(self, other: PartitionClocks) -> None:
        """Take ``other``'s partitions in (the newer time where both know one)."""
        for p, t in other.newest.items():
            self.newest[p] = max(t, self.newest.get(p, _NEVER))
        for p, t in other.last_active.items():
            self.last_active[p] = max(t, self.last_active.get(p, _NEVER))

    def to_state(self) -> dict[str, Any]:
        return {"newest": [[p, t] for p, t in sorted(self.newest.items())]}

    def load_state(self, meta: dict[str, Any]) -> None:
        """Restore :meth:`to_state`; raises ValueError on anything but [[partition, time]]."""
        newest = {}
        for entry in checks.sequence(meta.get("newest"), "event_time.newest"):
            part, t = checks.sequence(entry, "event_time entry", 2)
            newest[checks.integer(part, "partition", 0)] = checks.number(t, "event time")
        self.newest = newest
        self.last_active = {}
