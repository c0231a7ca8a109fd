"""The fault suite's rig: one real daemon process (restartable), its config, the topics it
reads and the feeds writing them, judged against :mod:`tests.support.fault_oracle`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.devkit.broker import free_port
from monitor.reference.profile import ReferenceProfile
from monitor.settings import Settings
from tests.support.fault_oracle import (
    MODEL,
    Verdict,
    expected_counts,
    expected_snapshot,
    independent_statistics,
    judge,
    save_reference,
    traffic,
)
from tests.support.fault_tools import (
    CommittedOffsets,
    Daemon,
    Feed,
    Produced,
    daemon_config,
    wait_for,
    write_config,
)
from tests.support.helpers import Topics

SEED = 20261127
RATE = 150.0  # records per second while a feed runs
CHECKPOINT = "checkpoint.mmc"


@dataclass
class Rig:
    """One daemon (restartable), its config and the topics it reads."""

    bootstrap: str
    topics: Topics
    group: str
    settings: Settings
    reference: ReferenceProfile
    daemon: Daemon
    state_dir: Path
    feeds: list[Feed] = field(default_factory=list)

    def feed(self, rate: float = RATE, poison_every: int = 0) -> Feed:
        stream = traffic(self.topics.predictions, self.topics.labels, SEED, poison_every)
        f = Feed(self.bootstrap, stream, rate)
        self.feeds.append(f)
        return f

    def committed(self, ends: dict[tuple[str, int], int], timeout: float = 60) -> None:
        """Wait until the group has committed ``ends`` (the daemon checkpointed every record)."""
        reader = CommittedOffsets(self.bootstrap, self.group)
        try:
            wait_for(lambda: reader(list(ends)) == ends, timeout, "every record committed", 0.5)
        finally:
            reader.close()

    def settle(self, produced: Produced) -> Verdict:
        """Wait until the daemon has committed every record, then judge a fresh snapshot."""
        self.committed(produced.ends)
        snapshot = self.daemon.status_after(time.time())
        return judge(
            snapshot,
            expected_snapshot(self.settings, self.reference, produced.records),
            expected_counts(self.settings, produced.records),
            independent_statistics(self.settings, self.reference, produced.records),
        )

    def cleanup(self) -> None:
        for f in self.feeds:
            f.close()
        self.daemon.cleanup()


def make_rig(bootstrap: str, topics: Topics, tmp_path: Path, **extra: Any) -> Rig:
    reference = save_reference(tmp_path / "churn.json")
    port = free_port()
    group = f"faults-{uuid.uuid4().hex[:8]}"
    state_dir = tmp_path / "state"
    data = daemon_config(
        bootstrap=bootstrap,
        group=group,
        topics=(topics.predictions, topics.labels, topics.dlq),
        port=port,
        state_dir=state_dir,
        reference=tmp_path / "churn.json",
        **extra,
    )
    config = tmp_path / "modelmon.yaml"
    settings = write_config(config, data)
    daemon = Daemon(config, port, tmp_path / "logs")
    return Rig(bootstrap, topics, group, settings, reference, daemon, state_dir)


def assert_exact(verdict: Verdict) -> None:
    assert not verdict.mismatches, "\n".join(verdict.mismatches)


def nothing_counted_twice(daemon: Daemon) -> None:
    """This run saw no record twice (a replay over state that holds it shows up here)."""
    m = daemon.metrics()
    for stream in ("predictions", "labels"):
        key = (("model", MODEL), ("stream", stream))
        assert not m.get(("modelmon_duplicate_events_total", key)), f"duplicate {stream}"
        assert not m.get(("modelmon_late_events_total", key)), f"late {stream}"
