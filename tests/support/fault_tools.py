"""Tools for the fault-injection suite: the daemon as a real process (restartable, killable),
a producer feeding a stream at a steady rate, a reader of committed offsets, and a TCP proxy
the test can cut.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from monitor.settings import Settings
from monitor.settings_loader import load_settings
from tests.support import REPO_ROOT
from tests.support.fault_oracle import Record, model_config
from tests.support.metrics import Metrics, parse_metrics
from tests.support.wait import wait_for

ROOT = REPO_ROOT

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class Produced:
    """What a feed wrote: the records in order, where each landed, each partition's end."""

    records: list[Record]
    placed: list[tuple[int, int]]  # (partition, offset) of each record
    ends: dict[TopicPartitionKey, int]


# -- producing ------------------------------------------------------------------------------


class Feed:
    """Produces a stream on a background thread at ``rate`` records per second.

    Keeps every record and the offset the broker gave it, so the oracle sees exactly what was
    written. ``pause()`` returns once nothing is in flight.
    """

    def __init__(
        self,
        bootstrap: str,
        stream: Iterator[Record],
        rate: float,
        partitioner: Callable[[Record], int] | None = None,
    ) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=5,
            acks="all",
            reconnect_backoff_max_ms=1000,
            delivery_timeout_ms=120_000,
        )
        self._stream = stream
        self._rate = rate
        self._partitioner = partitioner  # None: the producer's own (murmur2 of the key)
        self._sent: list[tuple[Record, Any]] = []
        self._run = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="feed", daemon=True)

    def start(self) -> Feed:
        self._run.set()
        self._thread.start()
        return self

    @property
    def count(self) -> int:
        return len(self._sent)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._run.is_set()

    def _loop(self) -> None:
        try:
            tick = 0.02
            per_tick = max(1, round(self._rate * tick))
            next_at = time.monotonic()
            while not self._stop.is_set():
                if not self._run.is_set():
                    self._producer.flush()
                    self._idle.set()
                    self._run.wait(0.1)
                    continue
                self._idle.clear()
                for _ in range(per_tick):
                    self._send(next(self._stream))
                next_at += tick
                time.sleep(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # surfaced by finish()
            self._error = exc

    def _send(self, rec: Record) -> None:
        partition = None if self._partitioner is None else self._partitioner(rec)
        future = self._producer.send(rec.topic, key=rec.key, value=rec.value, partition=partition)
        self._sent.append((rec, future))

    def pause(self) -> None:
        """Stop producing and wait until everything sent so far is acknowledged."""
        self._run.clear()
        if not self._idle.wait(60):
            raise AssertionError("the producer did not drain within 60s")

    def resume(self) -> None:
        self._run.set()

    def produce_now(self, n: int) -> None:
        """Produce ``n`` records from the stream at once (feed paused or never started)."""
        for _ in range(n):
            self._send(next(self._stream))
        self._producer.flush()

    def ends(self) -> dict[TopicPartitionKey, int]:
        """Each partition's end offset after the records sent so far (call it once they are
        acknowledged: after ``produce_now`` or ``pause``). The broker's own end offsets can
        lag behind, so this is what a test waits for the group to commit."""
        ends: dict[TopicPartitionKey, int] = {}
        for _, future in self._sent:
            meta = future.get(timeout=0)
            key = (meta.topic, meta.partition)
            ends[key] = max(ends.get(key, 0), meta.offset + 1)
        return ends

    def finish(self) -> Produced:
        """Stop, flush, close; returns what was written.

        Fails if any write failed or a partition's offsets are not exactly 0, 1, 2, …: then the
        log would not hold exactly the records the oracle is computed from.
        """
        self._stop.set()
        self._run.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)
        self._producer.flush()
        self._producer.close(timeout=10)
        if self._error is not None:
            raise self._error
        return self.produced()

    def produced(self) -> Produced:
        """What was written so far (call it once everything sent is acknowledged: after
        ``produce_now``, ``pause`` or ``finish``), with the same checks as ``finish``."""
        offsets: dict[TopicPartitionKey, list[int]] = {}
        placed = []
        for _, future in self._sent:
            meta = future.get(timeout=0)
            offsets.setdefault((meta.topic, meta.partition), []).append(meta.offset)
            placed.append((meta.partition, meta.offset))
        for tp, got in offsets.items():
            assert sorted(got) == list(range(len(got))), f"{tp}: log is not what was produced"
        return Produced(
            [rec for rec, _ in self._sent], placed, {tp: len(o) for tp, o in offsets.items()}
        )

    def close(self) -> None:
        """Teardown after a failure: stop without checking anything."""
        self._stop.set()
        self._run.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)
        with contextlib.suppress(Exception):
            self._producer.close(timeout=5)


