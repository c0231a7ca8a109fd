"""Checkpoint files: exact round trip, and every kind of damage refused whole."""

from __future__ import annotations

import hashlib
import io
import struct
import tracemalloc
import zipfile
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


# --- crafted files: a valid checksum is no defence (anyone can compute one) -----------------


def _signed(path: Path, payload: bytes, **header: object) -> None:
    fields = {
        "format_version": 1,
        "created_at": 1.0,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload_bytes": len(payload),
        **header,
    }
    raw = orjson.dumps(fields)
    path.write_bytes(MAGIC + struct.pack(">I", len(raw)) + raw + payload)


def _npz(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _npy_declaring(shape: tuple[int, ...], dtype: str, body: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + body


META_NPY = _npy(np.frombuffer(b"{}", dtype=np.uint8))


def test_a_header_declaring_ten_gib_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "c.mmc"
    _signed(path, b"x" * 100, payload_bytes=10 * 1024**3)
    with pytest.raises(CheckpointError, match=r"over the \d+-byte limit"):
        read_checkpoint(path)


def test_a_payload_size_other_than_the_files_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.mmc"
    _signed(path, b"x" * 100, payload_bytes=1000)
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(path)
    _signed(path, b"x" * 100, payload_bytes=10)
    with pytest.raises(CheckpointError, match="90 bytes after the declared payload"):
        read_checkpoint(path)


@pytest.mark.parametrize("hlen", [2**32 - 1, 65 * 1024])
def test_a_header_length_beyond_any_header_is_refused(tmp_path: Path, hlen: int) -> None:
    path = tmp_path / "c.mmc"
    path.write_bytes(MAGIC + struct.pack(">I", hlen) + b"{}")
    with pytest.raises(CheckpointError, match="damaged header"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    "field", [{"payload_bytes": "100"}, {"payload_bytes": True}, {"created_at": "now"}]
)
def test_header_fields_of_the_wrong_type_are_refused(tmp_path: Path, field: dict) -> None:
    path = tmp_path / "c.mmc"
    _signed(path, _npz({"__meta__.npy": META_NPY}), **field)
    with pytest.raises(CheckpointError, match="damaged header"):
        read_checkpoint(path)


def test_an_absurd_array_shape_is_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    path = tmp_path / "c.mmc"
    huge = _npy_declaring((10**8,), "<f8", b"\0" * 64)  # 800 MB declared, 64 bytes held
    _signed(path, _npz({"__meta__.npy": META_NPY, "x.npy": huge}))
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"declares shape \(100000000,\)"):
            read_checkpoint(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024**2


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"x.npy": _npy(np.array([{"a": 1}], dtype=object))}, "dtype object"),
        ({"x.npy": _npy(np.array(["text"]))}, "not a plain number"),
        ({"x.npy": _npy(np.zeros(2, dtype=[("a", "<i4")]))}, "not a plain number"),
        ({"x.npy": _npy_declaring((-2, -4), "<i1", b"\0" * 8)}, "declares shape"),
        ({"x": _npy(np.zeros(2))}, "unexpected or repeated member"),
        ({"x.npy": b"not an npy file at all"}, "unreadable"),
    ],
)
def test_members_a_checkpoint_never_writes_are_refused(
    tmp_path: Path, members: dict[str, bytes], reason: str
) -> None:
    path = tmp_path / "c.mmc"
    _signed(path, _npz({"__meta__.npy": META_NPY, **members}))
    with pytest.raises(CheckpointError, match=reason):
        read_checkpoint(path)


def test_a_compressed_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.mmc"
    _signed(path, _npz({"__meta__.npy": META_NPY}, compression=zipfile.ZIP_DEFLATED))
    with pytest.raises(CheckpointError, match="compressed"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_npy(np.zeros(3)), "not an npz archive"),
        (b"PK\x03\x04" + bytes(40), "not an npz archive"),
        (_npz({}), "no __meta__"),
        (_npz({"__meta__.npy": _npy(np.frombuffer(b"[1]", dtype=np.uint8))}), "not a JSON object"),
        (_npz({"__meta__.npy": _npy(np.frombuffer(b"[" * 2000, dtype=np.uint8))}), "unreadable"),
    ],
)
def test_payloads_that_are_not_a_checkpoints_are_refused(
    tmp_path: Path, payload: bytes, reason: str
) -> None:
    path = tmp_path / "c.mmc"
    _signed(path, payload)
    with pytest.raises(CheckpointError, match=reason):
        read_checkpoint(path)


def test_a_directory_is_refused_as_unreadable(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot read"):
        read_checkpoint(tmp_path)
