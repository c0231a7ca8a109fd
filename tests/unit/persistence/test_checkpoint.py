"""Checkpoint files: exact round trip, and every kind of damage refused whole."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import orjson
import pytest

from monitor.persistence.checkpoint import MAGIC, CheckpointError, read_checkpoint, write_checkpoint

META = {
    "models": {"fraud": {"head": 7, "early": [["18446744073709551615", 1.0, 2.5]]}},
    "offsets": [["predictions", 0, 1200]],
}
ARRAYS = {
    "m.fraud.w.1m.slots": np.arange(12, dtype=np.int32).reshape(3, 4),
    "m.fraud.join.keys": np.array([1, 2**64 - 1], dtype=np.uint64),
    "m.fraud.join.proba": np.zeros((0, 3), dtype=np.float32),
}


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "checkpoint.mmc"
    write_checkpoint(path, META, ARRAYS)
    return path


def test_round_trip_is_exact(saved: Path) -> None:
    ckpt = read_checkpoint(saved)
    assert ckpt.meta == META
    assert set(ckpt.arrays) == set(ARRAYS)
    for name, array in ARRAYS.items():
        assert ckpt.arrays[name].dtype == array.dtype
        assert ckpt.arrays[name].shape == array.shape
        assert (ckpt.arrays[name] == array).all()
    assert ckpt.created_at > 0


def test_rewrite_replaces_and_leaves_no_temporary_files(saved: Path) -> None:
    write_checkpoint(saved, {**META, "offsets": []}, ARRAYS)
    assert read_checkpoint(saved).meta["offsets"] == []
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


@pytest.mark.parametrize("keep", [0, 5, 12, 200, -1])
def test_truncated_is_refused(saved: Path, keep: int) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[:keep] if keep >= 0 else data[:-1])
    with pytest.raises(CheckpointError):
        read_checkpoint(saved)


def test_every_flipped_bit_in_the_payload_is_caught(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    (hlen,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4 + hlen
    for pos in range(start, len(data), max(1, (len(data) - start) // 50)):
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        saved.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError, match="checksum"):
            read_checkpoint(saved)


def test_other_format_version_is_refused_with_a_clear_message(saved: Path) -> None:
    data = saved.read_bytes()
    (hlen,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    header = orjson.loads(data[len(MAGIC) + 4 : len(MAGIC) + 4 + hlen])
    header["format_version"] = 99
    new = orjson.dumps(header)
    saved.write_bytes(MAGIC + struct.pack(">I", len(new)) + new + data[len(MAGIC) + 4 + hlen :])
    with pytest.raises(CheckpointError, match="format version 99"):
        read_checkpoint(saved)


def test_not_a_checkpoint_and_missing_file(tmp_path: Path) -> None:
    other = tmp_path / "x.mmc"
    other.write_bytes(b"PK\x03\x04 something else entirely")
    with pytest.raises(CheckpointError, match="bad magic"):
        read_checkpoint(other)
    with pytest.raises(CheckpointError, match="cannot read"):
        read_checkpoint(tmp_path / "absent.mmc")
