"""Composition root and lifecycle: wiring, the consume loop, the scheduler, signals, shutdown.

Lifecycle lives here and only here: a signal sets a flag, a second one (after a 1 s grace) forces
exit, shutdown has a deadline, resources sit in one ``ExitStack``, offsets are committed after
processing.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry

from monitor.alerting.actions import Actions
from monitor.events import Offsets
from monitor.group.coordinator import Coordinator
from monitor.group.handover import PolicyHandover
from monitor.group.topic import StateTopic
from monitor.ingest.open_source import open_source
from monitor.ingest.poll_watch import PollWatch
from monitor.ingest.route import Pipeline
from monitor.ingest.source import DeadLetterAbortedError, Source
from monitor.persistence.store import StateStore
from monitor.reference.bins import ReferenceProfileError
from monitor.reference.profile import ReferenceProfile
from monitor.serve.collector import SnapshotCollector
from monitor.serve.http import HttpServer
from monitor.serve.ops_metrics import OpsMetrics
from monitor.settings import ConfigError, Settings
from monitor.snapshot import Snapshot
from monitor.state.evaluate import evaluate
from monitor.state.model_state import ModelState

log = logging.getLogger(__name__)

SourceFactory = Callable[[Any, Offsets | None], Source]
#: A repeated signal this soon after the first is the same request; later ones force the exit.
REPEAT_SIGNAL_GRACE = 1.0


def load_states(settings: Settings, base: Path | None = None) -> dict[str, ModelState]:
    """Per-model state with its reference loaded; a missing or bad reference is a config error."""
    states = {}
    for m in settings.models:
        reference = None
        if isinstance(m.reference, Path):
            path = m.reference if m.reference.is_absolute() or base is None else base / m.reference
            try:
                reference = ReferenceProfile.load(path)
            except (OSError, ReferenceProfileError) as exc:
                raise ConfigError(f"models[{m.name}].reference: {exc}") from exc
        try:
            states[m.name] = ModelState(m, reference)
        except ValueError as exc:
            raise ConfigError(f"models[{m.name}].reference: {exc}") from exc
    return states


class App:
    """The daemon. ``run()`` blocks until stopped; ``request_stop()`` may come from any thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        states: dict[str, ModelState] | None = None,
        source_factory: SourceFactory = open_source,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.registry = CollectorRegistry()
        self.metrics = OpsMetrics(self.registry)
        self.states = states if states is not None else load_states(settings)
        #: Group mode (``coordination.enabled``): made at start, as it talks to the broker.
        self.group: Coordinator | None = None
        grouped = settings.coordination.enabled
        self.pipeline = Pipeline(
            settings,
            self.states,
            self.metrics,
            wall=wall,
            shards=(lambda m, p: self._group().shard(m, p)) if grouped else None,
            owned=(lambda: self._group().owned_states()) if grouped else None,
        )
        self.snapshot: Snapshot | None = None
        self._handover: PolicyHandover | None = None
        # In group mode only the acting replica exports model statistics: one series each.
        self.registry.register(SnapshotCollector(lambda: self.snapshot if self.acting else None))
        self._source_factory = source_factory
        self._stop = threading.Event()
        self._first_signal: float | None = None
        self._last_progress = clock()
        self.polls = PollWatch(clock, settings.kafka.max_poll_interval_ms / 1000)
        self._started = threading.Event()
        self._source: Source | None = None
        self.actions = Actions(settings, self.registry, clock=clock, wall=wall)
        self.store = StateStore(
            settings.state.dir, self.states, self.pipeline.lock, {"policy": self.actions}, clock
        )
        self.metrics.checkpoint_age.set_function(self.store.age)
        probes = (lambda: self.snapshot, self.liveness, self.readiness)
        self.http = HttpServer(self.registry, *probes, settings.http, wall=wall)

    # -- health -------------------------------------------------------------------------------
    def liveness(self) -> tuple[bool, str]:
        """Healthy while the consume loop makes progress; broker reachability is not asked."""
        idle = self.clock() - self._last_progress
        if idle > self.settings.evaluation.liveness_timeout:
            return False, f"consume loop stalled for {idle:.0f}s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        if not self._started.is_set():
            return False, "starting"
        if self.snapshot is None:
            return False, "no evaluation yet"
        if self._source is None or not self._source.caught_up:
            return False, "catching up"
        return True, "ready"

    # -- group mode ---------------------------------------------------------------------------
    def _group(self) -> Coordinator:
        assert self.group is not None, "group mode before start"
        return self.group

    @property
    def acting(self) -> bool:
        """Whether this process runs the policy and exports model statistics (in group mode:
        owns partition 0, and has polled lately enough to be in the group still)."""
        return self.group is None or (self.group.acting and self.polls.in_group())

    def _start_group(self) -> None:
        topic = StateTopic(self.settings)
        topic.ensure()
        member = f"{socket.gethostname()}:{os.getpid()}"
        self.group = Coordinator(
            self.settings, self.states, self.pipeline.lock, topic, member, self.metrics
        )
        self._handover = PolicyHandover(self.actions, self.group, self.metrics)
        self.group.caught_up = lambda: self._source is not None and self._source.caught_up
        self.metrics.acting.set_function(lambda: float(self.acting))
        self.group.catch_up()

    def _group_caught_up(self) -> bool:
        """In group mode: every other partition's owner had read its backlog at its last flush."""
        return self.group is None or self.group.others_caught_up

    def on_assign(self, partitions: list[tuple[str, int]]) -> Offsets | None:
        """Rebalance hook (consume thread): group mode resumes from the state topic."""
        return None if self.group is None else self.group.on_assign(partitions)

    # -- state --------------------------------------------------------------------------------
    def checkpoint(self) -> Offsets:
        """Write a checkpoint now (any thread); returns the offsets it covers.

        In group mode the state goes to the state topic instead of a file. Before the source
        exists (at start) the checkpoint covers no offsets."""
        source = self._source
        if self.group is not None:
            return {} if source is None else self.group.flush(source.positions)
        try:
            offsets = self.store.save(dict if source is None else source.positions)
        except OSError as exc:
            self.metrics.checkpoint_errors.inc()
            log.error("checkpoint to %s failed: %s", self.store.path, exc)
            return {}
        self.metrics.checkpoint_bytes.set(self.store.last_bytes)
        return offsets

    def on_revoke(self) -> Offsets | None:
        """Rebalance hook: checkpoint so the offsets committed match the state."""
        if self.group is not None and self._source is not None:
            # Published, the next owner of each partition starts where this one stops.
            return self.group.on_revoke(self._source.positions) or None
        return self.checkpoint() or None

    # -- work ---------------------------------------------------------------------------------
    def evaluate_now(self) -> Snapshot:
        """Evaluate all models and swap the new snapshot in (one assignment: atomic)."""
        started = time.perf_counter()
        self.pipeline.maintain()
        source = self._source
        with self.pipeline.lock:  # the ingest lock: windows and offsets are read whole
            states = self.states.values() if self.group is None else self.group.global_states()
            snap = evaluate(states, self.wall)
            ranges = source.offset_ranges() if source else None
        if source is not None and not (source.caught_up and self._group_caught_up()):
            # While a backlog is read, partitions are at different event times, so a window can
            # be a biased sample: export it, but let the policy decide on complete ones only.
            snap = replace(self.actions.annotate(snap), catching_up=True)
        elif not self.acting:  # another replica decides for the group
            snap = self.actions.annotate(snap)
        else:
            # Outside the ingest lock: the policy has its own, and enqueuing a webhook fsyncs.
            snap = self.actions.on_snapshot(snap, ranges)
            if self._handover is not None:
                self._handover.publish()
        self.snapshot = snap
        self.http.history.record(snap)
        self.metrics.eval_duration.observe(time.perf_counter() - started)
        for m in snap.models:
            for w in m.windows:
                if drifted := w.drifted():
                    log.info(
                        "drift model=%s window=%s features=%s", m.model, w.window, ",".join(drifted)
                    )
        return snap

    def _clamp_event_time(self) -> None:
        """No watermark past wall clock + ``time.max_future_skew``, also one from a checkpoint:
        one past it is pulled back to the wall clock (to the bound, events of now would be
        late for ``max_future_skew - allowed_lateness``)."""
        now = self.wall()
        limit = now + self.settings.time.max_future_skew
        with self.pipeline.lock:
            for name, state in self.states.items():
                ahead = state.newest_seen - now
                if state.newest_seen > limit and state.clamp_event_time(now):
                    log.warning(
                        "model %s: restored newest event time was %.0fs ahead of the wall clock "
                        "(more than time.max_future_skew): clamped to it, later panes dropped",
                        name,
                        ahead,
                    )

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        now = self.clock()
        if self._first_signal is None:
            self._first_signal = now
            log.info("received %s: shutting down", name)
            self._stop.set()
        elif now - self._first_signal < REPEAT_SIGNAL_GRACE:
            # GNU timeout (and some supervisors) send SIGTERM twice in quick succession: that
            # is one request, and must not cost the final checkpoint.
            log.info(
                "received %s again within %.0fs: still shutting down", name, REPEAT_SIGNAL_GRACE
            )
        else:
            log.error("second %s: exiting now, without the final checkpoint", name)
            os._exit(1)

    def run(self, install_signals: bool = True) -> int:
        """Consume until stopped; returns the process exit code."""
        if install_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        with ExitStack() as stack:
            self.http.start()
            stack.callback(self.http.stop)
            log.info(
                "serving /metrics on %s://%s:%d%s",
                "https" if self.http.tls else "http",
                self.settings.http.host,
                self.http.port,
                " with basic auth" if self.http.auth else "",
            )
            self.actions.start()
            stack.callback(self.actions.stop, self.settings.shutdown.deadline / 2)
            if self.settings.coordination.enabled:  # the state lives in the state topic
                self._start_group()
                stack.callback(self._group().close)
                positions = None
            elif (positions := self.store.restore()) is None:
                # A new policy lineage (the salt of webhook ids) is saved before any webhook
                # carries it: see "The outbox and the policy across a kill -9" in architecture.md.
                self.checkpoint()
            self.metrics.restore_duration.set(self.store.restore_seconds)
            self._clamp_event_time()
            source = self._source_factory(self, positions)
            self._source = source
            stack.callback(source.close)
            scheduler = BackgroundScheduler(timezone="UTC")
            scheduler.add_job(
                self.evaluate_now,
                "interval",
                seconds=self.settings.evaluation.interval,
                max_instances=1,  # an evaluation never overlaps the previous one
                coalesce=True,
                next_run_time=datetime.now(UTC),
                id="evaluate",
            )
            scheduler.start()
            stack.callback(_stop_scheduler, scheduler)
            self._started.set()
            self._consume(source)
            log.info("stopping: checkpointing, committing offsets and closing")
            with self._deadline():  # nothing below may outlive the shutdown deadline
                _stop_scheduler(scheduler, wait=True)  # no evaluation races the checkpoint
                source.commit(self.checkpoint())
                stack.close()
        log.info("stopped cleanly")
        return 0

    def _consume(self, source: Source) -> None:
        kafka = self.settings.kafka
        every = self.settings.state.checkpoint_interval
        if self.group is not None:
            every = self.settings.coordination.flush_interval
        next_checkpoint = self.clock() + every
        next_lag = self.clock()
        while not self._stop.is_set():
            if self.group is not None:
                self.group.read()
            records = source.poll(kafka.poll_timeout)
            self.polls.polled()
            if records:
                started = time.perf_counter()
                batch = self.pipeline.decode(records)
                waiting = partial(self._waiting_on_broker, source)
                if batch.dead:  # written (acked) before the batch counts as processed
                    try:
                        source.dead_letter(batch.dead, self._stop.is_set, waiting)
                    except DeadLetterAbortedError:
                        # Stopping while the broker is away: leave the batch unprocessed;
                        # its offsets are not committed, so a restart reads it again.
                        log.warning(
                            "shutdown before the dead-letter topic accepted %d "
                            "records: they will be re-read",
                            len(batch.dead),
                        )
                        break
                failed = self.pipeline.apply(batch, partial(source.mark_processed, records))
                if failed:  # rare (a bug met by one record): already marked processed
                    try:
                        source.dead_letter(failed, self._stop.is_set, waiting)
                    except DeadLetterAbortedError:
                        log.warning("shutdown before %d dead letters were written", len(failed))
                self.metrics.batch_duration.observe(time.perf_counter() - started)
            now = self.clock()
            self._last_progress = now
            if now >= next_lag:
                source.update_lag()
                # Readiness waits for the lag to be small: while catching up, look every second
                # (else a busy stream, whose polls never come back empty, waits up to 5 s more).
                next_lag = now + (5.0 if source.caught_up else 1.0)
            if now >= next_checkpoint:
                # Group offsets follow checkpoints, so lag stays meaningful and a restart
                # never skips what the last checkpoint did not cover.
                source.commit(self.checkpoint())
                next_checkpoint = now + every

    def _waiting_on_broker(self, source: Source) -> None:
        """Between dead-letter retries: the loop is alive (waiting for the broker, as a poll
        during an outage does), and the lag and ``kafka_up`` stay current."""
        self._last_progress = self.clock()
        source.update_lag()

    @contextmanager
    def _deadline(self) -> Iterator[None]:
        """Force the exit if closing resources hangs past the shutdown deadline."""
        deadline = self.settings.shutdown.deadline
        timer = threading.Timer(deadline, _force_exit, args=(deadline,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


def _stop_scheduler(scheduler: BackgroundScheduler, wait: bool = False) -> None:
    if scheduler.running:
        scheduler.shutdown(wait=wait)


def _force_exit(deadline: float) -> None:
    log.error("shutdown exceeded its %.0fs deadline: exiting now", deadline)
    os._exit(1)
