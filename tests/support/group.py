"""Group mode (issue 15) under test: N real ``modelmon run`` processes in one consumer group
over co-partitioned topics, and the oracle of what the group as a whole must report.

- :func:`create_co_partitioned_topics`: predictions and labels with the same partition count
  (6), plus a dead-letter topic, under fresh names.
- :func:`partition_of`: where a record goes, ``crc32(key) % 6`` for both topics; the stream of
  :func:`~tests.support.fault_oracle.traffic` keys a label by its prediction's id, so a label
  lands on the partition number of its prediction. :class:`LabelGate` holds labels back and
  lets them go later (labels produced after a replica died, for predictions produced before).
- :class:`Group`: the replicas (each a :class:`~tests.support.fault_tools.Daemon` with its own
  config, state directory and HTTP port, one ``kafka.group_id``), a co-partitioned
  :class:`~tests.support.fault_tools.Feed`, the acting replica (``modelmon_acting``), and
  :meth:`Group.settle`, which waits until the acting replica's figures equal the oracle.

The oracle is the fault suite's (:mod:`tests.support.fault_oracle`): window counts by pane
arithmetic on the produced JSON, statistics by a fresh in-process model state fed the same
events (to 1e-9), and again from the raw samples (:func:`independent_statistics`). Because the
model allows more lateness than any stream here spans, the final global windows depend only on
which records were counted, never on how the partitions were split or interleaved. On
``/metrics`` the acting replica must show what the daemon's own collector makes of the oracle's
snapshot (:func:`oracle_metrics`).
"""

from __future__ import annotations

import math
import shutil
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from monitor.devkit.broker import create_topics, free_port
from monitor.reference.profile import ReferenceProfile
from monitor.serve.collector import SnapshotCollector
from monitor.settings import Settings
from monitor.snapshot import Snapshot
from tests.support.fault_oracle import (
    MODEL,
    RawStats,
    Record,
    Verdict,
    WindowCount,
    expected_counts,
    expected_snapshot,
    independent_statistics,
    judge,
    model_config,
    save_reference,
    traffic,
)
from tests.support.fault_tools import Daemon, Feed, Produced, daemon_config, write_config
from tests.support.helpers import Topics
from tests.support.metrics import Metrics, metric_samples, parse_metrics

PARTITIONS = 6
SEED = 20261130
ACTING = "modelmon_acting"
#: Families of the snapshot collector that depend on the policy's state or on the clock, not
#: on the records: checked for presence (only the acting replica exports them), not value.
NOT_FROM_RECORDS = frozenset(
    {
        "modelmon_degraded",
        "modelmon_last_evaluation_timestamp_seconds",
        "modelmon_policy_breaches",
        "modelmon_reference_ready",
    }
)


def has_group_mode() -> bool:
    """True once ``monitor.settings`` knows the ``coordination`` section (issue 15)."""
    from monitor import settings

    return hasattr(settings, "CoordinationSettings") or "coordination" in getattr(
        settings.Settings, "model_fields", {}
    )


def create_co_partitioned_topics(bootstrap: str, partitions: int = PARTITIONS) -> Topics:
    """Fresh predictions and labels topics of ``partitions`` each, and a 1-partition DLQ."""
    tag = uuid.uuid4().hex[:8]
    t = Topics(f"predictions-{tag}", f"labels-{tag}", f"dlq-{tag}")
    create_topics(bootstrap, {t.predictions: partitions, t.labels: partitions, t.dlq: 1})
    return t


def partition_of(rec: Record, partitions: int = PARTITIONS) -> int:
    """``crc32(key) % partitions``: a label (keyed by its prediction's id) lands on the
    partition number of its prediction, whichever topic."""
    return zlib.crc32(rec.key or b"") % partitions


class LabelGate:
    """A stream that, while closed, keeps its label records aside (predictions still flow);
    once opened again it yields the held labels first, in order, then the stream.

    Thread-safe: the feed's thread iterates while the test opens and closes it.
    """

    def __init__(self, stream: Iterator[Record], labels_topic: str) -> None:
        self._stream = stream
        self._labels_topic = labels_topic
        self._lock = threading.Lock()
        self._closed = False
        self._held: list[Record] = []
        self.released: list[Record] = []  # every label that was held, once let go

    def __iter__(self) -> LabelGate:
        return self

    def __next__(self) -> Record:
        with self._lock:
            if not self._closed and self._held:
                rec = self._held.pop(0)
                self.released.append(rec)
                return rec
            while True:
                rec = next(self._stream)
                if self._closed and rec.topic == self._labels_topic:
                    self._held.append(rec)
                    continue
                return rec

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def open(self) -> None:
        with self._lock:
            self._closed = False

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)


def statistic_families(snapshot: Snapshot) -> frozenset[str]:
    """The names of every family the daemon's collector builds from a snapshot."""
    return frozenset(fam.name for fam in SnapshotCollector(lambda: snapshot).collect())


