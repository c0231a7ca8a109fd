"""Saving and restoring the daemon's state (all models + policy) with the offsets it covers.

The caller supplies the offsets under the same lock that guards the state, so a checkpoint is
always a consistent cut: every record before those offsets is in the state, none after. A
checkpoint that cannot be used is reported and ignored as a whole, never half-applied: the
daemon then rebuilds its windows by replay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy.typing as npt

from monitor.atomic import TMP_PREFIX
from monitor.events import Offsets
from monitor.persistence.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from monitor.state import restore_checks as checks
from monitor.state.model_state import ModelState

log = logging.getLogger(__name__)
FILE_NAME = "checkpoint.mmc"
_DETAIL = 300  # characters of a refused checkpoint's reason in the log


class Stateful(Protocol):
    """A checkpoint part other than the model states (the policy); it guards itself."""

    def to_state(self) -> dict[str, Any]: ...

    def restorer(self, state: dict[str, Any]) -> Callable[[], None]:
        """Parse and check ``state`` (raise if unusable); the returned call installs it."""
        ...


class StateStore:
    """Checkpoints ``states`` (and optional extra parts, e.g. the policy) under ``dir``."""

    def __init__(
        self,
        directory: Path,
        states: dict[str, ModelState],
        lock: threading.Lock,
        extras: Mapping[str, Stateful] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = directory / FILE_NAME
        self._states = states
        self._lock = lock
        self._extras = dict(extras or {})
        self._clock = clock
        self.last_saved: float | None = None
        self.last_bytes = 0
        self.restore_seconds = 0.0

    def save(self, positions: Callable[[], Offsets]) -> Offsets:
        """Write a checkpoint of the current state; returns the offsets it covers."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        with self._lock:
            offsets = positions()
            models = {name: st.to_state(arrays, f"m.{name}") for name, st in self._states.items()}
            # Copies taken under the lock: the consume thread mutates panes in place, and the
            # (slow) write below happens outside the lock so ingestion does not stall on disk.
            arrays = {name: a.copy() for name, a in arrays.items()}
        # Each part guards itself (the policy's lock): never nested in the ingest lock.
        extras = {name: part.to_state() for name, part in self._extras.items()}
        meta = {
            "models": models,
            "extras": extras,
            "offsets": [[t, p, o] for (t, p), o in sorted(offsets.items())],
        }
        self.last_bytes = write_checkpoint(self.path, meta, arrays)
        self.last_saved = self._clock()
        return offsets

    def restore(self) -> Offsets | None:
        """Load the checkpoint if there is a usable one; returns its offsets (None: replay)."""
        started = time.perf_counter()
        for stale in self.path.parent.glob(f"{TMP_PREFIX}{self.path.name}.*"):
            # A kill during a checkpoint write leaves its temporary file; nothing else removes it.
            log.warning("removing %s, left by a crash during a checkpoint write", stale)
            stale.unlink(missing_ok=True)
        if not self.path.exists():
            log.info("no checkpoint at %s: windows will be rebuilt by replay", self.path)
            return None
        try:
            ckpt = read_checkpoint(self.path)
            fresh, offsets, installs = self._parse(ckpt.meta, ckpt.arrays)
        except Exception as exc:  # the file is input: whatever it holds, it is only replayed
            log.error(
                "checkpoint %s ignored (%s): windows will be rebuilt by replay",
                self.path,
                _one_line(exc),
            )
            return None
        # Every part parsed and checked: swap them in together (nothing below can fail).
        with self._lock:
            self._states.update(fresh)
        for install in installs:
            install()
        self.restore_seconds = time.perf_counter() - started
        self.last_saved = self._clock() - max(0.0, time.time() - ckpt.created_at)
        log.info(
            "restored checkpoint %s (%d partitions) in %.2fs",
            self.path,
            len(offsets),
            self.restore_seconds,
        )
        return offsets

    def _parse(
        self, meta: object, arrays: dict[str, npt.NDArray[Any]]
    ) -> tuple[dict[str, ModelState], Offsets, list[Callable[[], None]]]:
        """Every part of a checkpoint, built aside from the live state; raises if unusable."""
        meta = checks.mapping(meta, "checkpoint")
        models = checks.mapping(meta.get("models"), "checkpoint models")
        fresh = {name: ModelState(st.cfg, _file_reference(st)) for name, st in self._states.items()}
        for name, st in fresh.items():
            if name not in models:
                raise CheckpointError(f"model {name} is not in the checkpoint")
            st.load_state(models[name], arrays, f"m.{name}")
        offsets: Offsets = {}
        for row in checks.sequence(meta.get("offsets"), "checkpoint offsets"):
            topic, partition, offset = checks.sequence(row, "checkpoint offset", max_len=3)
            key = (checks.text(topic, "topic"), checks.integer(partition, "partition", minimum=0))
            offsets[key] = checks.integer(offset, "offset", minimum=0)
        extras = checks.mapping(meta.get("extras", {}), "checkpoint extras")
        installs = [part.restorer(extras[n]) for n, part in self._extras.items() if n in extras]
        return fresh, offsets, installs

    def age(self) -> float:
        return float("nan") if self.last_saved is None else self._clock() - self.last_saved


def _one_line(exc: BaseException) -> str:
    """An exception as one bounded log-safe line (a crafted file chooses the message)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= _DETAIL else text[: _DETAIL - 1] + "…"


def _file_reference(state: ModelState) -> Any:
    """The reference loaded from a file (bootstrapped ones come from the checkpoint)."""
    from monitor.settings import BootstrapReference

    return None if isinstance(state.cfg.reference, BootstrapReference) else state.reference
