"""Which model versions a stream carries: first appearances, recency, and what is present now.

A canary interleaves versions record by record (95 % ``v1``, 5 % ``v2``), so the version of
the last record says nothing; a flip between versions already seen is not a change. The
semantics, shared by the model state (rebaselining) and the policy (``model.version_changed``):

- A version is *new* the first time it appears, except the very first version a log ever
  holds, which is adopted (there is nothing it replaces).
- A log remembers at most :data:`MAX_VERSIONS` versions; beyond that the least recently seen is
  forgotten, and a forgotten version that returns is new again.
- A version is *present* while its newest event is within ``horizon`` (the model's longest
  window) of the newest event of any version; the *current* version is the newest arrival
  among the present ones, so a canary is current while it runs and a rolled-back canary stops
  being current once the windows no longer hold its events.

Pure: event time only, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_VERSIONS", "VersionLog", "touch"]

#: Versions remembered per model (by the model state and by the policy).
MAX_VERSIONS: Final = 16


def touch(seen: list[str], version: str, capacity: int = MAX_VERSIONS) -> bool:
    """Mark ``version`` most recently seen in ``seen`` (least recent first, in place).

    Returns whether it is new: unknown to a non-empty ``seen``. The least recently seen entries
    beyond ``capacity`` are dropped.
    """
    if version in seen:
        seen.remove(version)
        seen.append(version)
        return False
    new = bool(seen)
    seen.append(version)
    del seen[:-capacity]
    return new


class VersionLog:
    """The versions of one model's predictions: first-appearance order and newest event time.

    Parameters
    ----------
    horizon
        Seconds of event time a version stays present after its newest event.
    capacity
        Versions remembered; the least recently seen is forgotten beyond it.
    """

    def __init__(self, horizon: float, capacity: int = MAX_VERSIONS) -> None:
        self._horizon = horizon
        self._capacity = capacity
        self._newest: dict[str, float] = {}  # version → newest event time; first appearance order

    def observe(self, versions: Sequence[str | None], ts: npt.NDArray[np.float64]) -> list[str]:
        """Record a batch (each event's version and time); returns the versions new to the log,
        in order of first appearance."""
        newest = self._newest
        if len(set(versions)) == 1 and (v := versions[0]) is not None and v in newest:
            # The usual batch: one version, already known.
            newest[v] = max(newest[v], float(ts.max()))
            return []
        fresh: list[str] = []
        for v, t in zip(versions, ts.tolist(), strict=True):
            if v is None:
                continue
            seen = newest.get(v)
            if seen is None:
                if newest:
                    fresh.append(v)
                newest[v] = t
                self._forget_beyond_capacity(keep=v)
            elif t > seen:
                newest[v] = t
        return fresh

    def _forget_beyond_capacity(self, keep: str) -> None:
        while len(self._newest) > self._capacity:
            stale = min((v for v in self._newest if v != keep), key=self._newest.__getitem__)
            del self._newest[stale]

    def present(self) -> tuple[str, ...]:
        """Versions with an event within ``horizon`` of the newest event, oldest arrival first."""
        if not self._newest:
            return ()
        since = max(self._newest.values()) - self._horizon
        return tuple(v for v, t in self._newest.items() if t >= since)

    @property
    def current(self) -> str | None:
        """The newest arrival among the present versions (None before any versioned event)."""
        present = self.present()
        return present[-1] if present else None

    def __contains__(self, version: object) -> bool:
        return version in self._newest

    def merge_from(self, other: VersionLog) -> None:
        """Take ``other``'s versions in (newest time of each); versions new here are ordered by
        their newest time, the best order of appearance two logs can agree on."""
        for v, t in sorted(other._newest.items(), key=lambda item: item[1]):
            self._newest[v] = max(t, self._newest.get(v, t))
        while len(self._newest) > self._capacity:
            del self._newest[min(self._newest, key=self._newest.__getitem__)]

    def to_state(self) -> list[list[Any]]:
        """``[[version, newest event time], …]`` in first-appearance order."""
        return [[v, t] for v, t in self._newest.items()]

    def load_state(self, raw: Iterable[Any]) -> None:
        """Restore :meth:`to_state`; raises ValueError on anything else."""
        if not isinstance(raw, list | tuple):  # crafted state: a version log is a list
            raise ValueError(f"version log {raw!r:.80} is not [version, time] pairs")
        newest: dict[str, float] = {}
        for entry in raw:
            if not (isinstance(entry, list | tuple) and len(entry) == 2):
                raise ValueError(f"version log entry {entry!r:.80} is not [version, time]")
            v, t = entry
            if not isinstance(v, str) or not isinstance(t, int | float) or isinstance(t, bool):
                raise ValueError(f"version log entry {entry!r:.80} is not [version, time]")
            newest[v] = float(t)
        if len(newest) > self._capacity:
            raise ValueError(f"version log holds {len(newest)} versions, over {self._capacity}")
        self._newest = newest
