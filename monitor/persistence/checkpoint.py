"""Checkpoint files: all state plus the Kafka offsets it covers, written atomically.

Layout: ``MAGIC`` (8 bytes), a 4-byte big-endian header length, a JSON header
(``format_version``, ``created_at``, ``payload_sha256``, ``payload_bytes``), then the payload: an
uncompressed ``.npz`` archive holding every numpy array by name plus ``__meta__``, the JSON of
everything else. A write goes to a temporary file in the same directory, is fsynced, renamed
over the old checkpoint and the directory fsynced, so a crash leaves either the old or the new
checkpoint, never half of one. A reader that finds anything wrong (truncation, a flipped bit, an
unknown version) raises :class:`CheckpointError` and applies nothing.
"""

from __future__ import annotations

import hashlib
import io
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from monitor.atomic import atomic_write

MAGIC = b"MMCKPT\x00\x01"
FORMAT_VERSION = 1
_META = "__meta__"


class CheckpointError(Exception):
    """The checkpoint cannot be used; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    meta: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]
    created_at: float


def write_checkpoint(
    path: Path, meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]
) -> int:
    """Atomically replace ``path`` with a new checkpoint; returns its size in bytes."""
    buf = io.BytesIO()
    meta_bytes = orjson.dumps(meta, option=orjson.OPT_SERIALIZE_NUMPY)
    named: dict[str, Any] = {_META: np.frombuffer(meta_bytes, dtype=np.uint8), **arrays}
    np.savez(buf, **named)
    payload = buf.getvalue()
    header = orjson.dumps(
        {
            "format_version": FORMAT_VERSION,
            "created_at": time.time(),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "payload_bytes": len(payload),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, MAGIC + struct.pack(">I", len(header)) + header + payload)
    return len(MAGIC) + 4 + len(header) + len(payload)


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and verify a checkpoint; raises :class:`CheckpointError` (never half-reads)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise CheckpointError(f"{path}: not a modelmon checkpoint (bad magic)")
    (hlen,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    try:
        header = orjson.loads(data[start : start + hlen])
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: damaged header") from exc
    if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
        version = header.get("format_version") if isinstance(header, dict) else None
        raise CheckpointError(
            f"{path}: format version {version!r}, this modelmon reads {FORMAT_VERSION}"
        )
    payload = data[start + hlen :]
    if len(payload) != header.get("payload_bytes"):
        raise CheckpointError(
            f"{path}: truncated ({len(payload)} of {header.get('payload_bytes')} payload bytes)"
        )
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CheckpointError(f"{path}: checksum mismatch (corrupted)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = orjson.loads(arrays.pop(_META).tobytes())
    except (ValueError, KeyError, OSError, orjson.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable payload: {exc}") from exc
    return Checkpoint(meta, arrays, float(header.get("created_at", 0.0)))
