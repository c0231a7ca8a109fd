"""Group-mode benchmark (issue 15's targets; run on demand, never in the test suite):

    PYTHONPATH=. .venv/bin/python bench/bench_group.py [--runs 3] [--only traffic,throughput,...]

Everything runs against the embedded broker (Tansu, memory storage) with real ``modelmon run``
processes (kafka-python client, the only one group mode supports), one model with 20 features
(16 numeric, 4 categorical) and the default windows (5m/10s panes, 1h/1m panes). Input is
co-partitioned: predictions and labels topics of 6 partitions each, both keyed by the
prediction id, a record going to partition ``crc32(id) % 6`` of its topic (the tests' scheme).
Every figure is the median of ``--runs`` runs, the individual runs beside it.

1. ``traffic``: one replica (6 partitions), predictions produced live at ``--rate``/s for
   ``--duration`` s of wall time = event time (timestamps are now: nothing compressed), each
   with a label ``--label-delay`` s later (and a no-delay case: the label right after its
   prediction). Internal traffic is the replica's ``modelmon_state_published_bytes_total``
   (key + value as handed to the producer, before its gzip: the wire carries less) divided by
   the keys + values produced to the input topics, (a) over the whole run until the replica
   has consumed everything and flushed once more, (b) over the steady phase (both streams
   flowing). Default flush interval (5 s). Target <= 2 %.
2. ``throughput``: one replica, the same pre-produced backlog (``--backlog`` predictions, each
   followed by its label, event times in the last 20 minutes) read from the start with a fresh
   group id, coordination on and off (alternating, off first); the time from the first event
   counted (``modelmon_events_total``) until every event is, so start-up is left out alike.
   Target on/off >= 0.9. ``--profile`` also runs one replica with coordination on under
   cProfile and prints the top functions by cumulative and by own time.
3. ``failover``: ``--replicas`` replicas on 6 partitions, traffic at 500 predictions/s with
   labels until the group has settled; then the acting replica (owner of partition 0, the one
   whose figures count) is killed with SIGKILL and the feed stops. Measured: seconds from the
   kill until a surviving replica shows ``modelmon_acting`` 1 and its ``/api/v1/status`` 1h
   window counts equal every prediction and label produced. Target <= session timeout + 10 s.
4. ``memory``: replica A alone on 6 partitions under live traffic (2,000 predictions/s with
   labels) for ``--phase`` s, then B and C join (A keeps 2 partitions) for ``--phase`` s more.
   RSS sampled every 0.2 s: A's peak alone, A's median and peak after the others joined, and
   B's and C's (which only ever owned 2). A's RSS after joining should be about B's/C's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

from monitor.devkit.broker import EmbeddedBroker, create_topics, free_port
from monitor.reference.build import build_reference

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 6
MODEL = "m0"
NUMERIC = [f"n{i}" for i in range(16)]
CATEGORICAL = [f"c{i}" for i in range(4)]
FEATURES = dict.fromkeys(NUMERIC, "numeric") | dict.fromkeys(CATEGORICAL, "categorical")
CATS = np.array(["alpha", "beta", "gamma", "delta"])
SESSION_TIMEOUT_MS = 6000


def partition_of(key: bytes) -> int:
    """Where a record goes in either topic: a label lands on its prediction's partition."""
    return zlib.crc32(key) % PARTITIONS