class CommittedOffsets:
    """Reads a consumer group's committed offsets without joining the group."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )

    def __call__(self, partitions: Sequence[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        out = {}
        for topic, partition in partitions:
            offset = self._consumer.committed(TopicPartition(topic, partition))
            out[(topic, partition)] = offset or 0
        return out

    def close(self) -> None:
        self._consumer.close()


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` (waits for ``expected``, then briefly for any extra ones)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            if len(records) >= expected:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
        return records
    finally:
        consumer.close()


# -- the daemon as a process ----------------------------------------------------------------


class Daemon:
    """``modelmon run`` as a real process; restarts reuse its config, state and HTTP port.

    Each run's stderr (the log) goes to ``logs/daemon-<n>.err``, its stdout to ``.out``.
    """

    def __init__(self, config: Path, port: int, logs: Path, env: Mapping[str, str] | None = None):
        self.config = config
        self.port = port
        self.logs = logs
        self.env = dict(os.environ if env is None else env)
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def log_path(self) -> Path:
        return self.logs / f"daemon-{self.runs}.err"

    def start(self) -> Daemon:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        out_path = self.log_path.with_suffix(".out")
        with open(self.log_path, "wb") as err, open(out_path, "wb") as out:
            self.proc = subprocess.Popen(  # the child keeps its own descriptors
                [sys.executable, "-m", "monitor.cli", "run", "--config", str(self.config)],
                stdout=out,
                stderr=err,
                cwd=ROOT,
                env=self.env,
            )
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def all_output(self) -> str:
        """Everything every run wrote, stderr and stdout."""
        return "".join(
            (self.logs / f"daemon-{n}.{kind}").read_text(errors="replace")
            for n in range(1, self.runs + 1)
            for kind in ("err", "out")
        )

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """Status and body, or None if nothing answers."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=timeout
            ) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as e:
            with e:
                return int(e.code), bytes(e.read())
        except (OSError, urllib.error.URLError):
            return None

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from this run's start until ``/readyz`` answered 200."""

        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"daemon exited early:\n{self.log()[-3000:]}")
            reply = self.get("/readyz", timeout=1.0)
            return reply is not None and reply[0] == 200

        wait_for(ready, timeout, "/readyz 200", every=0.05)
        return time.monotonic() - self.started_at

    def metrics(self) -> Metrics:
        reply = self.get("/metrics")
        assert reply is not None and reply[0] == 200, "no /metrics"
        return parse_metrics(reply[1].decode())

    def value(self, name: str, **labels: str) -> float | None:
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def status_after(self, wall: float, timeout: float = 30.0) -> dict[str, Any]:
        """The first snapshot evaluated after wall-clock time ``wall``."""
        found: dict[str, Any] = {}

        def fresh() -> bool:
            reply = self.get("/api/v1/status")
            if reply is None or reply[0] != 200:
                return False
            snap = orjson.loads(reply[1])["snapshot"]
            if snap is None or snap["created_at"] <= wall:
                return False
            found.update(snap)
            return True

        wait_for(fresh, timeout, "a fresh evaluation")
        return found

    def kill(self) -> None:
        """``kill -9``: no checkpoint, no commit, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60.0) -> tuple[int, float]:
        """SIGTERM; returns the exit code and the seconds it took to exit."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)


def write_config(path: Path, data: Mapping[str, Any]) -> Settings:
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    return load_settings(path)


def daemon_config(
    *,
    bootstrap: str,
    group: str,
    topics: tuple[str, str, str],
    port: int,
    state_dir: Path,
    reference: Path,
    **extra: Any,
) -> dict[str, Any]:
    """A config for the fault tests: checkpoint and evaluate every second."""
    predictions, labels, dlq = topics
    data: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "predictions_topic": predictions,
            "labels_topic": labels,
            "dead_letter_topic": dlq,
            "session_timeout_ms": 3000,
            "max_poll_interval_ms": 10000,
            "heartbeat_interval_ms": 500,
            "poll_timeout": 0.2,
            "max_poll_records": 500,
        },
        "http": {"host": "127.0.0.1", "port": port},
        "state": {"dir": str(state_dir), "checkpoint_interval": "1s"},
        "evaluation": {"interval": "1s"},
        "shutdown": {"deadline": "10s"},
        "models": [model_config(reference)],
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


# -- a TCP proxy to cut ---------------------------------------------------------------------


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target``, one thread per connection.

    ``cut()`` closes the listening socket (new connections are refused) and shuts down every
    open connection; ``restore()`` listens again on the same port.
    """

    def __init__(self, target: int, port: int) -> None:
        self.target = target
        self.port = port
        self.accepted = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listening = threading.Event()
        self._acceptor: threading.Thread | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listening.set()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()
        return self

    restore = start

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._listening.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                except OSError:
                    client.close()
                    continue
                client.settimeout(None)
                upstream.settimeout(None)
                with self._lock:
                    self.accepted += 1
                    self._open.update((client, upstream))
                    t = threading.Thread(target=self._pipe, args=(client, upstream), daemon=True)
                    self._threads.append(t)
                t.start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        peer = {client: upstream, upstream: client}
        try:
            while True:
                readable, _, _ = select.select([client, upstream], [], [], 1.0)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._open.difference_update((client, upstream))
            client.close()
            upstream.close()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones; returns when both are done."""
        self._listening.clear()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            threads, self._threads = self._threads, []
        for t in threads:
            t.join(timeout=5)

    def close(self) -> None:
        self.cut()


# -- the oracle -----------------------------------------------------------------------------


def close_leaked_sockets() -> int:
    """Close the sockets kafka-python 3.0.12 leaks when a connection is refused (``sock_connect``
    in ``kafka/net/inet.py`` raises with the socket still open); returns how many.

    They are the test process's TCP sockets that are neither connected nor listening. Left
    alone, the garbage collector finds them during some later test, which then fails on the
    ResourceWarning. Call this only when no client of the test process is connecting.
    """
    closed = 0
    for obj in gc.get_objects():
        if not isinstance(obj, socket.socket) or obj.fileno() == -1:
            continue
        if obj.family != socket.AF_INET or obj.type != socket.SOCK_STREAM:
            continue
        if obj.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            continue
        try:
            obj.getpeername()
        except OSError:
            obj.close()
            closed += 1
    return closed