def oracle_metrics(snapshot: Snapshot) -> Metrics:
    """What ``/metrics`` must show for ``snapshot``: the collector's samples, without the
    families that do not follow from the records (:data:`NOT_FROM_RECORDS`)."""
    families = SnapshotCollector(lambda: snapshot).collect()
    return metric_samples(fam for fam in families if fam.name not in NOT_FROM_RECORDS)


def metrics_mismatches(got: Metrics, want: Metrics, families: frozenset[str]) -> list[str]:
    """``got``'s samples of the statistic families against ``want``: the same series, window
    counts equal, every other value to within 1e-9 (NaN only against NaN)."""
    scope = families - NOT_FROM_RECORDS
    mine = {k: v for k, v in got.items() if k[0] in scope}
    out = [f"missing {k}" for k in sorted(want.keys() - mine.keys())]
    out += [f"unexpected {k}" for k in sorted(mine.keys() - want.keys())]
    for key in sorted(want.keys() & mine.keys()):
        a, b = mine[key], want[key]
        if key[0] in ("modelmon_window_predictions", "modelmon_window_labels"):
            same = a == b
        elif math.isnan(a) or math.isnan(b):
            same = math.isnan(a) and math.isnan(b)
        else:
            same = abs(a - b) <= 1e-9
        if not same:
            out.append(f"{key}: {a} != {b}")
    return out


@dataclass
class Oracle:
    """Everything the group must report after consuming ``records``."""

    records: list[Record]
    snapshot: Snapshot
    counts: dict[str, WindowCount]
    raw: dict[str, RawStats]
    metrics: Metrics
    families: frozenset[str]

    @classmethod
    def of(cls, settings: Settings, reference: ReferenceProfile, records: list[Record]) -> Oracle:
        snapshot = expected_snapshot(settings, reference, records)
        return cls(
            records,
            snapshot,
            expected_counts(settings, records),
            independent_statistics(settings, reference, records),
            oracle_metrics(snapshot),
            statistic_families(snapshot),
        )


@dataclass
class Replica:
    """One ``modelmon run`` of the group: its daemon (restartable) and state directory."""

    name: str
    daemon: Daemon
    state_dir: Path

    def scrape(self) -> Metrics:
        """``/metrics``, or nothing when it does not answer."""
        reply = self.daemon.get("/metrics", timeout=3.0)
        if reply is None or reply[0] != 200:
            return {}
        return parse_metrics(reply[1].decode())

    def status(self) -> dict[str, Any] | None:
        """The latest snapshot of ``/api/v1/status`` (None before the first)."""
        reply = self.daemon.get("/api/v1/status", timeout=3.0)
        if reply is None or reply[0] != 200:
            return None
        snap: dict[str, Any] | None = orjson.loads(reply[1])["snapshot"]
        return snap

    def kill_and_wipe(self) -> None:
        """``kill -9``, then the disk goes with the pod: an empty state directory."""
        self.daemon.kill()
        shutil.rmtree(self.state_dir)
        self.state_dir.mkdir()


@dataclass
class Settled:
    """The acting replica once the group's figures equal the oracle, or the last try."""

    acting: Replica | None
    verdict: Verdict | None
    mismatches: list[str]
    took: float
    families: frozenset[str]  # the model statistic families (the snapshot collector's)
    scrapes: dict[str, Metrics] = field(default_factory=dict)

    def assert_exact(self) -> None:
        assert self.acting is not None and not self.mismatches, "\n".join(self.mismatches[:40])


