"""Ids → the 64-bit keys the label join stores, and the keys of the previous versions.

The join keys a prediction by a hash of its id, and the keys are persisted (the checkpoint's
join columns, the state topic's ``J`` journal and ``S`` early labels), so the hash is part of
the state format. Since issue 12 it is xxh3-64 (``xxhash``: fast, non-cryptographic, stable
across processes and platforms) of the id's UTF-8 bytes; before, blake2b with an 8-byte digest,
read little-endian. Nothing here needs a cryptographic hash: an id is not a secret, and a
collision (about n²/2⁶⁵ for n ids held) only makes one prediction look like another.

Migration: a join restored from state written before the change still holds blake2b keys. It
says so (:attr:`monitor.state.join.LabelJoin.legacy`) and, until the last of those rows and
early labels has expired, looks an id up under both hashes (:class:`IdKeys` carries both); new
rows are keyed by xxh3-64 from the start. So a label arriving after the upgrade still joins
the prediction made before it, and the blake2b cost ends one ``label_ttl`` after the upgrade.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from xxhash import xxh3_64_intdigest

from monitor.state import restore_checks as checks

KeyArray = npt.NDArray[np.uint64]
#: The hash of the keys this version writes, as the state names it (``"hash"``).
ID_HASH = "xxh3_64"
#: The hash of state that names none: written before issue 12.
LEGACY_HASH = "blake2b"


def id_keys(ids: Iterable[str]) -> KeyArray:
    """xxh3-64 of each id's UTF-8 bytes: stable across processes (unlike ``hash``).

    ``map`` into ``np.fromiter`` with the count known: the fastest of the forms measured on
    a poll batch (about 65 ns an id; a list into ``np.array`` or a generator expression are
    15-20 % slower; blake2b was about 600). xxhash takes bytes only, hence the encode.

    >>> id_keys(["a", "a", "b"]).tolist()[0] == id_keys(["a"]).tolist()[0]
    True
    """
    count = len(ids) if isinstance(ids, Sized) else -1
    return np.fromiter(map(xxh3_64_intdigest, map(str.encode, ids)), np.uint64, count=count)


def blake2b_keys(ids: Iterable[str]) -> KeyArray:
    """The keys of state written before issue 12: blake2b-64 of the UTF-8 bytes, little-endian.

    >>> blake2b_keys(["a"]).tolist()
    [3405396810240292928]
    """
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little")
            for i in ids
        ),
        dtype=np.uint64,
    )


@dataclass(frozen=True)
class IdKeys:
    """A batch's id keys and, while the join still holds blake2b keys, the same ids' blake2b
    keys (``legacy``); indexed by a row mask like the batch itself."""

    keys: KeyArray
    legacy: KeyArray | None = None

    def __getitem__(self, rows: npt.NDArray[np.bool_]) -> IdKeys:
        return IdKeys(self.keys[rows], None if self.legacy is None else self.legacy[rows])

    @classmethod
    def of(cls, ids: list[str], legacy: bool) -> IdKeys:
        """Keys of ``ids``; their blake2b keys too if ``legacy``."""
        return cls(id_keys(ids), blake2b_keys(ids) if legacy else None)


def legacy_bound(
    meta: dict[str, Any],
    prefix: str,
    alive_ts: npt.NDArray[np.float64],
    early: dict[int, tuple[float, float]],
) -> float | None:
    """:attr:`monitor.state.join.LabelJoin.legacy` of a restored join (``meta``, its
    ``alive_ts`` rows, its ``early`` labels); raises ValueError for a hash not known."""
    name = meta.get("hash", LEGACY_HASH)
    if name == LEGACY_HASH:  # before issue 12: every row and early label
        times = [t for _, t in early.values()]
        if alive_ts.size:
            times.append(float(alive_ts.max()))
        return max(times, default=None)
    if name != ID_HASH:
        raise ValueError(f"checkpoint {prefix}: id hash {name!r:.40} is not known")
    bound = meta.get(LEGACY_HASH)
    return None if bound is None else checks.number(bound, f"{prefix} blake2b bound")
