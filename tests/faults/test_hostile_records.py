"""Hostile records (issue 10): single records that used to crash, stall or blind the daemon,
interleaved with valid traffic into a real ``modelmon run`` process on the real broker.

Each class, as an attacker (or a buggy producer) would send it:

- JSON nested 1,000 levels deep in ``timestamp``, ``version`` or ``prediction`` (``str()`` of it
  raised ``RecursionError``: a crash, and the same crash on every restart);
- an unknown feature nested 600 levels deep while a model bootstraps its reference (the
  checkpoint could not serialise its buffer);
- an invalid value of 1 MiB minus 4 KiB, which a default producer accepts but whose
  dead-letter copy (value plus headers) a default producer refuses (``MessageSizeTooLargeError``,
  retried forever);
- an event dated 4.0e9 (2096), which moved the watermark and made every later event late;
- an empty ``id``, which was a duplicate of every other empty id.

One daemon consumes them all, is restarted with SIGTERM, consumes as many again, and is killed
(``kill -9``) right after a third burst, so that the next process reads hostile records again.
After each phase: the same process, ``/healthz`` 200, every valid record counted in its window
(exactly: the oracle of :mod:`tests.support.fault_oracle` over the valid records produced),
every hostile record in the dead-letter topic with its reason (exactly once, but at least once
for records read again after the kill; the unknown feature: in its counter), and the group's
committed offsets at the end of every partition.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.devkit.broker import EmbeddedBroker
from monitor.persistence.checkpoint import read_checkpoint
from tests.support.fault_oracle import (
    MODEL,
    T0,
    Record,
    expected_counts,
    expected_snapshot,
    judge,
    model_config,
    traffic,
)
from tests.support.fault_rig import (
    CHECKPOINT,
    SEED,
    Rig,
    assert_exact,
    make_rig,
    nothing_counted_twice,
)
from tests.support.fault_tools import Daemon, Feed, read_topic
from tests.support.helpers import Topics

pytestmark = pytest.mark.faults

BOOT = "boot"  # a second model, still bootstrapping its reference for the whole test
BIG = 2**20 - 4096  # under a default producer's 1 MiB request limit, with its key
MAX_BYTES = 900_000  # kafka.dead_letter_max_bytes, the default
HOSTILE_EVERY = 97  # valid records between two hostile ones
BOOT_EVERY = 50  # valid records between two records of the bootstrapping model


def nested(depth: int, leaf: bytes = b"1", obj: bool = False) -> bytes:
    """JSON nested ``depth`` levels (orjson refuses to write more than 254, so by hand)."""
    if obj:
        return b'{"a":' * depth + leaf + b"}" * depth
    return b"[" * depth + leaf + b"]" * depth


def _event(**fields: Any) -> bytes:
    """A valid churn prediction's JSON with ``fields`` spliced in as raw JSON bytes."""
    base = {
        "model": MODEL,
        "timestamp": T0,
        "features": {"x": 0.1, "c": "a"},
        "prediction": 1,
        "score": 0.7,
    }
    body = orjson.dumps({k: v for k, v in base.items() if k not in fields})[1:-1]
    extra = b",".join(orjson.dumps(k) + b":" + v for k, v in fields.items())
    return b"{" + body + b"," + extra + b"}"


#: (stream, reason, value given the hostile record's id): every class, cycled through.
HOSTILE: tuple[tuple[str, str, Any], ...] = (
    ("predictions", "bad_timestamp", lambda i: _event(id=i, timestamp=nested(1000))),
    ("predictions", "wrong_type", lambda i: _event(id=i, version=nested(1000, b'"v"', True))),
    ("predictions", "wrong_type", lambda i: _event(id=i, prediction=nested(1000))),
    ("predictions", "future_timestamp", lambda i: _event(id=i, timestamp=b"4.0e9")),
    ("predictions", "missing_id", lambda i: _event(id=b'""')),
    ("labels", "bad_timestamp", lambda i: _label(i, timestamp=nested(1000, obj=True))),
    ("labels", "future_timestamp", lambda i: _label(i, timestamp=b"4.0e9")),
    ("labels", "missing_id", lambda i: _label(b'""')),
    ("predictions", "invalid_json", lambda i: b"{" + b"x" * BIG),
)