class Group:
    """Replicas of ``modelmon run`` sharing one ``kafka.group_id`` over co-partitioned topics.

    With ``coordination=False`` the replicas run without the ``coordination`` section (as
    modelmon does before issue 15): then there must be one replica, and it is the one judged.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        base: Path,
        *,
        coordination: bool = True,
        flush_interval: str = "1s",
        model: Mapping[str, Any] | None = None,
        models: Sequence[Mapping[str, Any]] | None = None,
        client: str = "kafka-python",
    ) -> None:
        self.bootstrap = bootstrap
        self.client = client
        self.topics = topics
        self.base = base
        self.coordination = coordination
        self.flush_interval = flush_interval
        self.group_id = f"group-{uuid.uuid4().hex[:8]}"
        ref_path = base / "churn.json"
        self.reference = save_reference(ref_path)
        self.model = dict(model) if model is not None else model_config(ref_path)
        #: Every model the replicas watch: ``models`` if given (the oracle knows only
        #: ``model``; such a group is judged by other means), else ``model``.
        self.models = [dict(m) for m in models] if models is not None else [self.model]
        self.replicas: list[Replica] = []
        self.feeds: list[Feed] = []
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The settings of the first replica (all replicas share them but port and state)."""
        assert self._settings is not None, "no replica yet"
        return self._settings

    def config(self, port: int, state_dir: Path) -> dict[str, Any]:
        extra: dict[str, Any] = {"kafka": {"client": self.client}, "models": self.models}
        if self.coordination:
            extra["coordination"] = {"enabled": True, "flush_interval": self.flush_interval}
        return daemon_config(
            bootstrap=self.bootstrap,
            group=self.group_id,
            topics=(self.topics.predictions, self.topics.labels, self.topics.dlq),
            port=port,
            state_dir=state_dir,
            reference=self.base / "churn.json",
            **extra,
        )

    def add(self) -> Replica:
        """A new replica (not started): its own directory, config, state and port."""
        name = f"replica-{len(self.replicas)}"
        home = self.base / name
        home.mkdir()
        port = free_port()
        state_dir = home / "state"
        state_dir.mkdir()
        settings = write_config(home / "modelmon.yaml", self.config(port, state_dir))
        if self._settings is None:
            self._settings = settings
        replica = Replica(name, Daemon(home / "modelmon.yaml", port, home / "logs"), state_dir)
        self.replicas.append(replica)
        return replica

    def start(self, n: int, ready_timeout: float = 60.0) -> list[Replica]:
        """Start ``n`` new replicas at once and wait until each answers ``/readyz`` 200."""
        started = [self.add().daemon.start() for _ in range(n)]
        for daemon in started:
            daemon.wait_ready(ready_timeout)
        return self.replicas[-n:]

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.daemon.alive()]

    def feed(self, rate: float = 150.0, gate: bool = False) -> tuple[Feed, LabelGate | None]:
        """A co-partitioned feed of :func:`traffic` (and its label gate, if asked for)."""
        stream: Iterator[Record] = traffic(self.topics.predictions, self.topics.labels, SEED)
        label_gate = LabelGate(stream, self.topics.labels) if gate else None
        f = Feed(self.bootstrap, label_gate or stream, rate, partitioner=partition_of)
        self.feeds.append(f)
        return f, label_gate

    def scrape(self) -> dict[str, Metrics]:
        return {r.name: r.scrape() for r in self.live()}

    def acting_values(self) -> dict[str, float | None]:
        """``modelmon_acting`` of every live replica (None: not exported or no answer)."""
        return {name: m.get((ACTING, ())) for name, m in self.scrape().items()}

    def acting(self, timeout: float = 60.0) -> Replica:
        """The one live replica with ``modelmon_acting`` 1, once every other one shows 0.

        Without coordination, the only live replica.
        """
        live = self.live()
        if not self.coordination:
            assert len(live) == 1, "without coordination, a group of one"
            return live[0]
        deadline = time.monotonic() + timeout
        values: dict[str, float | None] = {}
        while time.monotonic() < deadline:
            values = self.acting_values()
            ones = [name for name, v in values.items() if v == 1]
            if len(ones) == 1 and all(v == 0 for n, v in values.items() if n != ones[0]):
                return next(r for r in self.live() if r.name == ones[0])
            time.sleep(0.25)
        raise AssertionError(f"not exactly one acting replica after {timeout:.0f}s: {values}")

    def check(self, acting: Replica, oracle: Oracle) -> tuple[Verdict | None, list[str]]:
        """The acting replica against the oracle: a fresh snapshot of ``/api/v1/status``
        (:func:`judge`: counts equal, statistics to 1e-9 and against the raw samples) and its
        ``/metrics`` (:func:`metrics_mismatches`)."""
        wall = time.time()
        try:
            snap = acting.daemon.status_after(wall, timeout=10)
        except AssertionError as exc:
            return None, [f"{acting.name}: {exc}"]
        if not any(m.get("model") == MODEL for m in snap.get("models", [])):
            return None, [f"{acting.name}: no model {MODEL} in its snapshot"]
        verdict = judge(snap, oracle.snapshot, oracle.counts, oracle.raw)
        problems = [f"status {m}" for m in verdict.mismatches]
        problems += [
            f"metrics {m}"
            for m in metrics_mismatches(acting.scrape(), oracle.metrics, oracle.families)
        ]
        return verdict, problems

    def settle(self, produced: Produced, timeout: float = 90.0) -> Settled:
        """Wait until the acting replica's figures equal the oracle of ``produced`` on two
        fresh evaluations in a row (the group settled); then the scrape of every live replica.

        On timeout, the last mismatches (the test asserts on them).
        """
        oracle = Oracle.of(self.settings, self.reference, produced.records)
        started = time.monotonic()
        deadline = started + timeout
        acting: Replica | None = None
        verdict: Verdict | None = None
        problems: list[str] = ["never judged"]
        streak = 0
        while time.monotonic() < deadline and streak < 2:
            try:
                acting = self.acting(timeout=max(1.0, deadline - time.monotonic()))
            except AssertionError as exc:
                acting, problems = None, [str(exc)]
                break
            verdict, problems = self.check(acting, oracle)
            streak = streak + 1 if not problems else 0
        took = time.monotonic() - started
        if streak < 2 and not problems:
            problems = ["the figures did not stay equal to the oracle"]
        return Settled(acting, verdict, problems, took, oracle.families, self.scrape())

    def cleanup(self) -> None:
        for f in self.feeds:
            f.close()
        for r in self.replicas:
            r.daemon.cleanup()
