"""Reading the ``.npz`` payload of a checkpoint without trusting what it declares.

``np.load`` allocates each array from the shape in its member header before reading a byte of
it, and a zip member can declare any shape; here every member's header is read first and the
array is built only if its shape and dtype account for exactly the bytes the member holds.
Only plain numeric dtypes are accepted (never objects, so nothing is unpickled), only stored
(uncompressed) members as ``np.savez`` writes them, so nothing inflates beyond the payload.
"""

from __future__ import annotations

import io
import math
import zipfile
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_MEMBERS", "PayloadError", "read_arrays"]

MAX_MEMBERS: Final = 100_000
_NUMERIC_KINDS: Final = frozenset("biuf")  # bool, signed, unsigned, float
_SUFFIX: Final = ".npy"


class PayloadError(ValueError):
    """The payload is not an archive of numeric arrays as a checkpoint writes them."""


def read_arrays(payload: bytes, where: str) -> dict[str, npt.NDArray[Any]]:
    """Every array in an uncompressed ``.npz`` archive, by name; raises :class:`PayloadError`.

    >>> buf = io.BytesIO()
    >>> np.savez(buf, a=np.arange(3, dtype=np.int64))
    >>> read_arrays(buf.getvalue(), "x")["a"].tolist()
    [0, 1, 2]
    >>> read_arrays(b"PK\\x05\\x06" + bytes(18), "x")
    {}
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except Exception as exc:  # BadZipFile, but also NotImplementedError on a crafted version
        raise PayloadError(f"{where}: the payload is not an npz archive ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise PayloadError(f"{where}: {len(members)} arrays, more than {MAX_MEMBERS}")
        arrays: dict[str, npt.NDArray[Any]] = {}
        for info in members:
            name = info.filename.removesuffix(_SUFFIX)
            if name == info.filename or name in arrays:
                raise PayloadError(f"{where}: unexpected or repeated member {info.filename!r}")
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise PayloadError(f"{where}: member {name!r} is compressed or encrypted")
            if info.file_size > len(payload):
                raise PayloadError(f"{where}: member {name!r} is larger than the payload")
            try:
                with archive.open(info) as member:
                    arrays[name] = _read_member(member, info.file_size, name, where)
            except PayloadError:
                raise
            except Exception as exc:  # zipfile and numpy raise many types on crafted bytes
                raise PayloadError(f"{where}: member {name!r} unreadable ({exc})") from None
    return arrays


def _read_member(member: IO[bytes], size: int, name: str, where: str) -> npt.NDArray[Any]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise PayloadError(f"{where}: member {name!r} has npy format {version}")
    if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject or dtype.subdtype is not None:
        raise PayloadError(f"{where}: member {name!r} has dtype {dtype}, not a plain number")
    if any(d < 0 for d in shape):
        raise PayloadError(f"{where}: member {name!r} declares shape {shape}")
    count = math.prod(shape)  # Python ints: no overflow, whatever the header declares
    data_bytes = size - member.tell()
    if count * dtype.itemsize != data_bytes:
        raise PayloadError(
            f"{where}: member {name!r} declares shape {shape} of {dtype} "
            f"({count * dtype.itemsize} bytes) but holds {data_bytes}"
        )
    flat = np.empty(count, dtype=dtype)
    if not isinstance(member, io.BufferedIOBase):  # zip members are; keeps readinto typed
        raise PayloadError(f"{where}: member {name!r} cannot be read")
    if member.readinto(flat.view(np.uint8).data) != data_bytes:
        raise PayloadError(f"{where}: member {name!r} is shorter than its header says")
    return flat.reshape(shape, order="F" if fortran else "C")