def _label(ident: bytes, timestamp: bytes = str(T0 + 1).encode()) -> bytes:
    return b'{"id":' + ident + b',"model":"churn","label":1,"timestamp":' + timestamp + b"}"


@dataclass
class Stream:
    """Valid churn traffic with hostile records and bootstrapping-model records interleaved.

    Every record it yields is kept, with the reason a hostile one must be dead-lettered with
    (by key: hostile keys are unique).
    """

    topics: Topics
    produced: list[Record] = field(default_factory=list)
    reasons: dict[bytes, tuple[str, str]] = field(default_factory=dict)  # key → stream, reason
    deep_features: int = 0

    def __iter__(self) -> Iterator[Record]:
        topic = {"predictions": self.topics.predictions, "labels": self.topics.labels}
        valid = traffic(self.topics.predictions, self.topics.labels, SEED)
        hostile = itertools.cycle(HOSTILE)
        for n in itertools.count(1):
            rec = next(valid)
            if n % HOSTILE_EVERY == 0:
                stream, reason, make = next(hostile)
                key = f"h-{n}-{reason}".encode()
                self.reasons[key] = (stream, reason)
                rec = Record(topic[stream], key, make(orjson.dumps(key.decode())))
            elif n % BOOT_EVERY == 0:
                rec = self._boot(n)
            self.produced.append(rec)
            yield rec

    def _boot(self, n: int) -> Record:
        """A valid prediction of the bootstrapping model; every other one with a deep feature
        the config does not name (counted as an unknown feature, never stored)."""
        deep = n % (2 * BOOT_EVERY) == 0
        self.deep_features += deep
        features = b'{"x":' + str(n / 10).encode() + (b',"deep":' + nested(600) if deep else b"")
        value = (
            b'{"id":"boot-' + str(n).encode() + b'","model":"boot","timestamp":'
            + str(T0 + n * 0.05).encode()
            + b',"features":' + features + b'},"prediction":1,"score":0.5}'
        )  # fmt: skip
        return Record(self.topics.predictions, f"boot-{n}".encode(), value)

    def valid_churn(self) -> list[Record]:
        return [r for r in self.produced if not r.key or not r.key.startswith((b"h-", b"boot-"))]

    def boot_records(self) -> int:
        return sum(1 for r in self.produced if r.key and r.key.startswith(b"boot-"))


@pytest.fixture
def hostile_rig(broker: EmbeddedBroker, topics: Topics, tmp_path: Path) -> Iterator[Rig]:
    from tests.support.fault_oracle import save_reference

    save_reference(tmp_path / "churn.json")
    boot = {
        "name": BOOT,
        "reference": {"bootstrap_events": 1000},
        "features": {"x": "numeric"},
        "policy": {"min_samples": 50},
    }
    r = make_rig(
        broker.bootstrap, topics, tmp_path, models=[model_config(tmp_path / "churn.json"), boot]
    )
    yield r
    r.cleanup()


