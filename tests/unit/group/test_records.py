"""The state topic's records (issue 15): exact round trips, and a record is input.

A record is read by every replica and by the next owner of a partition: whatever bytes it
holds, decoding raises CheckpointError or ValueError (the coordinator then skips it), never
another exception, and never allocates from a size the record declares.
"""

from __future__ import annotations

import copy
import io
import random
import tracemalloc
import zipfile
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.events import Label
from monitor.group.records import (
    POLICY_KEY,
    decode_journal,
    decode_shard,
    encode_journal,
    encode_shard,
    journal_key,
    parse_key,
    shard_key,
)
from monitor.persistence.checkpoint import CheckpointError, pack, unpack
from monitor.state.join_journal import JoinJournal
from monitor.state.model_state import ModelState
from tests.support.crafted import DTYPES, JSON, SHAPES, json_paths
from tests.support.shards import CFG, REF, T0, label_of, stream

OFFSETS = {("predictions", 2): 51, ("labels", 2): 20}
WIDTHS = {"m": ModelState(CFG, REF).perf.join.proba_width}
Refused = (CheckpointError, ValueError)


def templates() -> dict[str, ModelState]:
    return {"m": ModelState(CFG, REF)}


def live_shard() -> tuple[ModelState, list[dict[str, Any]]]:
    """A partition's state fed over two flushes (early labels, joins, unseen values, two
    versions), and its journal takes."""
    state = ModelState(CFG, REF)
    state.perf.join.journal = JoinJournal(state.perf.join.proba_width)
    preds = sorted(stream(11, 120, 1500.0), key=lambda p: p.timestamp)  # none late
    state.add_labels([Label("never-predicted", "m", 1, T0 + 5.0)])  # stays an early label
    state.add_labels([label_of(p, 11) for p in preds[:5]])  # early: joined on insert
    state.add_predictions(preds[:60], 2)
    state.add_labels([label_of(p, 11) for p in preds[5:40]])
    takes = [state.perf.join.journal.take()]
    state.add_predictions(preds[60:], 2)
    state.add_labels([label_of(p, 11) for p in preds[60:90]])
    takes.append(state.perf.join.journal.take())
    return state, takes


def lookup_in(panes: dict[bytes, bytes]) -> Any:
    """A pane lookup over ``{key: value}`` (the latest value of each key, whatever digest)."""
    return lambda key, _digest: panes.get(key)


def _decode(raw: bytes, templates: Any, journals: Any = ()) -> Any:
    """decode_shard with the pane records encode_shard made for ``RAW`` (a test that crafts
    an S record keeps its pane listing, so the same panes serve)."""
    return decode_shard(raw, templates, journals, lookup_in(PANES))


LIVE, TAKES = live_shard()
ENCODED = encode_shard(2, {"m": LIVE}, OFFSETS, 2, "replica-a")
RAW, PANES = ENCODED.shard, ENCODED.panes
JOURNALS = [encode_journal(2, seq, {"m": t}) for seq, t in enumerate(TAKES, start=1)]


def test_a_shard_and_its_journals_round_trip_exactly() -> None:
    journals = [decode_journal(raw, WIDTHS) for raw in JOURNALS]
    shard = _decode(RAW, templates(), journals)
    assert (shard.partition, shard.seq, shard.owner, shard.offsets) == (2, 2, "replica-a", OFFSETS)
    got = shard.states["m"]
    for vg, vw in zip(got.views(), LIVE.views(), strict=True):
        assert (vg.name, vg.start, vg.end, vg.unseen) == (vw.name, vw.start, vw.end, vw.unseen)
        assert vg.total.tolist() == vw.total.tolist()
    for name in LIVE.perf.rings:
        assert got.perf.rings[name].to_state() == LIVE.perf.rings[name].to_state()
    assert got.clocks.newest == LIVE.clocks.newest
    assert got.versions.to_state() == LIVE.versions.to_state()
    join, want = got.perf.join, LIVE.perf.join
    assert join.early == want.early and len(join.early) == 1  # "never-predicted"
    assert join.pending() == want.pending() > 0
    want.to_state({}, "x")  # merges the insert buffer: rows comparable column by column
    for col in ("keys", "ts", "pred", "proba", "state"):
        assert np.array_equal(getattr(join, col), getattr(want, col)), col


def test_a_shard_without_its_journals_has_windows_but_no_join_rows() -> None:
    # Every replica reads the S records for the global windows; only a new owner folds the
    # journals (the join's rows never travel in an S record).
    shard = _decode(RAW, templates())
    assert [v.total.tolist() for v in shard.states["m"].views()] == [
        v.total.tolist() for v in LIVE.views()
    ]
    assert shard.states["m"].perf.join.pending() == 0
    _, arrays = unpack(RAW, "test")
    assert not [name for name in arrays if ".perf.join." in name]


def test_a_model_the_record_does_not_hold_starts_empty_and_one_not_configured_is_skipped() -> None:
    meta, arrays = unpack(RAW, "test")
    meta["models"] = {"gone": meta["models"]["m"]}
    shard = _decode(pack(meta, arrays), templates())
    assert set(shard.states) == {"m"}
    assert all(v.total.sum() == 0 for v in shard.states["m"].views())
    journal = decode_journal(encode_journal(2, 1, {"gone": TAKES[0]}), WIDTHS)
    assert journal == {}


