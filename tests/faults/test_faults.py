"""Fault injection (issue 5): the real daemon process against the real broker, hurt on purpose.

Every test judges the daemon's final snapshot (``/api/v1/status``) against an oracle computed
from the records that were produced (:mod:`fault_oracle`): window counts by pane arithmetic on
the produced JSON, and every statistic (PSI, KS, chi-square, accuracy, log loss, …) by
evaluating a fresh in-process ``ModelState`` fed the same events in produced order. Counts must
be equal, statistics equal to within 1e-9. (An uninterrupted daemon run as the reference would
share the daemon's ingest path, and its bugs, and cost another run; the in-process state
shares only the window and statistics code the unit tests cover.) The model allows more
lateness than any stream here spans, so no event is ever late and the final windows depend on
which records were counted, not on the order partitions were consumed in.

A run is over when the group's committed offsets reach the end of every partition written
(commits follow checkpoints, so the checkpointed state then covers every record); the snapshot
judged is one evaluated after that. A record replayed into a state that already holds it is
dropped by the join as a duplicate id, so "nothing counted twice" is also checked on the
duplicate counters of every run just before it is stopped.
"""

from __future__ import annotations

import os
import random
import re
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from monitor.devkit.broker import EmbeddedBroker, free_port
from monitor.persistence.checkpoint import MAGIC, read_checkpoint
from tests.support.bad_config import HOOK_SECRET, PASSWORD, assert_good_message, base_config
from tests.support.fault_oracle import (
    MODEL,
    POISON,
    Verdict,
)
from tests.support.fault_rig import (
    CHECKPOINT,
    RATE,
    SEED,
    Rig,
    assert_exact,
    make_rig,
    nothing_counted_twice,
)
from tests.support.fault_tools import (
    TcpProxy,
    close_leaked_sockets,
    read_topic,
    wait_for,
    write_config,
)
from tests.support.helpers import CLIENTS, Topics, fresh_topics

pytestmark = pytest.mark.faults

OUTAGE = 30.0  # seconds the broker is unreachable in the outage test


@pytest.fixture
def rig(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Rig]:
    """The daemon on kafka-python, or on the client a test parametrizes it with."""
    client = getattr(request, "param", "kafka-python")
    r = make_rig(broker.bootstrap, topics, tmp_path, kafka={"client": client})
    yield r
    r.cleanup()


def figures(what: str, verdict: Verdict, **extra: str) -> None:
    """The figures the issue asks for, printed (pytest -s) for the closing report."""
    parts = [f"{k} {v}" for k, v in extra.items()]
    parts += [
        f"window 15m expected {verdict.expected['15m']} got {verdict.got['15m']}",
        f"lost {verdict.lost('15m')}",
        f"duplicated {verdict.duplicated('15m')}",
    ]
    print(f"\n[faults] {what}: " + "; ".join(parts))


# -- 1. kill -9 ---------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("rig", CLIENTS, indirect=True)
def test_kill_9_three_times_mid_stream_loses_and_double_counts_nothing(rig: Rig) -> None:
    rng = random.Random(SEED)
    feed = rig.feed().start()
    daemon = rig.daemon.start()
    first = daemon.wait_ready()
    recoveries = []
    for _ in range(3):
        time.sleep(rng.uniform(1.5, 3.0))
        assert feed.running, "records must still be arriving"
        nothing_counted_twice(daemon)
        daemon.kill()
        daemon.start()
        recoveries.append(daemon.wait_ready())
        assert "restored checkpoint" in daemon.log()
    time.sleep(1.0)
    verdict = rig.settle(feed.finish())
    nothing_counted_twice(daemon)
    figures(
        "kill -9 x3",
        verdict,
        first_ready=f"{first:.1f}s",
        recovery=", ".join(f"{r:.1f}s" for r in recoveries),
    )
    assert_exact(verdict)
    assert daemon.terminate()[0] == 0


# -- 2. and 3. no checkpoint, a corrupt one -----------------------------------------------------


def restart_mid_stream(rig: Rig, damage: Callable[[Path], None]) -> Verdict:
    """Stop cleanly mid-stream, ``damage`` the checkpoint, restart while records keep coming.

    The group's committed offsets are at the stop; a daemon that trusted them instead of
    replaying would lose the windows' first part.
    """
    feed = rig.feed().start()
    daemon = rig.daemon.start()
    daemon.wait_ready()
    time.sleep(2.0)
    code, _ = daemon.terminate()
    assert code == 0
    damage(rig.state_dir / CHECKPOINT)
    daemon.start()
    daemon.wait_ready()
    assert feed.running
    replays = re.findall(r"replaying (.+) from (.+) \(no state for it\)", daemon.log())
    assert len(replays) == 6 and {start for _, start in replays} == {"offset 0"}, replays
    time.sleep(1.5)
    verdict = rig.settle(feed.finish())
    nothing_counted_twice(daemon)
    code, _ = daemon.terminate()
    assert code == 0, daemon.log()[-2000:]
    return verdict