def check_phase(
    rig: Rig, stream: Stream, feed: Feed, pid: int, earlier: set[bytes], replayed: bool = False
) -> None:
    """Everything the suite promises after a phase; ``earlier``: the hostile records an earlier
    process read and committed (this one must not read them again). ``replayed``: the process
    before this one was killed during the phase, so this phase's records after its last
    checkpoint were read twice: their dead letters are written at least once, not exactly."""
    daemon = rig.daemon
    valid = stream.valid_churn()
    rig.committed(feed.ends())  # offsets past every hostile record
    assert (daemon.pid, daemon.alive()) == (pid, True), daemon.log()[-3000:]
    health = daemon.get("/healthz")
    assert health is not None and health[0] == 200, health
    snapshot = daemon.status_after(time.time())
    assert_exact(
        judge(
            snapshot,
            expected_snapshot(rig.settings, rig.reference, valid),
            expected_counts(rig.settings, valid),
        )
    )

    hostile = stream.reasons
    dead = read_topic(rig.bootstrap, rig.topics.dlq, len(hostile))
    got = Counter(r.key for r in dead)
    assert set(got) == set(hostile), "every hostile record dead-lettered"
    once = earlier if replayed else set(hostile)
    assert {k: n for k, n in got.items() if k in once} == dict.fromkeys(once, 1), "exactly once"
    for r in dead:
        headers = dict(r.headers)
        assert headers["modelmon-reason"] == hostile[r.key][1].encode(), r.key
        assert len(headers["modelmon-detail"]) <= 500
        if hostile[r.key][1] == "invalid_json":  # the oversized one, truncated
            assert len(r.value) + len(r.key) < MAX_BYTES
            assert r.value == (b"{" + b"x" * BIG)[: len(r.value)]
            assert (headers["modelmon-truncated"], headers["modelmon-original-size"]) == (
                b"1",
                str(BIG + 1).encode(),
            )
        else:
            assert "modelmon-truncated" not in headers

    # This process's counters: exactly the hostile records it read (none re-read after the
    # restart, as their offsets were committed).
    m = daemon.metrics()
    mine = Counter(v for k, v in hostile.items() if k not in earlier)
    assert mine, "this phase had hostile records"
    for (stream_name, reason), n in mine.items():
        labels = (("reason", reason), ("stream", stream_name))
        read = m.get(("modelmon_invalid_events_total", labels), 0.0)
        assert read <= n if replayed else read == n, (stream_name, reason, read, n)
    invalid = sum(v for (name, _), v in m.items() if name == "modelmon_invalid_events_total")
    assert invalid <= sum(mine.values()) if replayed else invalid == sum(mine.values())
    assert m[("modelmon_dead_letter_records_total", ())] == invalid
    assert m.get(("modelmon_checkpoint_errors_total", ()), 0.0) == 0.0
    assert not any(name == "modelmon_dead_letter_dropped_records_total" for name, _ in m)


@pytest.mark.integration
@pytest.mark.slow
def test_hostile_records_cost_one_dead_letter_each_never_the_daemon(hostile_rig: Rig) -> None:
    rig = hostile_rig
    stream = Stream(rig.topics)
    records = iter(stream)
    feed = Feed(rig.bootstrap, records, rate=1.0)
    rig.feeds.append(feed)
    daemon: Daemon = rig.daemon.start()
    daemon.wait_ready()

    feed.produce_now(2000)
    check_phase(rig, stream, feed, daemon.pid, earlier=set())
    deep_1 = stream.deep_features
    assert daemon.value("modelmon_unknown_features_total", model=BOOT) == deep_1
    # The bootstrapping model's buffer was checkpointed, with the configured features only.
    buffered = read_checkpoint(rig.state_dir / CHECKPOINT).meta["models"][BOOT]["bootstrap"]
    assert len(buffered) == stream.boot_records()
    assert {k for _, p in buffered for k in p["features"]} == {"x"}

    phase_1 = dict(stream.reasons)
    assert daemon.terminate()[0] == 0
    daemon.start()
    daemon.wait_ready()
    assert "restored checkpoint" in daemon.log()
    feed.produce_now(1500)
    check_phase(rig, stream, feed, daemon.pid, earlier=set(phase_1))
    assert daemon.value("modelmon_unknown_features_total", model=BOOT) == (
        stream.deep_features - deep_1
    )
    buffered = read_checkpoint(rig.state_dir / CHECKPOINT).meta["models"][BOOT]["bootstrap"]
    assert len(buffered) == stream.boot_records()

    # kill -9 right after a burst: the next process reads again what the last checkpoint did not
    # cover, hostile records included (the crash loop of the issue), and counts nothing twice.
    phase_2 = dict(stream.reasons)
    feed.produce_now(1000)
    daemon.kill()
    daemon.start()
    daemon.wait_ready()
    check_phase(rig, stream, feed, daemon.pid, earlier=set(phase_2), replayed=True)
    nothing_counted_twice(daemon)
    reread = sum(
        v for (name, _), v in daemon.metrics().items() if name == "modelmon_invalid_events_total"
    )
    print(
        f"\n[hostile] {len(stream.reasons)} hostile records in 4500; after kill -9 the next "
        f"process read {reread:.0f} of the last burst's {len(stream.reasons) - len(phase_2)} again"
    )

    produced = feed.finish()
    assert len(produced.records) == 4500
    assert daemon.terminate()[0] == 0
