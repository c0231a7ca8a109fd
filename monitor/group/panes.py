"""A partition's windows as one record per pane, so a flush publishes only the panes that moved.

A window of a busy partition is tens of panes of thousands of counters each (a 1 h window of
1 min panes over 20 features is about 4 MB); what changes between two flushes is the newest
pane (and the panes whose predictions met their labels). So the ``S`` record lists each live
pane with the digest of its content, and each pane's content travels in its own record,
``W/<partition>/<model>/<window>/<pane>`` (counts, performance accumulator, unseen values),
published when its digest changes and tombstoned when it slides out. A reader rebuilds a
model's windows by putting the listed panes back into the state's own checkpoint form, so
:meth:`~monitor.state.model_state.ModelState.load_state` checks them as it checks a file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from monitor.persistence.checkpoint import pack, unpack
from monitor.state import restore_checks as checks
from monitor.state.window import EMPTY_PANE

#: (key, digest) → that pane record's value, or None if it is not known.
PaneLookup = Callable[[bytes, str], bytes | None]


def pane_key(partition: int, model: str, window: str, pane_id: int) -> bytes:
    return f"W/{partition}/{model}/{window}/{pane_id}".encode()


def parse_pane_key(key: bytes | None) -> tuple[int, str, str, int] | None:
    """``(partition, model, window, pane)`` of a ``W`` key (a model name may hold ``/``)."""
    try:
        kind, partition, rest = (key or b"").decode("utf-8").split("/", 2)
        model, window, pane = rest.rsplit("/", 2)
        return (int(partition), model, window, int(pane)) if kind == "W" else None
    except (UnicodeDecodeError, ValueError):
        return None


def _digest(meta: dict[str, Any], counts: npt.NDArray[Any] | None) -> str:
    """Of a pane's content (not of its record: a zip archive stamps the time it was made)."""
    h = hashlib.blake2b(orjson.dumps(meta, option=orjson.OPT_SORT_KEYS), digest_size=16)
    if counts is not None:
        h.update(np.ascontiguousarray(counts, dtype=np.int32).tobytes())
    return h.hexdigest()


def digest(value: bytes) -> str:
    """The content digest of a pane record's value (ValueError/CheckpointError if malformed)."""
    meta, arrays = unpack(value, "pane record")
    return _digest(meta, arrays.get("counts"))


#: Counts travel in the narrowest of these that holds the pane's largest: most cells of most
#: panes count under 256 events, so a pane record is a quarter of its int32 size.
_NARROW = (np.uint8, np.uint16, np.int32)


def _narrow(counts: npt.NDArray[np.int32]) -> npt.NDArray[Any]:
    top = int(counts.max(initial=0))
    kind = next(t for t in _NARROW if top <= np.iinfo(t).max)
    return counts.astype(kind)


def _widen(arrays: dict[str, npt.NDArray[Any]], width: int) -> npt.NDArray[np.int32]:
    found = arrays["counts"]
    if found.dtype not in {np.dtype(t) for t in _NARROW}:
        raise ValueError(f"pane counts are {found.dtype}, not one of uint8, uint16, int32")
    return checks.array(arrays, "counts", found.dtype.type, (width,)).astype(np.int32)


def split_windows(
    meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]], prefix: str
) -> dict[str, dict[int, tuple[str, bytes]]]:
    """Take one model's panes out of its ``to_state`` (``meta``, ``arrays`` are changed:
    windows keep their shape and head only); returns ``{window: {pane id: (digest, record
    value)}}``."""
    out: dict[str, dict[int, tuple[str, bytes]]] = {}
    rings = meta["perf"]["rings"]
    for window in meta["windows"]:
        slots = arrays.pop(f"{prefix}.w.{window}.slots")
        ids = arrays.pop(f"{prefix}.w.{window}.pane_ids")
        rows = {int(ids[r]): r for r in np.flatnonzero(ids != EMPTY_PANE).tolist()}
        accs = {int(pid): acc for pid, acc in rings[window]["panes"]}
        unseen = {int(pid): sk for pid, sk in meta["unseen"].get(window, [])}
        rings[window]["panes"], meta["unseen"][window] = [], []
        panes = {}
        for pid in sorted(rows.keys() | accs.keys() | unseen.keys()):
            counts = slots[rows[pid]] if pid in rows else None
            pane_meta = {"acc": accs.get(pid), "unseen": unseen.get(pid)}
            value = pack(pane_meta, {} if counts is None else {"counts": _narrow(counts)})
            panes[pid] = (_digest(pane_meta, counts), value)
        out[window] = panes
    return out


def join_windows(
    meta: dict[str, Any],
    arrays: dict[str, npt.NDArray[Any]],
    prefix: str,
    listing: object,
    lookup: PaneLookup,
    where: Callable[[str, int], bytes],
) -> None:
    """Put the panes ``listing`` names (``{window: {pane id: digest}}``) back into one model's
    state form; ``where(window, pane)`` is a pane's key. Raises ValueError if one is missing
    or malformed (the state's own ``load_state`` checks the rest)."""
    listing = checks.mapping(listing, "shard panes")
    windows = checks.mapping(meta.get("windows"), "shard windows")
    rings = checks.mapping(checks.mapping(meta.get("perf"), "perf").get("rings"), "perf rings")
    unseen = checks.mapping(meta.get("unseen", {}), "unseen")
    for window, shape in windows.items():
        shape = checks.mapping(shape, f"window {window}")
        n = checks.integer(shape.get("n_panes"), "n_panes", 1, 1_000_000)
        width = checks.integer(shape.get("width"), "width", 0, 100_000_000)
        slots = np.zeros((n, width), np.int32)
        ids = np.full(n, EMPTY_PANE, np.int64)
        accs: list[list[Any]] = []
        sketches: list[list[Any]] = []
        listed = checks.mapping(listing.get(window, {}), f"panes of {window}")
        if len(listed) > n:
            raise ValueError(f"window {window}: {len(listed)} panes listed for {n} slots")
        for raw_id, want in listed.items():
            pid = checks.integer(int(raw_id) if raw_id.lstrip("-").isdigit() else None, "pane")
            value = lookup(where(window, pid), checks.text(want, "pane digest"))
            if value is None:
                raise ValueError(f"window {window}: the record of pane {pid} is missing")
            pane_meta, pane_arrays = unpack(value, f"pane {pid}")
            if "counts" in pane_arrays:
                slots[pid % n] = _widen(pane_arrays, width)
                ids[pid % n] = pid
            if pane_meta.get("acc") is not None:
                accs.append([pid, pane_meta["acc"]])
            if pane_meta.get("unseen") is not None:
                sketches.append([pid, pane_meta["unseen"]])
        arrays[f"{prefix}.w.{window}.slots"] = slots
        arrays[f"{prefix}.w.{window}.pane_ids"] = ids
        checks.mapping(rings.get(window), f"ring {window}")["panes"] = accs
        unseen[window] = sketches
    meta["unseen"] = unseen