# --- keys ----------------------------------------------------------------------------------


def test_keys_parse_back_to_what_wrote_them() -> None:
    assert parse_key(shard_key(0)) == ("S", 0, 0)
    assert parse_key(shard_key(123)) == ("S", 123, 0)
    assert parse_key(journal_key(5, 42)) == ("J", 5, 42)
    assert journal_key(5, 42) == b"J/5/0000000000000042"  # fixed width: sorts as it counts
    assert parse_key(POLICY_KEY) == ("P", -1, 0)


@pytest.mark.parametrize(
    "key",
    [None, b"", b"S", b"S/", b"S/x", b"S/1/2", b"J/1", b"J/1/x", b"J/x/1", b"P/1", b"X/1",
     b"s/1", b"\xff\xfe", "S/\u0663".encode()],
)  # fmt: skip
def test_keys_this_version_does_not_write_are_unknown(key: bytes | None) -> None:
    assert parse_key(key) == ("?", -1, 0)


# --- damaged and crafted records -----------------------------------------------------------


def decode_both(raw: bytes) -> None:
    _decode(raw, templates(), [decode_journal(j, WIDTHS) for j in JOURNALS])


@pytest.mark.parametrize("which", ["shard", "journal"])
def test_flipped_bytes_are_refused_or_decoded_never_anything_else(which: str) -> None:
    # A record carries no checksum of its own (Kafka's CRC guards the transport): a flip in a
    # count may decode to another count. Anything else must be refused as such.
    raw = RAW if which == "shard" else JOURNALS[1]
    rng = random.Random(0)
    tail = range(max(0, len(raw) - 2500), len(raw))  # the zip directory and the headers
    positions = sorted(rng.sample(range(len(raw)), 150)) + list(tail)
    refused = 0
    for pos in positions:
        flipped = bytearray(raw)
        flipped[pos] ^= 0x41
        try:
            if which == "shard":
                _decode(bytes(flipped), templates())
            else:
                decode_journal(bytes(flipped), WIDTHS)
        except Refused:
            refused += 1
    assert refused > len(tail) // 2


