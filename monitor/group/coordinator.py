"""Group mode's bookkeeping: shards per owned partition, flushes, takeovers, the acting role.

Threads: the consume thread routes events to :meth:`Coordinator.shard`, reads the state topic
(:meth:`read`) and flushes; a rebalance calls :meth:`on_revoke` (IO thread) and
:meth:`on_assign` (consume thread); the evaluation thread calls :meth:`global_states`. Shards
are guarded by the ingest lock (``lock``), what was read from the topic by its own lock.

Correctness rests on three rules:

* a flush publishes a partition's journal record, then its state record (one topic partition:
  in that order), and the input offsets the state covers are committed only after both acks;
* a new owner rebuilds a partition from its latest state record and the journal records it
  names, and seeks the input to the offsets that record covers (not to the committed ones,
  which may lag it), so nothing is lost or counted twice whoever owned it before;
* the acting replica is the owner of the predictions topic's partition 0: Kafka's assignment
  chooses it, and on taking the role it restores the policy from the last ``P`` record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.events import Offsets
from monitor.group.panes import PaneLookup, digest
from monitor.group.records import (
    BASE_EVERY,
    POLICY_KEY,
    Shard,
    base_rows,
    decode_journal,
    decode_shard,
    encode_journal,
    encode_shard,
    is_base,
    journal_key,
    listed,
    parse_key,
    shard_key,
)
from monitor.group.topic import StateTopic
from monitor.persistence.checkpoint import CheckpointError
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import Settings
from monitor.state.join_journal import JoinJournal
from monitor.state.merge import merge_states
from monitor.state.model_state import ModelState

log = logging.getLogger(__name__)


@dataclass
class _Seen:
    """The latest ``S`` record of a partition read from the topic."""

    offset: int
    raw: bytes
    decoded: Shard | None = None


class Coordinator:
    """Owns this replica's shards and its view of every other partition's state."""

    def __init__(
        self,
        settings: Settings,
        templates: Mapping[str, ModelState],
        lock: threading.Lock,
        topic: StateTopic,
        member: str,
        metrics: OpsMetrics,
    ) -> None:
        self._metrics = metrics
        self._settings = settings
        self._templates = dict(templates)
        self._lock = lock  # the ingest lock
        self._topic = topic
        self.member = member
        self._pred = settings.kafka.predictions_topic
        self._labels = settings.kafka.labels_topic
        self.owned: set[int] = set()
        self.live: dict[int, dict[str, ModelState]] = {}
        self._seq: dict[int, int] = {}
        self._based: dict[int, int] = {}  # partition → seq of a base acknowledged, not yet tidied
        #: Per owned partition, what its last flush covered: input offsets, caught up.
        self._flushed: dict[int, tuple[int | None, int | None, bool]] = {}
        self._seen: dict[int, _Seen] = {}
        #: The latest value of every pane record read (all partitions: the global windows).
        self._panes: dict[bytes, bytes] = {}
        #: Per owned partition, the digest of each pane record last published.
        self._pane_digests: dict[int, dict[bytes, str]] = {}
        self._policy: bytes | None = None
        self._read_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.acting = False
        #: Whether this replica has read its input to the end (set by the app).
        self.caught_up: Callable[[], bool] = lambda: True
        #: Whether every other partition's owner had, at its last flush (see global_states).
        self.others_caught_up = True
        self.on_acting: Callable[[bytes | None], None] = lambda raw: None

    # -- consume thread: routing ------------------------------------------------------------
    def shard(self, model: str, partition: int) -> ModelState | None:
        """The state of ``model`` in input ``partition`` (made on first use)."""
        states = self.live.get(partition)
        if states is None:
            states = self.live[partition] = self._fresh()
        return states.get(model)

    def _fresh(self) -> dict[str, ModelState]:
        out = {}
        for name, t in self._templates.items():
            st = ModelState(t.cfg, t.reference)
            st.perf.join.journal = JoinJournal(st.perf.join.proba_width)
            out[name] = st
        return out

    def owned_states(self) -> list[tuple[str, ModelState]]:
        return [(name, st) for states in self.live.values() for name, st in states.items()]

    # -- consume thread: the state topic ----------------------------------------------------
    def read(self, timeout: float = 0.0) -> int:
        """Take in what the topic got since the last read; returns how many records."""
        records = self._topic.read(timeout)
        with self._read_lock:
            for key, value, offset in records:
                kind, partition, _ = parse_key(key)
                if kind == "S" and value is not None:
                    self._seen[partition] = _Seen(offset, value)
                elif kind == "W":
                    if value is None:
                        self._panes.pop(key, None)
                    else:
                        self._panes[key] = value
                elif kind == "P":
                    self._policy = value
        return len(records)

    def catch_up(self, timeout: float = 30.0) -> None:
        """Read the topic up to its current end."""
        end = self._topic.end()
        while self._topic.position() < end:
            if not self.read(timeout=min(timeout, 1.0)) and self._topic.position() < end:
                timeout -= 1.0
                if timeout <= 0:
                    raise TimeoutError(f"state topic not read to offset {end}")

    # -- flushing -----------------------------------------------------------------------------
    def flush(self, positions: Callable[[], Offsets]) -> Offsets:
        """Publish every owned partition whose offsets moved; returns the offsets to commit
        (those of the partitions published, or already published before; none if the
        broker did not take it: the next flush tries again)."""
        try:
            # One flush at a time: a revocation's (IO thread) must not interleave its records
            # with the consume thread's, or a journal could land after the state naming it.
            with self._flush_lock:
                return self._flush(positions)
        except Exception as exc:
            self._metrics.state_flush_errors.inc()
            log.warning("state flush failed (%s): will retry", exc)
            return {}

    def _flush(self, positions: Callable[[], Offsets]) -> Offsets:
        taken: dict[int, dict[str, dict[str, Any]]] = {}
        records: list[tuple[bytes, bytes | None]] = []
        bases: list[tuple[int, int]] = []
        digests: dict[int, dict[bytes, str]] = {}
        marks: dict[int, tuple[int | None, int | None, bool]] = {}
        caught_up = self.caught_up()
        with self._lock:
            offsets = positions()
            for p in sorted(self.owned):
                mine = {k: v for k, v in offsets.items() if k[1] == p}
                mark = (mine.get((self._pred, p)), mine.get((self._labels, p)), caught_up)
                states = self.live.get(p)
                if states is None or mark == self._flushed.get(p) or mark[:2] == (None, None):
                    continue
                seq = self._seq.get(p, 0) + 1
                self._seq[p] = seq
                journals = {}
                for name, st in states.items():
                    journal = st.perf.join.journal
                    if journal is not None:
                        journals[name] = journal.take()
                taken[p] = journals
                base = seq % BASE_EVERY == 0
                rows = base_rows(states) if base else journals
                records.append((journal_key(p, seq), encode_journal(p, seq, rows, base)))
                if (done := self._based.pop(p, None)) is not None:
                    # A base and the state naming it were acknowledged: what came before it
                    # goes (compaction drops tombstoned keys).
                    records.extend(
                        (journal_key(p, s), None) for s in range(done - BASE_EVERY, done)
                    )
                if base:
                    bases.append((p, seq))
                encoded = encode_shard(p, states, mine, seq, self.member, caught_up)
                sent = self._pane_digests.get(p, {})
                now = encoded.digests
                # Only the panes that moved; those that slid out go as tombstones.
                records.extend((k, encoded.panes[k]) for k, d in now.items() if sent.get(k) != d)
                records.extend((k, None) for k in sent.keys() - now.keys())
                digests[p] = now
                records.append((shard_key(p), encoded.shard))
                marks[p] = mark
        if records:
            try:
                self._metrics.state_published_bytes.inc(self._topic.publish(records))
            except Exception:  # broker away: put the journals back, commit nothing new
                with self._lock:
                    for p, journals in taken.items():
                        for name, cols in journals.items():
                            journal = self.live[p][name].perf.join.journal
                            if journal is not None:
                                journal.requeue(cols)
                raise
            self._flushed.update(marks)
            self._based.update(bases)
            self._pane_digests.update(digests)
        published = {
            p for p, m in self._flushed.items() if p in self.owned and m[:2] != (None, None)
        }
        return {k: v for k, v in offsets.items() if k[1] in published}

    # -- rebalance ----------------------------------------------------------------------------
    def on_revoke(self, positions: Callable[[], Offsets]) -> Offsets:
        """Before partitions move: publish everything (the next owner starts from it)."""
        try:
            return self.flush(positions)
        finally:
            self.owned = set()
            self._set_acting(False)

    def on_assign(self, partitions: list[tuple[str, int]]) -> Offsets:
        """After an assignment (consume thread): take each partition over from the topic;
        returns where to resume each input partition (absent: no state, replay)."""
        self.catch_up()
        owned = {p for t, p in partitions if t in (self._pred, self._labels)}
        resume: Offsets = {}
        with self._lock:
            for p in list(self.live):
                if p not in owned:  # memory follows what is owned now, not what ever was
                    del self.live[p]
                    self._flushed.pop(p, None)
                    self._pane_digests.pop(p, None)
            for p in sorted(owned):
                seen = self._seen.get(p)
                if seen is not None:
                    try:
                        resume.update(self._take_over(p, seen).offsets)
                        continue
                    except (CheckpointError, ValueError) as exc:  # the record is input
                        log.error("partition %d: state record unusable (%s): replayed", p, exc)
                # Nothing published (or unusable): whatever this replica held of it unpublished
                # would be counted again by the replay, so it starts afresh.
                self.live[p] = self._fresh()
                self._seq.pop(p, None)
            self.owned = owned
        log.info("group: own partitions %s", sorted(owned) or "none")
        self._set_acting(0 in owned)
        return resume

    def _take_over(self, p: int, seen: _Seen) -> Shard:
        """Partition ``p`` rebuilt from its latest state record and the journals it names."""
        head_seq, panes = listed(seen.raw)
        widths = {n: t.perf.join.proba_width for n, t in self._templates.items()}
        latest: dict[int, bytes] = {}
        # A pane record written after the state record (a flush cut short) is newer than the
        # state: the version whose digest the state lists is the one that fits its offsets.
        versions: dict[tuple[bytes, str], bytes] = {}
        for key, value, _ in self._topic.scan(seen.offset):
            kind, part, seq = parse_key(key)
            if key in panes and value is not None and _digest_or_none(value) == panes[key]:
                versions[key, panes[key]] = value
            if kind == "J" and part == p and seq <= head_seq:
                if value is None:  # a tombstone: replaced by a base
                    latest.pop(seq, None)
                else:
                    latest[seq] = value  # a later write of one seq replaces an earlier one
        bases = [s for s in latest if is_base(latest[s])]
        start = max(bases, default=0)
        journals = [decode_journal(latest[s], widths) for s in sorted(latest) if s >= start]
        shard = decode_shard(
            seen.raw, self._templates, journals, lambda key, d: versions.get((key, d))
        )
        for st in shard.states.values():
            st.perf.join.journal = JoinJournal(st.perf.join.proba_width)
        self.live[p] = shard.states
        self._seq[p] = shard.seq
        self._pane_digests[p] = panes
        offsets = shard.offsets
        self._flushed[p] = (offsets.get((self._pred, p)), offsets.get((self._labels, p)), False)
        log.info(
            "group: partition %d taken over from %s (journal %d, %d records)",
            p,
            shard.owner,
            shard.seq,
            len(journals),
        )
        return shard

    def _pane_lookup(self) -> PaneLookup:
        """The latest pane records read (a newer pane than its state record is harmless for an
        evaluation: at most one flush ahead)."""
        return lambda key, _d: self._panes.get(key)

    def _set_acting(self, acting: bool) -> None:
        if acting and not self.acting:
            with self._read_lock:
                policy = self._policy
            log.info("group: this replica acts now (owns partition 0)")
            self.on_acting(policy)
        self.acting = acting

    # -- the policy ---------------------------------------------------------------------------
    def publish_policy(self, raw: bytes) -> None:
        self._metrics.state_published_bytes.inc(self._topic.publish([(POLICY_KEY, raw)]))

    # -- evaluation thread ------------------------------------------------------------------
    def global_states(self) -> list[ModelState]:
        """Every model's state over all partitions: owned ones live, the others as last read.
        Call under the ingest lock."""
        with self._read_lock:
            seen = dict(self._seen)
        shards: dict[str, list[ModelState]] = {name: [] for name in self._templates}
        caught_up = True
        for p, states in self.live.items():
            if p in self.owned:
                for name, st in states.items():
                    shards[name].append(st)
        for p, s in seen.items():
            if p in self.owned:
                continue
            if s.decoded is None:
                try:
                    s.decoded = decode_shard(s.raw, self._templates, lookup=self._pane_lookup())
                except Exception as exc:  # a record is input: one bad one costs its partition
                    log.error("state record of partition %d unusable: %s", p, exc)
                    continue
            for name, st in s.decoded.states.items():
                shards[name].append(st)
            caught_up &= s.decoded.caught_up
        self.others_caught_up = caught_up
        return [
            merge_states(t.cfg, t.reference, shards[name]) for name, t in self._templates.items()
        ]

    def close(self) -> None:
        self._topic.close()


def _digest_or_none(value: bytes) -> str | None:
    try:
        return digest(value)
    except (CheckpointError, ValueError):  # a malformed record is no candidate
        return None
