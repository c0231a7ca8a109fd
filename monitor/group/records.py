"""The internal state topic's records: a partition's state, its join journal, the policy.

Keys (one topic partition, so every record keeps its order):

* ``S/<partition>``: every model's state of that input partition (windows, event time,
  versions, early labels) and the input offsets it covers, without the join's rows;
* ``J/<partition>/<seq>``: the join rows inserted and the keys joined since the previous flush
  (see :mod:`monitor.state.join_journal`), or every row (a *base*, every
  :data:`BASE_EVERY` flushes, after which the older ones are deleted by tombstones); an ``S``
  record names the last ``seq`` it includes;
* ``P``: the acting replica's policy state.

Values are :func:`monitor.persistence.checkpoint.pack` payloads, read as untrusted input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.events import Offsets
from monitor.persistence.checkpoint import pack, unpack
from monitor.state import restore_checks as checks
from monitor.state.join_journal import COLUMNS, fold
from monitor.state.model_state import ModelState

POLICY_KEY = b"P"
#: Every this many flushes of a partition, its journal record holds the whole join (a base), so
#: a new owner folds at most this many records (at 5 s a flush: ten minutes of them).
BASE_EVERY = 120
_JOIN = ".perf.join."


def shard_key(partition: int) -> bytes:
    return f"S/{partition}".encode()


def journal_key(partition: int, seq: int) -> bytes:
    return f"J/{partition}/{seq:016d}".encode()


def parse_key(key: bytes | None) -> tuple[str, int, int]:
    """``(kind, partition, seq)``; kind ``"?"`` for a key this version does not write."""
    try:
        parts = (key or b"").decode("ascii").split("/")
        if parts[0] == "S" and len(parts) == 2:
            return "S", int(parts[1]), 0
        if parts[0] == "J" and len(parts) == 3:
            return "J", int(parts[1]), int(parts[2])
        if parts == ["P"]:
            return "P", -1, 0
    except (UnicodeDecodeError, ValueError):
        pass
    return "?", -1, 0


def encode_shard(
    partition: int,
    states: Mapping[str, ModelState],
    offsets: Offsets,
    seq: int,
    owner: str,
    caught_up: bool = True,
) -> bytes:
    """One input partition's state (call under the ingest lock: it reads live arrays).

    ``caught_up``: whether its owner had read the input to its end (the acting replica holds
    the policy while any partition is still replaying a backlog)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    models = {name: st.to_state(arrays, f"m.{name}") for name, st in states.items()}
    # The join's rows travel in the journal records, not in every flush.
    arrays = {k: v for k, v in arrays.items() if _JOIN not in k}
    meta = {
        "partition": partition,
        "journal": seq,
        "owner": owner,
        "caught_up": caught_up,
        "offsets": [[t, p, o] for (t, p), o in sorted(offsets.items())],
        "models": models,
    }
    return pack(meta, arrays)


def encode_journal(
    partition: int, seq: int, taken: Mapping[str, dict[str, Any]], base: bool = False
) -> bytes:
    arrays = {f"m.{name}.{col}": a for name, cols in taken.items() for col, a in cols.items()}
    meta = {"partition": partition, "seq": seq, "base": base, "models": sorted(taken)}
    return pack(meta, arrays)


def base_rows(states: Mapping[str, ModelState]) -> dict[str, dict[str, Any]]:
    """Every model's whole join, as a journal entry that a fold can start from."""
    out: dict[str, dict[str, Any]] = {}
    for name, st in states.items():
        arrays: dict[str, npt.NDArray[Any]] = {}
        st.perf.join.to_state(arrays, "j")
        out[name] = {col: arrays[f"j.{col}"].copy() for col in COLUMNS}
        out[name]["joined"] = np.zeros(0, np.uint64)
    return out


def is_base(raw: bytes) -> bool:
    """Whether a journal record holds the whole join (raises like :func:`decode_journal`)."""
    meta, _ = unpack(raw, "journal record")
    return meta.get("base") is True


def decode_journal(raw: bytes, widths: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Per model, the journal's columns; raises ValueError/CheckpointError if malformed."""
    meta, arrays = unpack(raw, "journal record")
    out: dict[str, dict[str, Any]] = {}
    for raw_name in checks.sequence(meta.get("models"), "journal models"):
        name = checks.text(raw_name, "journal model")
        if name not in widths:
            continue  # a model no longer configured
        n = _length(arrays, f"m.{name}.keys")
        cols = {
            "keys": checks.array(arrays, f"m.{name}.keys", np.uint64, (n,)),
            "ts": checks.array(arrays, f"m.{name}.ts", np.float64, (n,)),
            "pred": checks.array(arrays, f"m.{name}.pred", np.float64, (n,)),
            "proba": checks.array(arrays, f"m.{name}.proba", np.float32, (n, widths[name])),
            "state": checks.array(arrays, f"m.{name}.state", np.uint8, (n,)),
        }
        j = _length(arrays, f"m.{name}.joined")
        cols["joined"] = checks.array(arrays, f"m.{name}.joined", np.uint64, (j,))
        out[name] = cols
    return out


def _length(arrays: Mapping[str, npt.NDArray[Any]], name: str) -> int:
    """The length of column ``name`` (0 if it is no column: its check then refuses it)."""
    found = arrays.get(name)
    return found.shape[0] if found is not None and found.ndim == 1 else 0


@dataclass(frozen=True)
class Shard:
    """A decoded ``S`` record."""

    partition: int
    seq: int
    owner: str
    offsets: Offsets
    states: dict[str, ModelState]
    caught_up: bool = True


def decode_shard(
    raw: bytes,
    templates: Mapping[str, ModelState],
    journals: Iterable[dict[str, dict[str, Any]]] = (),
) -> Shard:
    """Rebuild a partition's states from its ``S`` record (and, for a new owner, its join from
    the journal records up to the record's ``seq``, oldest first). ``templates`` give each
    model's config and reference. Raises ValueError/CheckpointError if it does not fit."""
    meta, arrays = unpack(raw, "shard record")
    models = checks.mapping(meta.get("models"), "shard models")
    entries: dict[str, list[dict[str, Any]]] = {name: [] for name in templates}
    for journal in journals:
        for name, cols in journal.items():
            if name in entries:
                entries[name].append(cols)
    states: dict[str, ModelState] = {}
    for name, template in templates.items():
        st = ModelState(template.cfg, template.reference)
        if name in models:
            width = st.perf.join.proba_width
            rows = fold(entries[name], width)
            for col in COLUMNS:
                arrays[f"m.{name}{_JOIN}{col}"] = rows[col]
            st.load_state(models[name], arrays, f"m.{name}")
        states[name] = st
    offsets: Offsets = {}
    for row in checks.sequence(meta.get("offsets"), "shard offsets"):
        topic, partition, offset = checks.sequence(row, "shard offset", max_len=3)
        key = (checks.text(topic, "topic"), checks.integer(partition, "partition", minimum=0))
        offsets[key] = checks.integer(offset, "offset", minimum=0)
    return Shard(
        partition=checks.integer(meta.get("partition"), "shard partition", minimum=0),
        seq=checks.integer(meta.get("journal"), "shard journal seq", minimum=0),
        owner=checks.text(meta.get("owner"), "shard owner"),
        offsets=offsets,
        states=states,
        caught_up=meta.get("caught_up", True) is True,
    )
