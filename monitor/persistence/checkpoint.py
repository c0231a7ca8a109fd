"""Checkpoint files: all state plus the Kafka offsets it covers, written atomically.

Layout: ``MAGIC`` (8 bytes), a 4-byte big-endian header length, a JSON header
(``format_version``, ``created_at``, ``payload_sha256``, ``payload_bytes``), then the payload: an
uncompressed ``.npz`` archive holding every numpy array by name plus ``__meta__``, the JSON of
everything else. A write goes to a temporary file in the same directory, is fsynced, renamed
over the old checkpoint and the directory fsynced, so a crash leaves either the old or the new
checkpoint, never half of one. A reader that finds anything wrong (truncation, a flipped bit, an
unknown version) raises :class:`CheckpointError` and applies nothing. The file is input, not
trusted: sizes it declares are checked before anything is allocated from them (the payload's
against the file and :data:`MAX_PAYLOAD_BYTES`, each array's by :mod:`monitor.persistence.npz`);
the parts' own ``load_state`` methods check what the arrays and ``__meta__`` hold.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
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
from monitor.persistence.npz import PayloadError, read_arrays

MAGIC = b"MMCKPT\x00\x01"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024  # the header is four short fields
#: Payloads declared larger are refused unread: a bound on what one read may allocate, far
#: above any real state (a model with a million pending label joins checkpoints about 40 MB).
MAX_PAYLOAD_BYTES = 4 * 1024**3
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
    payload = pack(meta, arrays)
    header = orjson.dumps(
        {
            "format_version": FORMAT_VERSION,
            "created_at": time.time(),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "payload_bytes": len(payload),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # No secrets inside (windows, policy state, offsets): the umask decides who may read it.
    atomic_write(path, MAGIC + struct.pack(">I", len(header)) + header + payload, private=False)
    return len(MAGIC) + 4 + len(header) + len(payload)


def pack(meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """``meta`` (JSON) and ``arrays`` as one uncompressed ``.npz`` payload."""
    buf = io.BytesIO()
    meta_bytes = orjson.dumps(meta, option=orjson.OPT_SERIALIZE_NUMPY)
    named: dict[str, Any] = {_META: np.frombuffer(meta_bytes, dtype=np.uint8), **arrays}
    np.savez(buf, **named)
    return buf.getvalue()


def unpack(payload: bytes, where: str) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """The ``(meta, arrays)`` of a :func:`pack` payload; raises :class:`CheckpointError`.

    Treated as input: array shapes are checked against their bytes before any allocation.
    """
    try:
        arrays = read_arrays(payload, where)
    except PayloadError as exc:
        raise CheckpointError(str(exc)) from None
    meta_bytes = arrays.pop(_META, None)
    if meta_bytes is None or meta_bytes.dtype != np.uint8 or meta_bytes.ndim != 1:
        raise CheckpointError(f"{where}: no {_META} in the payload")
    try:
        meta = orjson.loads(meta_bytes.tobytes())
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"{where}: unreadable {_META}: {exc}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: {_META} is not a JSON object")
    return meta, arrays


def read_checkpoint(path: Path, max_bytes: int = MAX_PAYLOAD_BYTES) -> Checkpoint:
    """Read and verify a checkpoint; raises :class:`CheckpointError` (never half-reads).

    Nothing is allocated from a size the file declares until the declaration has been checked
    against the file's real size and ``max_bytes``, and every array's declared shape and dtype
    against the bytes that hold it (the checksum is no defence: anyone can compute one).
    """
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(len(MAGIC) + 4)
            if len(head) < len(MAGIC) + 4 or not head.startswith(MAGIC):
                raise CheckpointError(f"{path}: not a modelmon checkpoint (bad magic)")
            (hlen,) = struct.unpack(">I", head[len(MAGIC) :])
            if hlen > MAX_HEADER_BYTES:
                raise CheckpointError(f"{path}: damaged header (declares {hlen} bytes)")
            header = _header(path, f.read(hlen))
            declared = header["payload_bytes"]
            actual = size - len(head) - hlen
            if declared > max_bytes:
                raise CheckpointError(
                    f"{path}: declares a {declared}-byte payload, over the {max_bytes}-byte limit"
                )
            if actual != declared:
                raise CheckpointError(
                    f"{path}: truncated ({actual} of {declared} payload bytes)"
                    if actual < declared
                    else f"{path}: {actual - declared} bytes after the declared payload"
                )
            payload = f.read(declared)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(payload) != declared:
        raise CheckpointError(f"{path}: changed while being read")
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch (corrupted)")
    meta, arrays = unpack(payload, f"{path}")
    return Checkpoint(meta, arrays, header["created_at"])


def _header(path: Path, raw: bytes) -> dict[str, Any]:
    """The parsed header, every field of the type this module writes."""
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: damaged header") from exc
    version = header.get("format_version") if isinstance(header, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version!r}, this modelmon reads {FORMAT_VERSION}"
        )
    size, digest, created = (
        header.get(k) for k in ("payload_bytes", "payload_sha256", "created_at")
    )
    if (
        type(size) is not int
        or size < 0
        or not isinstance(digest, str)
        or type(created) not in (int, float)
        or not math.isfinite(created)
    ):
        raise CheckpointError(f"{path}: damaged header (fields of the wrong type)")
    return {"payload_bytes": size, "payload_sha256": digest, "created_at": float(created)}
