"""Crash-safe file replacement: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TMP_PREFIX = ".tmp-"  # leftovers of a crash mid-write start with this; safe to delete


def fsync_dir(directory: Path) -> None:
    """Make a rename (or unlink) in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temp(path: Path, mode: int) -> tuple[int, Path]:
    # os.open rather than mkstemp: mkstemp always makes 0600, and a file meant to be shared
    # (a reference, a checkpoint) should get the mode the user's umask gives (the kernel
    # applies it to ``mode`` here).
    for _ in range(100):
        tmp = path.parent / f"{TMP_PREFIX}{path.name}.{secrets.token_hex(6)}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def atomic_write(path: Path, data: bytes, *, private: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it over ``path``
    and fsync the directory.

    ``private`` files (the webhook outbox, which may hold URLs with tokens) are 0600 whatever
    the umask; the others (references, checkpoints) are 0666 less the umask, like any file the
    user creates.
    """
    fd, tmp = _create_temp(path, 0o600 if private else 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