@pytest.mark.parametrize("keep", [0, 4, 100, len(RAW) // 2, len(RAW) - 1])
def test_a_truncated_record_is_refused(keep: int) -> None:
    with pytest.raises(Refused):
        _decode(RAW[:keep], templates())
    with pytest.raises(Refused):
        decode_journal(JOURNALS[0][: min(keep, len(JOURNALS[0]) - 1)], WIDTHS)


def _edit_shard(change: Any) -> bytes:
    meta, arrays = unpack(RAW, "test")
    change(meta, arrays)
    return pack(meta, arrays)


#: A pane of the 5m window that holds counts: the windows travel one record per pane.
PANE = next(k for k in PANES if b"/5m/" in k and "counts" in unpack(PANES[k], "test")[1])


def _with_pane(value: bytes) -> Any:
    return lambda key, _digest: value if key == PANE else PANES.get(key)


@pytest.mark.parametrize(
    "change",
    [
        lambda m, a: a.__setitem__("counts", a["counts"][:-1]),  # wrong shape
        lambda m, a: a.__setitem__("counts", a["counts"].astype(np.int64)),  # wrong dtype
        lambda m, a: a.__setitem__("counts", -a["counts"].astype(np.int32) - 1),  # negative
        lambda m, a: m.__setitem__("acc", {"n_classes": 99}),  # an accumulator of another model
        lambda m, a: m.__setitem__("unseen", [1, 2]),  # not a summary per feature
    ],
)
def test_a_crafted_pane_is_refused(change: Any) -> None:
    meta, arrays = unpack(PANES[PANE], "test")
    change(meta, arrays)
    with pytest.raises(Refused):
        decode_shard(RAW, templates(), (), _with_pane(pack(meta, arrays)))


def test_pane_counts_travel_in_the_narrowest_type_and_come_back_exact() -> None:
    _, arrays = unpack(PANES[PANE], "test")
    assert arrays["counts"].dtype == np.uint8  # a test pane counts a handful of events a cell
    state = _decode(RAW, templates()).states["m"]
    assert [v.total.tolist() for v in state.views()] == [v.total.tolist() for v in LIVE.views()]
    big = dict(arrays, counts=arrays["counts"].astype(np.int32) + 70_000)
    meta, _ = unpack(PANES[PANE], "test")
    got = decode_shard(RAW, templates(), (), _with_pane(pack(meta, big))).states["m"]
    five = next(v for v in got.views() if v.name == "5m")
    want = next(v for v in LIVE.views() if v.name == "5m")
    assert int(five.total.sum()) == int(want.total.sum()) + 70_000 * big["counts"].size


def test_a_pane_the_state_lists_but_nobody_wrote_is_refused() -> None:
    with pytest.raises(ValueError, match="missing"):
        decode_shard(RAW, templates(), (), lambda key, _d: None if key == PANE else PANES[key])


@pytest.mark.parametrize(
    "change",
    [
        lambda m, a: m.pop("models"),
        lambda m, a: m.__setitem__("models", {"m": []}),
        lambda m, a: m["models"]["m"].pop("windows"),
        lambda m, a: m["models"]["m"]["windows"]["5m"].__setitem__("head", "7"),
        lambda m, a: m["models"]["m"].__setitem__("event_time", {"newest": [[0, "x"]]}),
        lambda m, a: m.__setitem__("partition", -1),
        lambda m, a: m.__setitem__("partition", "2"),
        lambda m, a: m.__setitem__("journal", True),
        lambda m, a: m.__setitem__("owner", 7),
        lambda m, a: m.__setitem__("offsets", [["predictions", 2]]),
        lambda m, a: m.__setitem__("offsets", [["predictions", -2, 5]]),
        lambda m, a: m.__setitem__("offsets", [[1, 2, 5]]),
        lambda m, a: m.__setitem__("offsets", {"predictions": 5}),
    ],
)
def test_a_crafted_shard_is_refused(change: Any) -> None:
    with pytest.raises(Refused):
        _decode(_edit_shard(change), templates())


def _edit_journal(change: Any) -> bytes:
    meta, arrays = unpack(JOURNALS[1], "test")
    change(meta, arrays)
    return pack(meta, arrays)


@pytest.mark.parametrize(
    "change",
    [
        lambda m, a: a.__setitem__("m.m.proba", np.zeros((len(a["m.m.keys"]), 3), np.float32)),
        lambda m, a: a.__setitem__("m.m.keys", a["m.m.keys"].astype(np.int64)),
        lambda m, a: a.__setitem__("m.m.keys", a["m.m.keys"][:-1]),  # columns disagree
        lambda m, a: a.__setitem__("m.m.keys", np.uint64(3)),  # not a column at all
        lambda m, a: a.__setitem__("m.m.joined", np.zeros((2, 2), np.uint64)),
        lambda m, a: a.__setitem__("m.m.joined", np.uint64(3)),
        lambda m, a: a.pop("m.m.ts"),
        lambda m, a: m.__setitem__("models", "m"),
        lambda m, a: m.__setitem__("models", [["m"]]),
        lambda m, a: m.__setitem__("models", [{"m": 1}]),
    ],
)
def test_a_crafted_journal_is_refused(change: Any) -> None:
    with pytest.raises(Refused):
        decode_journal(_edit_journal(change), WIDTHS)


def _npy_declaring(shape: tuple[int, ...], dtype: str, body: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + body


@pytest.mark.parametrize("which", ["pane", "journal"])
def test_a_declared_size_is_never_allocated(which: str) -> None:
    raw = PANES[PANE] if which == "pane" else JOURNALS[0]
    member = "counts" if which == "pane" else "m.m.keys"
    source = zipfile.ZipFile(io.BytesIO(raw))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == f"{member}.npy":
                data = _npy_declaring((10**9, 10), "<i4", b"\0" * 64)  # 40 GB declared
            out.writestr(info.filename, data)
    tracemalloc.start()
    try:
        decode = (
            (lambda raw: decode_shard(RAW, templates(), (), _with_pane(raw)))
            if which == "pane"
            else (lambda raw: decode_journal(raw, WIDTHS))
        )
        with pytest.raises(CheckpointError, match="declares shape"):
            decode(buf.getvalue())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * len(raw) + 10 * 1024**2


JOURNAL_META, JOURNAL_ARRAYS = unpack(JOURNALS[1], "test")
SHARD_META, SHARD_ARRAYS = unpack(RAW, "test")


@settings(max_examples=120, deadline=None)
@given(data=st.data(), which=st.sampled_from(["shard", "journal", "pane"]))
def test_any_mutated_value_or_array_is_decoded_or_refused(data: st.DataObject, which: str) -> None:
    """One value of the meta or one array replaced by an arbitrary one: decoding succeeds or
    raises CheckpointError/ValueError."""
    pristine = {
        "shard": (SHARD_META, SHARD_ARRAYS),
        "journal": (JOURNAL_META, JOURNAL_ARRAYS),
        "pane": unpack(PANES[PANE], "test"),
    }[which]
    meta, arrays = copy.deepcopy(pristine[0]), dict(pristine[1])
    if arrays and data.draw(st.booleans(), label="mutate an array"):
        name = data.draw(st.sampled_from(sorted(arrays)), label="array")
        arrays[name] = np.zeros(data.draw(SHAPES, label="shape"), dtype=data.draw(DTYPES))
    else:
        path = data.draw(st.sampled_from(json_paths(meta)), label="path")
        node: Any = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = data.draw(JSON, label="value")
    raw = pack(meta, arrays)
    try:
        if which == "shard":
            _decode(raw, templates(), [decode_journal(j, WIDTHS) for j in JOURNALS])
        elif which == "pane":
            decode_shard(RAW, templates(), (), _with_pane(raw))
        else:
            decode_journal(raw, WIDTHS)
    except Refused:
        pass
