"""The internal state topic's records: a partition's state, its join journal, the policy.

Keys (one topic partition, so every record keeps its order):

* ``S/<partition>``: every model's state of that input partition (windows, event time,
  versions, early labels) and the input offsets it covers, without the join's rows;
* ``J/<partition>/<seq>``: the join rows inserted and the keys joined since the previous flush
  (see :mod:`monitor.state.join_journal`), or every row (a *base*, every
  :data:`BASE_EVERY` flushes, after which the older ones are deleted by tombstones); an ``S``
  record names the last ``seq`` it includes;
* ``W/<partition>/<model>/<window>/<pane>``: one pane of a window (see
  :mod:`monitor.group.panes`), published when it changed; the ``S`` record lists the live
  panes with the digest of their content;
* ``P``: the acting replica's policy state and the webhooks it has not yet delivered.

Values are :func:`monitor.persistence.checkpoint.pack` payloads, read as untrusted input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.events import Offsets
from monitor.group.panes import (
    PaneLookup,
    join_windows,
    pane_key,
    parse_pane_key,
    split_windows,
)
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
    if (pane := parse_pane_key(key)) is not None:
        return "W", pane[0], 0
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


@dataclass(frozen=True)
class Encoded:
    """A partition's ``S`` record and the value of every live pane's ``W`` record."""

    shard: bytes
    panes: dict[bytes, bytes]
    digests: dict[bytes, str]  # of each pane's content: what changed since the last flush


def encode_shard(
    partition: int,
    states: Mapping[str, ModelState],
    offsets: Offsets,
    seq: int,
    owner: str,
    caught_up: bool = True,
) -> Encoded:
    """One input partition's state (call under the ingest lock: it reads live arrays).

    ``caught_up``: whether its owner had read the input to its end (the acting replica holds
    the policy while any partition is still replaying a backlog)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    models: dict[str, Any] = {}
    panes: dict[bytes, bytes] = {}
    digests: dict[bytes, str] = {}
    for name, st in states.items():
        model = st.to_state(arrays, f"m.{name}")
        listing: dict[str, dict[str, str]] = {}
        for window, values in split_windows(model, arrays, f"m.{name}").items():
            listing[window] = {str(pid): d for pid, (d, _) in values.items()}
            for pid, (d, v) in values.items():
                panes[pane_key(partition, name, window, pid)] = v
                digests[pane_key(partition, name, window, pid)] = d
        model["panes"] = listing
        models[name] = model
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
    return Encoded(pack(meta, arrays), panes, digests)


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


def listed(raw: bytes) -> tuple[int, dict[bytes, str]]:
    """An ``S`` record's journal seq and the pane records it lists: ``{key: digest}``."""
    meta, _ = unpack(raw, "shard record")
    part = checks.integer(meta.get("partition"), "shard partition", minimum=0)
    out: dict[bytes, str] = {}
    for name, model in checks.mapping(meta.get("models"), "shard models").items():
        panes = checks.mapping(checks.mapping(model, "shard model").get("panes", {}), "panes")
        for window, listing in panes.items():
            for pid, d in checks.mapping(listing, "pane listing").items():
                out[pane_key(part, name, window, checks.integer(int(pid), "pane"))] = str(d)
    return checks.integer(meta.get("journal"), "shard journal seq", minimum=0), out


def decode_shard(
    raw: bytes,
    templates: Mapping[str, ModelState],
    journals: Iterable[dict[str, dict[str, Any]]] = (),
    lookup: PaneLookup = lambda key, digest: None,
) -> Shard:
    """Rebuild a partition's states from its ``S`` record, the pane records it lists
    (``lookup``) and, for a new owner, its join from the journal records up to the record's
    ``seq``, oldest first. ``templates`` give each model's config and reference. Raises
    ValueError/CheckpointError if it does not fit."""
    meta, arrays = unpack(raw, "shard record")
    part = checks.integer(meta.get("partition"), "shard partition", minimum=0)
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
            model = checks.mapping(models[name], f"shard model {name}")
            join_windows(
                model,
                arrays,
                f"m.{name}",
                model.get("panes", {}),
                lookup,
                partial(pane_key, part, name),
            )
            st.load_state(model, arrays, f"m.{name}")
        states[name] = st
    offsets: Offsets = {}
    for row in checks.sequence(meta.get("offsets"), "shard offsets"):
        topic, partition, offset = checks.sequence(row, "shard offset", max_len=3)
        key = (checks.text(topic, "topic"), checks.integer(partition, "partition", minimum=0))
        offsets[key] = checks.integer(offset, "offset", minimum=0)
    return Shard(
        partition=part,
        seq=checks.integer(meta.get("journal"), "shard journal seq", minimum=0),
        owner=checks.text(meta.get("owner"), "shard owner"),
        offsets=offsets,
        states=states,
        caught_up=meta.get("caught_up", True) is True,
    )