# -- events -----------------------------------------------------------------------------------
class Events:
    """Predictions (20 features, ~600 bytes of JSON) and their labels, keyed by id."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.run = uuid.uuid4().hex[:6]

    def predictions(self, ts: np.ndarray) -> list[tuple[bytes, bytes, float]]:
        """(key, value, score) per timestamp."""
        k = len(ts)
        num = self.rng.normal(100, 15, (k, len(NUMERIC))).round(4)
        cats = CATS[self.rng.integers(0, 4, (k, len(CATEGORICAL)))]
        score = self.rng.beta(2, 5, k).round(5)
        out = []
        for i in range(k):
            pid = f"{self.run}-{self.n}"
            self.n += 1
            feats: dict[str, object] = dict(zip(NUMERIC, num[i].tolist(), strict=True))
            feats.update(zip(CATEGORICAL, cats[i].tolist(), strict=True))
            value = {
                "id": pid,
                "model": MODEL,
                "version": "v1",
                "timestamp": float(ts[i]),
                "features": feats,
                "prediction": int(score[i] >= 0.5),
                "score": float(score[i]),
            }
            out.append((pid.encode(), orjson.dumps(value), float(score[i])))
        return out

    def label(self, key: bytes, score: float, ts: float) -> bytes:
        truth = int(self.rng.random() < score)
        return orjson.dumps({"id": key.decode(), "model": MODEL, "label": truth, "timestamp": ts})


@dataclass
class Produced:
    predictions: int = 0
    labels: int = 0
    bytes: int = 0  # keys + values, both topics

    def add(self, key: bytes, value: bytes, label: bool) -> None:
        self.bytes += len(key) + len(value)
        if label:
            self.labels += 1
        else:
            self.predictions += 1


class Writer:
    """A librdkafka producer that puts each record on ``partition_of(key)``."""

    def __init__(self, bootstrap: str, topics: tuple[str, str]) -> None:
        from confluent_kafka import Producer

        self.p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20})
        self.topics = topics
        self.produced = Produced()
        self._lock = threading.Lock()

    def send(self, key: bytes, value: bytes, label: bool) -> None:
        topic = self.topics[1] if label else self.topics[0]
        while True:
            try:
                self.p.produce(topic, value, key, partition=partition_of(key))
                break
            except BufferError:
                self.p.poll(0.05)
        with self._lock:
            self.produced.add(key, value, label)

    def flush(self) -> None:
        self.p.poll(0)
        if self.p.flush(60):
            raise RuntimeError("records not all delivered")


def backlog(w: Writer, ev: Events, n: int, span: float = 1200.0) -> None:
    """``n`` predictions with event times over the last ``span`` s, each followed by its label."""
    t0 = time.time() - span - 30
    chunk = 20_000
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        ts = t0 + (start + np.arange(k)) * (span / n)
        for (key, value, score), t in zip(ev.predictions(ts), ts, strict=True):
            w.send(key, value, False)
            w.send(key, ev.label(key, score, float(t) + 1.0), True)
        w.p.poll(0)
    w.flush()


class LiveFeed(threading.Thread):
    """Predictions at ``rate``/s stamped now, each labelled ``delay`` s later (wall = event
    time), until ``stop()``; the labels still owed are then sent when due (``drain``) or not."""

    def __init__(self, w: Writer, ev: Events, rate: float, delay: float, drain: bool) -> None:
        super().__init__(daemon=True)
        self.w, self.ev, self.rate, self.delay, self.drain = w, ev, rate, delay, drain
        self._stop_at: float | None = None
        self._halt = threading.Event()
        self.done = threading.Event()
        self.preds_stopped = threading.Event()

    def stop(self) -> None:
        self._stop_at = time.time()

    def halt(self) -> None:
        """Stop everything now (no owed label sent)."""
        self._halt.set()
        self.stop()

    def run(self) -> None:
        owed: list[tuple[float, bytes, float]] = []  # due, key, score (due times ascending)
        head = 0
        tick = 0.05
        start = time.time()
        sent = 0
        while not self._halt.is_set():
            now = time.time()
            if self._stop_at is None:
                due = int((now - start) * self.rate) - sent
                if due > 0:
                    ts = np.full(due, now)
                    for key, value, score in self.ev.predictions(ts):
                        self.w.send(key, value, False)
                        if self.delay <= 0:
                            self.w.send(key, self.ev.label(key, score, now), True)
                        else:
                            owed.append((now + self.delay, key, score))
                    sent += due
            else:
                self.preds_stopped.set()
                if not self.drain:
                    break
            while head < len(owed) and owed[head][0] <= now:
                _, key, score = owed[head]
                self.w.send(key, self.ev.label(key, score, now), True)
                head += 1
            if head > 100_000:
                owed, head = owed[head:], 0
            self.w.p.poll(0)
            if self._stop_at is not None and head >= len(owed):
                break
            time.sleep(tick)
        self.preds_stopped.set()
        self.w.flush()
        self.done.set()


# -- replicas ---------------------------------------------------------------------------------
def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in m.items() if n == name)


def window_counts(port: int, window: str = "1h") -> tuple[int, int] | None:
    """(predictions, labels) of ``window`` in the latest ``/api/v1/status`` snapshot."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=3) as r:
            snap = orjson.loads(r.read())["snapshot"]
    except (OSError, ValueError):
        return None
    for m in (snap or {}).get("models", []):
        for w in m.get("windows", []):
            if m.get("model") == MODEL and w.get("window") == window:
                return int(w["predictions"]), int(w["labels"])
    return None