@pytest.mark.integration
@pytest.mark.parametrize("rig", CLIENTS, indirect=True)
def test_restart_without_checkpoint_rebuilds_the_same_windows_by_replay(rig: Rig) -> None:
    verdict = restart_mid_stream(rig, Path.unlink)
    assert "no checkpoint at" in rig.daemon.log()
    figures("checkpoint deleted", verdict)
    assert_exact(verdict)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x08
    path.write_bytes(bytes(data))


def from_a_future_version(path: Path) -> None:
    data = path.read_bytes()
    (size,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    header = orjson.loads(data[start : start + size])
    header["format_version"] += 1
    new = orjson.dumps(header)
    path.write_bytes(MAGIC + struct.pack(">I", len(new)) + new + data[start + size :])


@pytest.mark.integration
@pytest.mark.parametrize(
    ("rig", "damage", "reason"),
    [
        ("kafka-python", truncate, "truncated"),
        ("kafka-python", flip_a_bit, "checksum mismatch"),
        ("kafka-python", from_a_future_version, "format version 2, this modelmon reads 1"),
        # The replay from the retention horizon (offsets-for-times) on librdkafka too.
        ("confluent", flip_a_bit, "checksum mismatch"),
    ],
    ids=["truncated", "bit-flipped", "wrong-version", "bit-flipped-confluent"],
    indirect=["rig"],
)
def test_corrupt_checkpoint_is_reported_ignored_and_replayed(
    rig: Rig, damage: Callable[[Path], None], reason: str
) -> None:
    verdict = restart_mid_stream(rig, damage)
    ignored = re.search(r"checkpoint \S+ ignored \((.*)\)", rig.daemon.log())
    assert ignored is not None and reason in ignored.group(1), rig.daemon.log()[-2000:]
    figures(f"checkpoint {reason}", verdict)
    assert_exact(verdict)


# -- 4. broker unreachable ----------------------------------------------------------------------


@pytest.mark.integration
# The test's own producer retries through the outage, and kafka-python leaks the socket of
# every refused connection (see close_leaked_sockets): those found by the garbage collector
# during the test are ignored, the others closed at its end.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("client", CLIENTS)
def test_broker_unreachable_for_30s_mid_stream(tmp_path: Path, client: str) -> None:
    """A broker of its own behind a proxy that owns the advertised address, so that every
    connection (bootstrap, partition leader, coordinator) crosses the proxy; the daemon on
    each Kafka client (the test's own producer is kafka-python's either way)."""
    try:
        with_a_proxied_broker(tmp_path, _outage, client)
    finally:
        close_leaked_sockets()


def with_a_proxied_broker(
    tmp_path: Path, run: Callable[[Rig, TcpProxy], None], client: str = "kafka-python"
) -> None:
    proxy_port = free_port()
    with EmbeddedBroker(log_file=tmp_path / "tansu.log", advertised_port=proxy_port) as broker:
        proxy = TcpProxy(target=broker.port, port=proxy_port).start()
        bootstrap = f"127.0.0.1:{proxy_port}"
        topics = fresh_topics(bootstrap)  # the per-test topics, on this test's own broker
        rig = make_rig(bootstrap, topics, tmp_path, kafka={"client": client})
        try:
            run(rig, proxy)
        finally:
            rig.cleanup()
            proxy.close()


def _outage(rig: Rig, proxy: TcpProxy) -> None:
    feed = rig.feed().start()
    daemon = rig.daemon.start()
    daemon.wait_ready()
    pid = daemon.pid
    time.sleep(2.0)
    assert daemon.value("modelmon_kafka_up") == 1
    # Nothing in flight when the connections drop: a write retried by the producer could land
    # twice, and then the log would not be what the oracle thinks was produced.
    feed.pause()
    proxy.cut()
    cut_at = time.monotonic()
    feed.resume()  # the producer keeps sending; its records wait in its buffer
    samples: list[tuple[float, float | None, int | None]] = []  # (seconds since cut, up, /healthz)

    def kafka_up() -> float | None:
        reply = daemon.get("/healthz")
        up = daemon.value("modelmon_kafka_up")
        samples.append((time.monotonic() - cut_at, up, None if reply is None else reply[0]))
        return up

    while time.monotonic() - cut_at < OUTAGE:
        kafka_up()
        time.sleep(0.5)
    proxy.restore()
    restored_at = time.monotonic()
    back = wait_for(lambda: kafka_up() == 1, 60, "modelmon_kafka_up back to 1", every=0.5)
    time.sleep(1.0)
    verdict = rig.settle(feed.finish())
    kafka_up()
    down_at = next((t for t, up, _ in samples if up == 0), None)
    figures(
        f"broker unreachable {OUTAGE:.0f}s",
        verdict,
        kafka_up_0_after=f"{down_at:.1f}s" if down_at is not None else "never",
        kafka_up_1_after_restore=f"{back:.1f}s",
        caught_up_after_restore=f"{time.monotonic() - restored_at:.1f}s",
    )
    ups = [up for _, up, _ in samples]
    health = [h for _, _, h in samples]
    assert down_at is not None and down_at < OUTAGE, "modelmon_kafka_up never went 0"
    assert ups[-1] == 1
    assert set(health) == {200}, f"/healthz answered {Counter(health)}"
    assert daemon.alive() and daemon.pid == pid and daemon.runs == 1
    assert_exact(verdict)
    nothing_counted_twice(daemon)
    assert daemon.terminate()[0] == 0


# -- 5. poison pills ----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("rig", CLIENTS, indirect=True)
def test_poison_pills_go_to_the_dead_letter_topic_and_lag_returns_to_zero(rig: Rig) -> None:
    feed = rig.feed(poison_every=7).start()
    daemon = rig.daemon.start()
    daemon.wait_ready()
    time.sleep(4.0)
    produced = feed.finish()
    verdict = rig.settle(produced)
    assert_exact(verdict)
    nothing_counted_twice(daemon)

    reasons = dict(POISON)
    streams = {rig.topics.predictions: "predictions", rig.topics.labels: "labels"}
    pills = [
        (rec, part, off)
        for rec, (part, off) in zip(produced.records, produced.placed, strict=True)
        if rec.value in reasons
    ]
    assert len(pills) >= 2 * len(POISON)
    m = daemon.metrics()
    by_reason = Counter((streams[rec.topic], reasons[rec.value]) for rec, _, _ in pills)
    for (stream, reason), n in by_reason.items():
        key = (("reason", reason), ("stream", stream))
        assert m.get(("modelmon_invalid_events_total", key)) == n, (stream, reason)
    assert sum(v for (name, _), v in m.items() if name == "modelmon_invalid_events_total") == len(
        pills
    )

    expected = Counter(
        (
            rec.value,
            (
                ("modelmon-reason", reasons[rec.value].encode()),
                ("modelmon-source-offset", str(off).encode()),
                ("modelmon-source-partition", str(part).encode()),
                ("modelmon-source-topic", rec.topic.encode()),
            ),
        )
        for rec, part, off in pills
    )
    got = Counter(
        (r.value or b"", tuple(sorted((k, v) for k, v in r.headers if k != "modelmon-detail")))
        for r in read_topic(rig.bootstrap, rig.topics.dlq, len(pills))
    )
    assert got == expected

    # Lag: end offsets minus what was processed, per partition. The test broker may report
    # end offsets late, but never beyond what it stores, so every partition reaches 0.
    def lags() -> dict[tuple[str, ...], float]:
        return {
            tuple(v for _, v in labels): value
            for (name, labels), value in daemon.metrics().items()
            if name == "modelmon_consumer_lag_messages"
        }

    took = wait_for(
        lambda: len(lags()) == 6 and set(lags().values()) == {0.0}, 20, "lag 0 everywhere"
    )
    figures("poison pills", verdict, dead_lettered=str(len(pills)), lag_0_after=f"{took:.1f}s")
    assert daemon.terminate()[0] == 0


# -- 6. SIGTERM under load ----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("rig", CLIENTS, indirect=True)
def test_sigterm_under_load_exits_0_in_time_and_restart_continues_exactly(rig: Rig) -> None:
    deadline = rig.settings.shutdown.deadline
    feed = rig.feed(rate=4 * RATE).start()
    daemon = rig.daemon.start()
    daemon.wait_ready()
    time.sleep(3.0)
    assert feed.running
    nothing_counted_twice(daemon)
    code, took = daemon.terminate()
    assert code == 0 and took < deadline, (code, took)
    assert "stopped cleanly" in daemon.log()
    # The last checkpoint and the group's commit cover the same offsets.
    covered = {(t, p): o for t, p, o in read_checkpoint(rig.state_dir / CHECKPOINT).meta["offsets"]}
    rig.committed(covered, timeout=5)
    daemon.start()
    recovery = daemon.wait_ready()
    assert "restored checkpoint" in daemon.log()
    time.sleep(1.5)
    verdict = rig.settle(feed.finish())
    nothing_counted_twice(daemon)
    figures("SIGTERM under load", verdict, exit=f"{took:.1f}s", recovery=f"{recovery:.1f}s")
    assert_exact(verdict)
    assert daemon.terminate()[0] == 0


# -- 8. a bad config, secrets -------------------------------------------------------------------

STATE_FILES = ["checkpoint.mmc", "webhooks/.lock", "webhooks/<entry>.json"]


class Trap:
    """A listening socket where the config points the daemon: any connection is caught."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def connected(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()


def broken_yaml(cfg: dict[str, Any]) -> str:
    """The config with the password's line left unterminated (a YAML syntax error)."""
    text = yaml.safe_dump(cfg, sort_keys=False)
    return text.replace(f"sasl_plain_password: {PASSWORD}", f'sasl_plain_password: "{PASSWORD}')


@pytest.mark.parametrize(
    ("edit", "env", "key"),
    [
        (lambda c: yaml.safe_dump({**c, "http": {"port": "nine"}}), {}, "http.port"),
        (yaml.safe_dump, {"MODELMON_KAFKA__MAX_POLL_RECORDS": "0"}, "kafka.max_poll_records"),
        pytest.param(
            broken_yaml,
            {},
            "not valid YAML",
        ),
    ],
    ids=["bad-value", "bad-env", "bad-yaml-on-secret-line"],
)
def test_cli_exits_2_on_bad_config_before_any_connection(
    tmp_path: Path, edit: Callable[[dict[str, Any]], str], env: dict[str, str], key: str
) -> None:
    trap = Trap()
    try:
        config = tmp_path / "modelmon.yaml"
        config.write_text(edit(base_config(trap.address)))
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, **env},
            check=False,
        )
        took = time.monotonic() - started
        assert not trap.connected(), "the daemon connected before validating its config"
    finally:
        trap.close()
    assert result.returncode == 2, result.stderr
    assert took < 10, took
    assert result.stdout == ""
    assert_good_message(result.stderr.strip(), key)


