"""What the app needs from a record source, whatever Kafka client implements it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from monitor.events import DeadLetter, Offsets, RawRecord


class DeadLetterAbortedError(Exception):
    """Shutdown came while the dead-letter topic was unreachable; nothing was acknowledged."""


class Source(Protocol):
    """What the app needs from a record source."""

    caught_up: bool

    def poll(self, timeout: float) -> Sequence[RawRecord]:
        """The next records (a :class:`~monitor.events.RecordBatch` from both adapters)."""
        ...

    def dead_letter(
        self,
        items: Sequence[DeadLetter],
        stop: Callable[[], bool],
        waiting: Callable[[], None],
    ) -> None: ...
    def mark_processed(self, records: Sequence[RawRecord]) -> None: ...
    def positions(self) -> Offsets: ...
    def offset_ranges(self) -> dict[str, dict[str, list[int]]]: ...
    def commit(self, offsets: Offsets) -> None: ...
    def update_lag(self) -> None: ...
    def close(self) -> None: ...


class Hooks(Protocol):
    """What the source asks of the app at rebalances."""

    def on_revoke(self) -> Offsets | None:
        """Checkpoint now; return the offsets to commit (None: nothing to commit)."""
        ...

    def on_assign(self, partitions: list[tuple[str, int]]) -> Offsets | None:
        """After an assignment, on the consume thread: where to resume each partition (None:
        the source decides; a partition absent from the answer has no state: replay it)."""
        ...
