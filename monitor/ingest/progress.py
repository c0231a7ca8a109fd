"""What this process has processed per partition, whichever Kafka client read it.

Both adapters (:mod:`monitor.ingest.kafka_source`, :mod:`monitor.ingest.confluent_source`)
keep one: the next offset to process per partition (marked under the ingest lock, together
with the state update, so a checkpoint copies a consistent cut) and the first offset processed
since start (the evidence ranges a webhook carries).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from monitor.events import Offsets, RawRecord, RecordBatch


def _one(values: Iterable[object]) -> bool:
    """Whether there is exactly one distinct value."""
    return len(set(values)) == 1


class Progress:
    """Next offset to process, and first offset processed, per (topic, partition)."""

    def __init__(self, positions: Offsets | None = None) -> None:
        self._next: Offsets = dict(positions or {})
        self._first: Offsets = {}

    def mark(self, records: Sequence[RawRecord]) -> None:
        """Count ``records`` as processed (call under the ingest lock)."""
        batch = RecordBatch.of(records)
        if not batch:
            return
        if _one(batch.partitions) and _one(batch.topics):
            # The usual batch: one partition, the bound of its offsets read in C.
            key = batch.topics[0], batch.partitions[0]
            self._next[key] = max(max(batch.offsets) + 1, self._next.get(key, -1))
            self._first.setdefault(key, batch.offsets[0])
            return
        for topic, partition, offset in zip(
            batch.topics, batch.partitions, batch.offsets, strict=True
        ):
            key = topic, partition
            if offset + 1 > self._next.get(key, -1):
                self._next[key] = offset + 1
            self._first.setdefault(key, offset)

    def get(self, topic: str, partition: int) -> int | None:
        """The next offset to process in this partition, if known."""
        return self._next.get((topic, partition))

    def set(self, topic: str, partition: int, offset: int) -> None:
        """Resume ``partition`` at ``offset`` (a group-mode takeover)."""
        self._next[topic, partition] = offset

    def forget(self, topic: str, partition: int) -> None:
        """No known position for ``partition`` any more (its state is gone)."""
        self._next.pop((topic, partition), None)

    def positions(self) -> Offsets:
        """A copy of the next offset to process per partition."""
        return dict(self._next)

    def ranges(self, roles: dict[str, str]) -> dict[str, dict[str, list[int]]]:
        """Per stream (``roles`` names a topic's) and partition: [first, last] offset processed
        by this process (a window's events lie within them)."""
        out: dict[str, dict[str, list[int]]] = {}
        for (topic, part), nxt in sorted(self._next.items()):
            first = self._first.get((topic, part))
            if first is not None:
                out.setdefault(roles.get(topic, topic), {})[str(part)] = [first, nxt - 1]
        return out