@dataclass
class Replica:
    name: str
    home: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    rss: list[tuple[float, float]] = field(default_factory=list)  # (time, MiB)
    _sampler: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self, profile: Path | None = None) -> Replica:
        cmd = [sys.executable]
        if profile is not None:
            cmd += ["-m", "cProfile", "-o", str(profile)]
        cmd += ["-m", "monitor.cli"]
        cmd += ["run", "--config", str(self.home / "modelmon.yaml")]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.home / "err.log", "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=err, stderr=err, cwd=ROOT, env=env)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        assert self.proc is not None
        try:
            p = psutil.Process(self.proc.pid)
            while not self._stop.wait(0.2):
                self.rss.append((time.monotonic(), p.memory_info().rss / 2**20))
        except psutil.Error:
            pass

    def rss_between(self, a: float, b: float) -> list[float]:
        return [m for t, m in self.rss if a <= t <= b]

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} not up in {timeout}s")

    def log(self) -> str:
        return (self.home / "err.log").read_text(errors="replace")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Setup:
    """Fresh co-partitioned topics, one group id, and the replicas' configs."""

    def __init__(self, bootstrap: str, base: Path, coordination: bool, eval_interval: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.bootstrap = bootstrap
        self.topics = (f"predictions-{tag}", f"labels-{tag}")
        create_topics(bootstrap, {self.topics[0]: PARTITIONS, self.topics[1]: PARTITIONS})
        self.base = base / tag
        self.base.mkdir(parents=True)
        self.group = f"bench-group-{tag}"
        self.coordination = coordination
        self.eval_interval = eval_interval
        self.replicas: list[Replica] = []

    def reuse_topics(self, topics: tuple[str, str]) -> None:
        self.topics = topics

    def add(self, reference: Path, profile: Path | None = None) -> Replica:
        r = Replica(f"r{len(self.replicas)}", self.base / f"r{len(self.replicas)}", free_port())
        r.home.mkdir()
        config: dict[str, Any] = {
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "group_id": self.group,
                "predictions_topic": self.topics[0],
                "labels_topic": self.topics[1],
                "client": "kafka-python",
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "heartbeat_interval_ms": 1000,
            },
            "http": {"host": "127.0.0.1", "port": r.port},
            "state": {"dir": str(r.home / "state")},
            "evaluation": {"interval": self.eval_interval},
            "models": [
                {
                    "name": MODEL,
                    "task": "binary_classification",
                    "reference": str(reference),
                    "features": FEATURES,
                }
            ],
        }
        if self.coordination:
            config["coordination"] = {"enabled": True}
        (r.home / "modelmon.yaml").write_text(json.dumps(config, indent=1))  # JSON is YAML
        self.replicas.append(r.start(profile))
        return r

    def close(self) -> None:
        for r in self.replicas:
            r.stop()