@pytest.mark.integration
def test_secrets_never_reach_logs_metrics_or_status(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    """A running daemon, at DEBUG, with both secrets set, a webhook that cannot be reached
    and a drifting stream that makes the policy fire it."""
    hook = free_port()
    rig = make_rig(
        broker.bootstrap,
        topics,
        tmp_path,
        log_level="DEBUG",
        kafka={"sasl_plain_password": PASSWORD},
    )
    data = yaml.safe_load(rig.daemon.config.read_text())
    data["models"][0]["webhook"] = {
        "url": f"http://127.0.0.1:{hook}/hook",
        "secret": HOOK_SECRET,
        "allow_private_targets": True,
        "retry_schedule": ["1s"],
    }
    data["models"][0]["policy"]["breaches_to_fire"] = 1
    write_config(rig.daemon.config, data)
    try:
        feed = rig.feed(rate=4 * RATE).start()
        daemon = rig.daemon.start()
        daemon.wait_ready()
        wait_for(
            lambda: (daemon.value("modelmon_webhook_attempts_total", model=MODEL) or 0) >= 2,
            30,
            "the webhook to be fired and retried",
        )
        time.sleep(2.0)
        bodies = [daemon.get(path) for path in ("/metrics", "/api/v1/status", "/", "/readyz")]
        feed.finish()
        assert daemon.terminate()[0] == 0
    finally:
        rig.cleanup()
    # every reply is searched: none may have failed (a dropped one would hide a leak)
    assert [reply is not None and reply[0] for reply in bodies] == [200, 200, 200, 200]
    state_files = sorted(p for p in rig.state_dir.rglob("*") if p.is_file())
    # the checkpoint, the outbox's lock and the one webhook still pending: all searched
    layout = [p.relative_to(rig.state_dir).as_posix() for p in state_files]
    entry = r"[0-9]{12}-mm_[0-9a-f]{40}"  # sequence-event id
    assert [re.sub(entry, "<entry>", name) for name in layout] == STATE_FILES, layout
    exposed = [reply[1] for reply in bodies if reply is not None]
    exposed += [daemon.all_output().encode()]
    exposed += [p.read_bytes() for p in state_files]
    for secret in (PASSWORD, HOOK_SECRET):
        for blob in exposed:
            assert secret.encode() not in blob
    assert len(exposed) == len(bodies) + 1 + len(STATE_FILES)
