"""The coordinator over an in-memory state topic (issue 15): flush, retry, takeover, acting."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.events import Label
from monitor.group.coordinator import Coordinator
from monitor.group.panes import digest
from monitor.group.records import POLICY_KEY, parse_key
from monitor.serve.ops_metrics import OpsMetrics
from monitor.state.model_state import ModelState
from tests.support.shards import CFG, REF, stream

PRED, LAB = "predictions", "labels"
SETTINGS: Any = SimpleNamespace(kafka=SimpleNamespace(predictions_topic=PRED, labels_topic=LAB))


class FakeTopic:
    """One in-memory topic partition: (key, value, offset); publish raises on demand."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None, int]] = []
        self.fail = False
        self._pos = 0

    def publish(self, records: list[tuple[bytes, bytes | None]]) -> int:
        if self.fail:
            raise OSError("broker away")
        for k, v in records:
            self.records.append((k, v, len(self.records)))
        return sum(len(k) + len(v or b"") for k, v in records)

    def read(self, timeout: float = 0.0) -> list[tuple[bytes, bytes | None, int]]:
        out = self.records[self._pos :]
        self._pos = len(self.records)
        return out

    def end(self) -> int:
        return len(self.records)

    def position(self) -> int:
        return self._pos

    def scan(self, until: int) -> list[tuple[bytes, bytes | None, int]]:
        return self.records[:until]

    def close(self) -> None:
        pass

    def reader(self) -> FakeTopic:
        """Another replica's client of the same topic: the same records, its own position."""
        other = FakeTopic()
        other.records = self.records
        other.publish = self.publish  # type: ignore[method-assign]  # fails with the topic
        return other


def replica(topic: FakeTopic, name: str) -> Coordinator:
    return Coordinator(
        SETTINGS, {"m": ModelState(CFG, REF)}, threading.Lock(), topic.reader(), name,
        OpsMetrics(CollectorRegistry()),
    )  # fmt: skip


PREDS = sorted(stream(21, 60, 600.0), key=lambda p: p.timestamp)


def feed(c: Coordinator, part: int, preds: list[Any]) -> None:
    st = c.shard("m", part)
    assert st is not None
    st.add_predictions(preds, part)


def test_flush_publishes_journal_then_state_and_a_failed_one_is_republished() -> None:
    topic = FakeTopic()
    a = replica(topic, "a")
    a.on_assign([(PRED, 0), (PRED, 1), (LAB, 0), (LAB, 1)])
    feed(a, 0, PREDS[:20])
    feed(a, 1, PREDS[20:30])
    offsets = {(PRED, 0): 20, (PRED, 1): 10}
    assert a.flush(lambda: offsets) == offsets
    kinds = [parse_key(k)[:2] for k, _, _ in topic.records]
    # Per partition: its journal, its panes (the windows, one record per pane), its state.
    assert [k for k in kinds if k[0] != "W"] == [("J", 0), ("S", 0), ("J", 1), ("S", 1)]
    for part in (0, 1):
        j, s = kinds.index(("J", part)), kinds.index(("S", part))
        between = kinds[j + 1 : s]
        assert between and set(between) == {("W", part)}
    n = len(topic.records)
    assert a.flush(lambda: offsets) == offsets and len(topic.records) == n  # nothing moved
    feed(a, 0, PREDS[30:40])
    before = len(topic.records)
    topic.fail = True
    assert a.flush(lambda: {**offsets, (PRED, 0): 30}) == {}
    topic.fail = False
    assert a.flush(lambda: {**offsets, (PRED, 0): 30}) == {**offsets, (PRED, 0): 30}
    # Only the panes that moved go again; those that slid out of the window go as tombstones.
    first = {k: digest(v) for k, v, _ in topic.records[:n] if v and parse_key(k)[:2] == ("W", 0)}
    again = topic.records[before:]
    assert parse_key(again[0][0])[0] == "J" and parse_key(again[-1][0])[0] == "S"
    panes = [(k, v) for k, v, _ in again if parse_key(k)[0] == "W"]
    assert panes and all(k not in first or digest(v) != first[k] for k, v in panes if v)
    assert all(k in first for k, v in panes if v is None)
    # A new owner of partition 0 rebuilds it: the requeued journal entries are not lost.
    b = replica(topic, "b")
    resume = b.on_assign([(PRED, 0), (LAB, 0)])
    assert resume == {(PRED, 0): 30}
    assert b.live[0]["m"].perf.join.pending() == a.live[0]["m"].perf.join.pending() == 30
    pairs = b.live[0]["m"].add_labels([Label(PREDS[35].id, "m", 1, PREDS[35].timestamp + 1)])
    assert pairs.counts.joined == 1
    assert b.acting and not replica(topic, "c").acting


def test_a_partition_never_published_is_replayed_and_acting_follows_partition_0() -> None:
    topic = FakeTopic()
    topic.publish([(POLICY_KEY, b'{"p": 1}')])
    c = replica(topic, "c")
    got: list[bytes | None] = []
    c.on_acting = got.append
    assert c.on_assign([(PRED, 3), (LAB, 3)]) == {} and not c.acting and got == []
    assert c.on_assign([(PRED, 0), (LAB, 0)]) == {} and c.acting and got == [b'{"p": 1}']


def test_global_states_merge_owned_shards_with_the_others_records() -> None:
    topic = FakeTopic()
    a, b = replica(topic, "a"), replica(topic, "b")
    a.on_assign([(PRED, 0), (LAB, 0)])
    b.on_assign([(PRED, 1), (LAB, 1)])
    feed(a, 0, PREDS[:25])
    feed(b, 1, PREDS[25:])
    a.flush(lambda: {(PRED, 0): 25})
    b.flush(lambda: {(PRED, 1): 35})
    a.read()
    b.read()
    for c in (a, b):
        (merged,) = c.global_states()
        stop = merged.slots[0].stop
        assert next(v for v in merged.views() if v.name == "1h").total[:stop].sum() == 60