def save_reference(path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = 20_000
    cols: dict[str, list[object]] = {f: rng.normal(100, 15, rows).tolist() for f in NUMERIC}
    cols |= {f: CATS[rng.integers(0, 4, rows)].tolist() for f in CATEGORICAL}
    score = rng.beta(2, 5, rows)
    cols["score"] = score.tolist()
    cols["prediction"] = (score >= 0.5).astype(int).tolist()
    build_reference(MODEL, "binary_classification", cols, dict(FEATURES)).save(path)


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> float:
    """Seconds until ``cond()``; raises TimeoutError after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(every)
    raise TimeoutError(f"{what} not within {timeout:.0f}s")


def events_counted(port: int) -> float:
    return metric(scrape(port), "modelmon_events_total")


# -- 1. internal traffic ----------------------------------------------------------------------
def traffic_backlog(w: Writer, ev: Events, rate: float, duration: float, delay: float) -> None:
    """``duration`` s of event time at ``rate`` predictions/s (ending a minute ago), each
    prediction's label ``delay`` s of event time later, in event-time order (compressed: produced
    as fast as the producer goes)."""
    n = int(rate * duration)
    t0 = time.time() - duration - delay - 60
    owed: list[tuple[float, bytes, float]] = []
    head = 0
    chunk = 10_000
    for start in range(0, n, chunk):
        ts = t0 + (start + np.arange(min(chunk, n - start))) / rate
        for (key, value, score), t in zip(ev.predictions(ts), ts.tolist(), strict=True):
            while head < len(owed) and owed[head][0] <= t:
                due, k, sc = owed[head]
                w.send(k, ev.label(k, sc, due), True)
                head += 1
            w.send(key, value, False)
            if delay <= 0:
                w.send(key, ev.label(key, score, t), True)
            else:
                owed.append((t + delay, key, score))
        w.p.poll(0)
    for due, k, sc in owed[head:]:
        w.send(k, ev.label(k, sc, due), True)
    w.flush()


def state_topic_gzip_bytes(bootstrap: str, topic: str) -> tuple[int, int]:
    """(records, sum of gzip-compressed key + value sizes) of the state topic: about what the
    producer (``compression_type=gzip``) puts on the wire."""
    import gzip

    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    n = size = 0
    try:
        while c.position(tp) < end:
            for recs in c.poll(timeout_ms=2000, max_records=500).values():
                for r in recs:
                    n += 1
                    size += len(gzip.compress((r.key or b"") + (r.value or b""), 6))
    finally:
        c.close()
    return n, size


def run_traffic(ctx: Ctx, delay: float) -> dict[str, float]:
    a = ctx.args
    s = Setup(ctx.bootstrap, ctx.base, True, "15s")
    try:
        w = Writer(ctx.bootstrap, s.topics)
        traffic_backlog(w, Events(ctx.seed()), a.rate, a.duration, delay)
        total = w.produced
        r = s.add(ctx.reference)
        r.wait_ready()
        base = metric(scrape(r.port), "modelmon_state_published_bytes_total")
        wait_for(lambda: events_counted(r.port) > 0, 120, "a first event", every=0.05)
        first = time.monotonic()
        n = total.predictions + total.labels
        wait_for(lambda: events_counted(r.port) >= n, 1800, "every event", every=0.2)
        took = time.monotonic() - first
        time.sleep(2 * 5.0 + 1)  # twice the flush interval: the last positions are published
        state = metric(scrape(r.port), "modelmon_state_published_bytes_total") - base
        records, wire = state_topic_gzip_bytes(ctx.bootstrap, f"{s.group}.modelmon-state")
        # Live at ``rate``, the flushes of ``took`` s would be spread over ``duration`` s, and
        # each flush publishes the full windows of every partition that moved: what scales
        # with wall time is the state bytes per second, with the input rate its bytes per second.
        live = (state / took) / (total.bytes / a.duration)
        return {
            "ratio_raw": state / total.bytes,
            "ratio_live": live,
            "ratio_live_gzip": live * wire / state,
            "state_bytes": state,
            "state_gzip_bytes": wire,
            "state_records": records,
            "input_bytes": total.bytes,
            "predictions": total.predictions,
            "labels": total.labels,
            "consume_seconds": took,
            "consumed_events_per_s": n / took,
        }
    finally:
        s.close()


# -- 2. throughput ----------------------------------------------------------------------------
def consume_time(ctx: Ctx, topics: tuple[str, str], n: int, coord: bool) -> float:
    s = Setup(ctx.bootstrap, ctx.base, coord, "15s")
    s.reuse_topics(topics)
    try:
        r = s.add(ctx.reference)
        r.wait_ready()
        wait_for(lambda: events_counted(r.port) > 0, 120, "a first event", every=0.05)
        start = time.monotonic()
        wait_for(lambda: events_counted(r.port) >= n, 900, "the backlog consumed", every=0.1)
        return time.monotonic() - start
    finally:
        s.close()


def run_profile(ctx: Ctx, topics: tuple[str, str], n: int) -> None:
    import pstats

    s = Setup(ctx.bootstrap, ctx.base, True, "15s")
    s.reuse_topics(topics)
    out = ctx.base / "group.prof"
    try:
        r = s.add(ctx.reference, profile=out)
        r.wait_ready()
        wait_for(lambda: events_counted(r.port) >= n, 1800, "the backlog consumed", every=0.2)
    finally:
        s.close()  # SIGTERM: cProfile writes its file on a clean exit
    st = pstats.Stats(str(out))
    print(
        f"\nprofile (cProfile of `modelmon run`, coordination on, {n} events; the "
        "consume loop's thread, the main one: cProfile sees that thread only)"
    )
    st.sort_stats("cumulative").print_stats(25)
    st.sort_stats("tottime").print_stats(20)


# -- 3. failover ------------------------------------------------------------------------------
def acting_replica(s: Setup) -> Replica | None:
    for r in s.replicas:
        if r.alive() and metric(scrape(r.port), "modelmon_acting") == 1:
            return r
    return None


def run_failover(ctx: Ctx) -> dict[str, float]:
    s = Setup(ctx.bootstrap, ctx.base, True, "1s")
    try:
        for _ in range(ctx.args.replicas):
            s.add(ctx.reference)
        for r in s.replicas:
            r.wait_ready()
        w = Writer(ctx.bootstrap, s.topics)
        feed = LiveFeed(w, Events(ctx.seed()), 500, 0.0, drain=False)
        feed.start()
        time.sleep(ctx.args.phase)
        # settled: one acting replica whose figures follow the feed (within a few seconds)
        wait_for(lambda: acting_replica(s) is not None, 60, "an acting replica")
        victim = acting_replica(s)
        assert victim is not None
        feed.halt()
        victim.kill()
        killed = time.monotonic()
        feed.done.wait()
        want = (w.produced.predictions, w.produced.labels)

        def complete() -> bool:
            r = acting_replica(s)
            return r is not None and window_counts(r.port) == want

        wait_for(complete, 180, f"global figures {want}", every=0.25)
        took = time.monotonic() - killed
        new = acting_replica(s)
        return {"seconds": took, "predictions": want[0], "new_acting": float(new is not None)}
    finally:
        s.close()


# -- 4. memory --------------------------------------------------------------------------------
def run_memory(ctx: Ctx) -> dict[str, float]:
    s = Setup(ctx.bootstrap, ctx.base, True, "5s")
    try:
        a = s.add(ctx.reference)
        a.wait_ready()
        w = Writer(ctx.bootstrap, s.topics)
        feed = LiveFeed(w, Events(ctx.seed()), 2000, 30.0, drain=False)
        feed.start()
        t0 = time.monotonic()
        time.sleep(ctx.args.phase)
        t1 = time.monotonic()
        b, c = s.add(ctx.reference), s.add(ctx.reference)
        b.wait_ready()
        c.wait_ready()
        time.sleep(ctx.args.phase)
        t2 = time.monotonic()
        feed.halt()
        feed.done.wait()
        settle = t1 + 15  # after the rebalance and the takeovers
        out = {
            "A_peak_alone": max(a.rss_between(t0, t1)),
            "A_peak_after": max(a.rss_between(settle, t2)),
            "A_median_after": statistics.median(a.rss_between(settle, t2)),
            "B_peak": max(b.rss_between(settle, t2)),
            "B_median": statistics.median(b.rss_between(settle, t2)),
            "C_peak": max(c.rss_between(settle, t2)),
            "C_median": statistics.median(c.rss_between(settle, t2)),
        }
        owned = [line for line in a.log().splitlines() if "own partitions" in line]
        out["A_owned_last"] = float(len(owned[-1].split("[")[-1].split(","))) if owned else -1
        return out
    finally:
        s.close()


# -- driver -----------------------------------------------------------------------------------
@dataclass
class Ctx:
    args: argparse.Namespace
    bootstrap: str
    base: Path
    reference: Path
    _seed: Iterator[int] = field(default_factory=lambda: iter(range(1000, 10**6)))

    def seed(self) -> int:
        return next(self._seed)


def show(name: str, runs: list[float], fmt: str = "{:.4f}") -> float:
    med = statistics.median(runs)
    print(f"  {name:<52} {fmt.format(med):>10}  runs=[{', '.join(fmt.format(x) for x in runs)}]")
    return med


def verdict(ok: bool, by: str) -> str:
    return "met" if ok else f"MISSED by {by}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="traffic,throughput,failover,memory")
    ap.add_argument("--rate", type=float, default=5000.0, help="predictions/s (traffic)")
    ap.add_argument("--duration", type=float, default=60.0, help="s of event time (traffic)")
    ap.add_argument("--label-delay", type=float, default=30.0, help="s (traffic)")
    ap.add_argument("--backlog", type=int, default=200_000, help="predictions (throughput)")
    ap.add_argument("--profile", action="store_true", help="cProfile one replica (throughput)")
    ap.add_argument("--replicas", type=int, default=3, help="(failover)")
    ap.add_argument("--phase", type=float, default=30.0, help="s per phase (failover, memory)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    print(f"command: PYTHONPATH={ROOT} {' '.join([sys.executable, *sys.argv])}")
    print(
        f"cores: {os.cpu_count()}; session_timeout_ms={SESSION_TIMEOUT_MS}, "
        "heartbeat_interval_ms=1000, coordination.flush_interval=5s (default), 20 features"
    )
    base = Path(tempfile.mkdtemp(prefix="bench-group-"))
    results: list[str] = []
    try:
        with EmbeddedBroker(log_file=base / "broker.log") as broker:
            reference = base / "reference.json"
            save_reference(reference)
            ctx = Ctx(args, broker.bootstrap, base, reference)
            if "traffic" in only:
                for delay in (args.label_delay, 0.0):
                    runs = []
                    for _ in range(args.runs):
                        r = run_traffic(ctx, delay)
                        runs.append(r)
                        print(f"    traffic run (label delay {delay:g}s): {r}", flush=True)
                    print(
                        f"1. internal traffic, label delay {delay:g}s: {args.duration:g}s of event "
                        f"time at {args.rate:g} predictions/s (+ a label each), compressed, one "
                        "replica on 6 partitions:"
                    )
                    for key in runs[0]:
                        show(key, [r[key] for r in runs], "{:.4f}" if "ratio" in key else "{:.0f}")
                    raw = statistics.median(r["ratio_raw"] for r in runs)
                    live = statistics.median(r["ratio_live"] for r in runs)
                    gz = statistics.median(r["ratio_live_gzip"] for r in runs)
                    gap = f"{100 * (live - 0.02):.1f} points, {live / 0.02:.0f}x"
                    results.append(
                        f"internal traffic (label delay {delay:g}s): at {args.rate:g}/s live "
                        f"{100 * live:.1f}% ({100 * gz:.1f}% gzipped), compressed run "
                        f"{100 * raw:.1f}% (target <= 2%): " + verdict(live <= 0.02, gap)
                    )
            if "throughput" in only:
                topics = (f"tp-{uuid.uuid4().hex[:6]}", f"tl-{uuid.uuid4().hex[:6]}")
                create_topics(broker.bootstrap, {topics[0]: PARTITIONS, topics[1]: PARTITIONS})
                w = Writer(broker.bootstrap, topics)
                started = time.monotonic()
                backlog(w, Events(ctx.seed()), args.backlog)
                n = w.produced.predictions + w.produced.labels
                print(
                    f"2. backlog: {w.produced.predictions} predictions + {w.produced.labels} "
                    f"labels on {PARTITIONS} co-partitioned partitions, {w.produced.bytes} bytes "
                    f"(produced in {time.monotonic() - started:.0f}s)",
                    flush=True,
                )
                off, on = [], []
                for _ in range(args.runs):
                    off.append(n / consume_time(ctx, topics, n, False))
                    on.append(n / consume_time(ctx, topics, n, True))
                    print(f"    throughput run: off {off[-1]:.0f}/s on {on[-1]:.0f}/s", flush=True)
                show("events/s, coordination off", off, "{:.0f}")
                show("events/s, coordination on", on, "{:.0f}")
                ratio = show("on / off (per run)", [a / b for a, b in zip(on, off, strict=True)])
                results.append(
                    f"throughput on/off: {ratio:.3f} (target >= 0.9): "
                    f"{verdict(ratio >= 0.9, f'{0.9 - ratio:.3f}')}"
                )
                if args.profile or ratio < 0.9:
                    run_profile(ctx, topics, n)
            if "failover" in only:
                runs = []
                for _ in range(args.runs):
                    r = run_failover(ctx)
                    runs.append(r)
                    print(f"    failover run: {r}", flush=True)
                print(
                    f"3. kill -9 of the acting replica of {args.replicas} "
                    f"(session_timeout_ms={SESSION_TIMEOUT_MS}):"
                )
                sec = show(
                    "seconds until the global figures are complete",
                    [r["seconds"] for r in runs],
                    "{:.1f}",
                )
                target = SESSION_TIMEOUT_MS / 1000 + 10
                results.append(
                    f"failover: {sec:.1f}s (target <= {target:g}s): "
                    f"{verdict(sec <= target, f'{sec - target:.1f}s')}"
                )
            if "memory" in only:
                runs = []
                for _ in range(args.runs):
                    r = run_memory(ctx)
                    runs.append(r)
                    print(f"    memory run: {r}", flush=True)
                print("4. RSS (MiB): A owned 6 partitions, then 2 once B and C joined:")
                for key in runs[0]:
                    show(key, [r[key] for r in runs], "{:.1f}")
                a = statistics.median([r["A_median_after"] for r in runs])
                bc = statistics.median([(r["B_median"] + r["C_median"]) / 2 for r in runs])
                results.append(
                    f"memory: A after (owns 2, owned 6) {a:.0f} MiB vs B/C (only ever 2) "
                    f"{bc:.0f} MiB: {a / bc:.2f}x"
                )
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print("\nsummary:")
    for line in results:
        print(f"  {line}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too: the replicas and the broker are stopped on the way out


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        main()
