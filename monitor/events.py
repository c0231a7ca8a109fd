"""Immutable event and result types that cross module boundaries.

The per-record types are named tuples: immutable like frozen dataclasses, but about three times
cheaper to create, which matters at tens of thousands of records per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

Stream = Literal["predictions", "labels"]


class RawRecord(NamedTuple):
    """One Kafka record as the ingest layer hands it over (client-independent)."""

    topic: str
    partition: int
    offset: int
    timestamp: float  # the Kafka record timestamp, epoch seconds
    key: bytes | None
    value: bytes | None


class Prediction(NamedTuple):
    id: str
    model: str
    version: str | None
    timestamp: float  # event time, epoch seconds
    features: dict[str, Any]
    prediction: Any
    score: float | dict[str, float] | None


class Label(NamedTuple):
    id: str
    model: str
    label: Any
    timestamp: float


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Why a record could not become an event; ``reason`` is a bounded metric label."""

    reason: str
    detail: str


#: (topic, partition) → the next offset to process: what a checkpoint covers, what is committed.
Offsets = dict[tuple[str, int], int]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record bound for the dead-letter topic, with the headers that explain it."""

    record: RawRecord
    stream: Stream
    reason: str
    detail: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("modelmon-source-topic", self.record.topic.encode()),
            ("modelmon-source-partition", str(self.record.partition).encode()),
            ("modelmon-source-offset", str(self.record.offset).encode()),
            ("modelmon-reason", self.reason.encode()),
            ("modelmon-detail", self.detail[:500].encode("utf-8", "replace")),
        ]
