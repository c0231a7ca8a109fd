"""Durable outbox for retraining webhooks: per-endpoint FIFO queues backed by one file per event.

Files are named ``<seq>-<id>.json`` so that a directory listing is in enqueue order. Every write
goes to a temp file that is fsynced and renamed over the target, and the directory is fsynced
after it, so a reader (or a restart) sees the old or the new entry, never a partial one. Entries
leave the queue in two ways only: deleted after delivery, or marked dead (the reason recorded
in the file) and moved into ``dead/``; a marked file whose move failed stays, never sent again,
until the next start moves it. A file that cannot be parsed is moved to
``dead/<name>.corrupt`` and logged; it never stops a restart. Replaying a dead event means
moving its file back (and resetting ``created_at`` if it is older than the retry window).

An advisory ``flock`` on ``<dir>/.lock`` keeps two dispatchers (two processes sharing a volume,
or a stale and a new one in one process) from delivering the same directory twice.

Times on disk are wall-clock Unix seconds so they survive restarts; in memory each entry's next
attempt is kept on the injected monotonic clock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import orjson

from monitor.atomic import TMP_PREFIX, atomic_write, fsync_dir

__all__ = ["DEAD_DIR", "FORMAT_VERSION", "Outbox", "OutboxEntry"]

FORMAT_VERSION: Final = 1
DEAD_DIR: Final = "dead"
_LOCK_NAME: Final = ".lock"
_MAX_IDLE: Final = 5.0  # take() re-checks at least this often (robust to odd injected clocks)

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class OutboxEntry:
    """One pending webhook event; ``body`` is the exact byte string signed and sent."""

    id: str
    seq: int
    endpoint: str
    url: str
    event_type: str
    body: bytes
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    last_error: str | None = None
    dead_reason: str | None = None

    @property
    def filename(self) -> str:
        """Zero-padded sequence first, so that sorting names sorts by enqueue order."""
        return f"{self.seq:012d}-{self.id}.json"

    def to_json(self) -> bytes:
        """Serialise for storage (indented: operators read ``dead/`` by hand)."""
        record: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "id": self.id,
            "seq": self.seq,
            "endpoint": self.endpoint,
            "url": self.url,
            "type": self.event_type,
            "body": self.body.decode("utf-8"),
            "attempts": self.attempts,
            "created_at": self.created_at,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "dead_reason": self.dead_reason,
        }
        return orjson.dumps(record, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes) -> OutboxEntry:
        """Parse a stored entry; raise ValueError naming the first problem."""
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(rec, dict):
            raise ValueError("not a JSON object")
        if rec.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown format {rec.get('format')!r}")

        def get(name: str, *types: type) -> Any:
            value = rec.get(name)
            # bool is an int subclass, but a bool where a number belongs is corruption too
            if not isinstance(value, types) or isinstance(value, bool):
                raise ValueError(f"field {name!r} missing or of the wrong type")
            return value

        def optional_str(name: str) -> str | None:
            value = rec.get(name)
            return value if isinstance(value, str) else None

        return cls(
            id=get("id", str),
            seq=get("seq", int),
            endpoint=get("endpoint", str),
            url=get("url", str),
            event_type=get("type", str),
            body=get("body", str).encode("utf-8"),
            attempts=get("attempts", int),
            created_at=float(get("created_at", int, float)),
            next_attempt_at=float(get("next_attempt_at", int, float)),
            last_error=optional_str("last_error"),
            dead_reason=optional_str("dead_reason"),
        )


class Outbox:
    """Pending webhook events on disk plus per-endpoint FIFO queues in memory.

    Thread-safe. Each endpoint's queue is meant to be consumed by one worker (:meth:`take`),
    which is the only one to complete, reschedule or bury that endpoint's entries.

    Parameters
    ----------
    directory
        Created (mode 0700) if missing; owned exclusively until :meth:`close`. Pending entries
        found there are loaded now.
    clock, wall
        Monotonic time for due times in memory; wall time for the times stored on disk.

    Raises
    ------
    RuntimeError
        If another open ``Outbox`` holds the directory.
    """

    def __init__(
        self,
        directory: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.dead_dir = self.directory / DEAD_DIR
        self.dead_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clock = clock
        self._wall = wall
        self._lock_fd: int | None = os.open(
            self.directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600
        )
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise RuntimeError(
                f"webhook outbox {self.directory} is in use by another dispatcher"
            ) from None
        self._cond = threading.Condition()
        self._add_lock = threading.Lock()  # seq allocation + write + append, in that order
        self._queues: dict[str, list[OutboxEntry]] = {}
        self._entries: dict[str, OutboxEntry] = {}
        self._due: dict[str, float] = {}  # id -> clock() time of the next attempt
        self._interrupted = False
        loaded = self._load()
        now_clock, now_wall = clock(), wall()
        for entry in loaded:
            self._queues.setdefault(entry.endpoint, []).append(entry)
            self._entries[entry.id] = entry
            self._due[entry.id] = now_clock + max(0.0, entry.next_attempt_at - now_wall)
        self._seq = max((e.seq for e in loaded), default=0)
        if loaded:
            logger.info("webhook outbox %s: %d pending events reloaded", directory, len(loaded))

    # -- queue operations --

    def add(
        self, msg_id: str, endpoint: str, url: str, event_type: str, body: bytes
    ) -> OutboxEntry | None:
        """Store a new entry durably, then queue it; None if ``msg_id`` is already pending."""
        with self._add_lock:
            with self._cond:
                if msg_id in self._entries:
                    return None
                self._seq += 1
                seq = self._seq
            now = self._wall()
            entry = OutboxEntry(msg_id, seq, endpoint, url, event_type, body, now, now)
            atomic_write(self.directory / entry.filename, entry.to_json())
            with self._cond:
                self._queues.setdefault(endpoint, []).append(entry)
                self._entries[msg_id] = entry
                self._due[msg_id] = self._clock()
                self._cond.notify_all()
        return entry

    def take(self, endpoint: str) -> OutboxEntry | None:
        """Block until the endpoint's oldest entry is due and return it (it stays pending).

        Returns None once :meth:`interrupt` has been called.
        """
        with self._cond:
            while not self._interrupted:
                queue = self._queues.get(endpoint)
                wait = self._due[queue[0].id] - self._clock() if queue else _MAX_IDLE
                if queue and wait <= 0:
                    return queue[0]
                self._cond.wait(min(wait, _MAX_IDLE))
            return None

    def reschedule(self, entry: OutboxEntry, delay: float) -> None:
        """Make ``entry`` due again after ``delay`` seconds and persist its state.

        A no-op for an entry that is no longer pending, so that it is never resurrected.
        """
        with self._cond:
            if entry.id not in self._entries:
                return
            self._due[entry.id] = self._clock() + delay
        entry.next_attempt_at = self._wall() + delay
        try:
            atomic_write(self.directory / entry.filename, entry.to_json())
        except OSError:  # the entry is still on disk; only its attempts and next time are stale
            logger.exception("could not update webhook outbox entry %s", entry.id)

    def complete(self, entry: OutboxEntry) -> None:
        """Delete a delivered entry. Not fsynced: a lost delete only means a redelivery."""
        (self.directory / entry.filename).unlink(missing_ok=True)
        self._forget(entry)

    def bury(self, entry: OutboxEntry, reason: str) -> Path:
        """Move an entry to ``dead/`` with ``reason`` recorded; return where its file now is.

        Once the reason is on disk the entry is dead: it leaves the queue even if the move
        fails (it then stays in place, marked, and the next start moves it), because any
        later write of the live entry would erase the mark and send it again. Raises
        ``OSError`` only if the mark itself could not be written (the entry stays pending).
        """
        path = self.directory / entry.filename
        atomic_write(path, replace(entry, dead_reason=reason).to_json())  # reason, then rename
        try:
            return self._move_dead(path)
        except OSError:
            logger.exception("could not move dead webhook %s to %s", entry.id, self.dead_dir)
            return path if path.exists() else self.dead_dir / path.name
        finally:  # after the move: who waits for an empty outbox finds the file in dead/
            self._forget(entry)

    def entries(self, endpoint: str) -> list[OutboxEntry]:
        """Snapshot of an endpoint's pending entries, oldest first."""
        with self._cond:
            return list(self._queues.get(endpoint, ()))

    def endpoints(self) -> list[str]:
        """Names of endpoints with pending entries."""
        with self._cond:
            return [name for name, queue in self._queues.items() if queue]

    def pending(self) -> int:
        """Number of pending entries (not counting ``dead/``)."""
        with self._cond:
            return len(self._entries)

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to ``timeout`` real seconds for the outbox to empty; True if it did."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._entries:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def interrupt(self) -> None:
        """Make every current and future :meth:`take` return None."""
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def close(self) -> None:
        """Release the directory lock (idempotent); entries stay on disk."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    # -- storage --

    def _forget(self, entry: OutboxEntry) -> None:
        with self._cond:
            queue = self._queues.get(entry.endpoint, [])
            if entry in queue:
                queue.remove(entry)
            self._entries.pop(entry.id, None)
            self._due.pop(entry.id, None)
            self._cond.notify_all()

    def _move_dead(self, path: Path) -> Path:
        target = self.dead_dir / path.name
        os.replace(path, target)
        fsync_dir(self.dead_dir)
        fsync_dir(self.directory)
        return target

    def _load(self) -> list[OutboxEntry]:
        """Read pending entries, oldest first, cleaning up after crashes and corruption."""
        entries: list[OutboxEntry] = []
        with os.scandir(self.directory) as it:
            names = sorted(e.name for e in it if e.is_file())
        for name in names:
            path = self.directory / name
            if name.startswith(TMP_PREFIX):  # an add() that never returned: nobody relies on it
                logger.warning("removing stale webhook outbox temp file %s", path)
                path.unlink(missing_ok=True)
                continue
            if not name.endswith(".json"):
                continue
            try:
                entry = OutboxEntry.from_json(path.read_bytes())
            except (OSError, ValueError, UnicodeError) as exc:
                aside = self.dead_dir / (name + ".corrupt")
                logger.error("corrupt webhook outbox entry %s (%s); moved to %s", path, exc, aside)
                try:
                    os.replace(path, aside)
                except OSError:
                    logger.exception("could not move corrupt outbox entry %s aside", path)
                continue
            if entry.dead_reason is not None:  # crashed between marking and moving
                self._move_dead(path)
                continue
            entries.append(entry)
        entries.sort(key=lambda e: (e.seq, e.created_at, e.id))
        return entries
