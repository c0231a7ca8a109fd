"""StateStore.restore over crafted checkpoints: refused whole, one log line, live state untouched.

Every crafted file below carries a valid checksum (anyone can compute one), so it is the
parsing and the checks of each part that must refuse it, before anything is swapped in.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.persistence.checkpoint import read_checkpoint, write_checkpoint
from tests.support.crafted import DTYPES, JSON, SHAPES, json_paths
from tests.support.restore_world import OFFSETS, World

Meta = dict[str, Any]
Arrays = dict[str, np.ndarray]


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.store.save(lambda: dict(OFFSETS))
    w.pristine = read_checkpoint(w.store.path)
    return w


def _rewrite(world: World, change: Callable[[Meta, Arrays], None]) -> None:
    ckpt = read_checkpoint(world.store.path)
    meta, arrays = ckpt.meta, dict(ckpt.arrays)
    change(meta, arrays)
    write_checkpoint(world.store.path, meta, arrays)  # a fresh, valid checksum


def _refused(world: World, caplog: pytest.LogCaptureFixture) -> None:
    before = world.snapshot()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="monitor.persistence.store"):
        assert world.store.restore() is None
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    line = errors[0].getMessage()
    assert "ignored" in line and "\n" not in line and len(line) < 500
    world.assert_untouched(before)


def test_a_valid_checkpoint_restores_models_policy_and_offsets(world: World) -> None:
    before = world.snapshot()
    assert world.store.restore() == OFFSETS
    _, totals, policy = before
    assert {n: [v.total.tolist() for v in s.views()] for n, s in world.states.items()} == totals
    assert world.actions.policy is not policy
    assert world.states["demand"].bootstrap_needed == 400


def _set(path: str, value: Any) -> Callable[[Meta, Arrays], None]:
    def change(meta: Meta, arrays: Arrays) -> None:
        *parents, last = path.split("/")
        node: Any = meta
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value

    return change


def _array(name: str, value: np.ndarray) -> Callable[[Meta, Arrays], None]:
    def change(meta: Meta, arrays: Arrays) -> None:
        arrays[name] = value

    return change


def _edit(name: str, edit: Callable[[np.ndarray], np.ndarray]) -> Callable[[Meta, Arrays], None]:
    def change(meta: Meta, arrays: Arrays) -> None:
        arrays[name] = edit(arrays[name].copy())

    return change


W = "m.fraud.w.1h"
J = "m.fraud.perf.join"
CRAFTED: dict[str, Callable[[Meta, Arrays], None]] = {
    # The policy part is parsed before any model state is swapped in.
    "policy format": _set("extras/policy/format", 3),
    "policy field type": _set("extras/policy/models/fraud/clean_streak", "many"),
    "policy history type": _set("extras/policy/models/fraud/history", {"accuracy": [1, "x"]}),
    "policy unknown field": _set("extras/policy/models/fraud/surprise", 1),
    "models is a list": _set("models", []),
    "model missing": lambda meta, arrays: meta["models"].pop("demand"),
    "window head type": _set("models/fraud/windows/1h/head", "soon"),
    "slots one pane more": _edit(f"{W}.slots", lambda a: np.vstack([a, a[:1]])),
    "slots as float": _edit(f"{W}.slots", lambda a: a.astype(np.float64)),
    "slots as object": _edit(f"{W}.slots", lambda a: a.astype(object)),
    "slots negative": _edit(f"{W}.slots", lambda a: a - 1),
    "slots missing": lambda meta, arrays: arrays.pop(f"{W}.slots"),
    "pane outside window": _edit(f"{W}.pane_ids", lambda a: a + 10**6),
    "join keys unsorted": _edit(f"{J}.keys", lambda a: a[::-1].copy()),
    "join proba width": _edit(f"{J}.proba", lambda a: np.hstack([a, a])),
    "join state value": _edit(f"{J}.state", lambda a: a + 7),
    "join rows differ": _edit(f"{J}.ts", lambda a: a[1:]),
    "early label key": _set("models/fraud/perf/join/early", [["-1", 0.0, 1.0]]),
    # A class count of a million would allocate a terabyte for one pane's confusion matrix.
    "accumulator classes": _set("models/fraud/perf/rings/1h/panes/0/1/n_classes", 10**6),
    "accumulator pane slot": _set("models/fraud/perf/rings/1h/panes/0/0", 10**7),
    "event time type": _set("models/fraud/event_time/newest", "yesterday"),
    "event time entry": _set("models/fraud/event_time/newest/0/1", "yesterday"),
    "event time partition": _set("models/fraud/event_time/newest/0/0", -1),
    "versions type": _set("models/fraud/versions", ["v1"]),
    "bootstrap extra field": _set("models/demand/bootstrap/0/1/extra", 1),
    "bootstrap timestamp": _set("models/demand/bootstrap/0/1/timestamp", "noon"),
    "bootstrap nested value": _set("models/demand/bootstrap/0/1/prediction", [[[1]]]),
    "bootstrap too long": lambda meta, arrays: meta["models"]["demand"]["bootstrap"].extend(
        meta["models"]["demand"]["bootstrap"] * 5
    ),
    "reference hash": _set("models/fraud/reference_hash", "0" * 64),
    "offset negative": _set("offsets/0/2", -5),
    "offset type": _set("offsets/0/1", "zero"),
    "extras type": _set("extras", ["policy"]),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_part_is_refused_whole(
    world: World, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    _rewrite(world, CRAFTED[case])
    _refused(world, caplog)


def test_a_crafted_file_is_ignored_on_every_restart_without_a_crash(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    _rewrite(world, CRAFTED["policy format"])
    for _ in range(3):
        _refused(world, caplog)
    world.store.save(lambda: dict(OFFSETS))  # the next checkpoint replaces it
    assert world.store.restore() == OFFSETS


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_mutated_payload_is_restored_exactly_or_refused_whole(
    world: World, data: st.DataObject
) -> None:
    """Flip bytes of the payload and sign it again: restore never raises, never half-applies."""
    pristine = _payload(world)
    flips = data.draw(st.lists(st.tuples(st.integers(0, 2**24), st.integers(1, 255)), min_size=1))
    payload = bytearray(pristine)
    for pos, mask in flips[:4]:
        payload[pos % len(payload)] ^= mask
    _write_signed(world.store.path, bytes(payload))
    before = world.snapshot()
    if world.store.restore() is None:
        world.assert_untouched(before)
    else:  # a flip that leaves every part valid (e.g. a digit of a count): swapped in whole
        live, _, policy = before
        assert all(world.states[n] is not live[n] for n in live)
        assert world.actions.policy is not policy
    _write_signed(world.store.path, pristine)  # the next example starts from the valid file


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_mutated_part_is_restored_whole_or_refused_whole(
    world: World, data: st.DataObject
) -> None:
    """Replace one value of ``__meta__`` or one array by an arbitrary one, in a well-formed
    file: restore never raises, and either swaps in every part or leaves all of them."""
    ckpt = world.pristine
    assert ckpt is not None
    meta, arrays = copy.deepcopy(ckpt.meta), dict(ckpt.arrays)
    if data.draw(st.booleans(), label="mutate an array"):
        name = data.draw(st.sampled_from(sorted(arrays)), label="array")
        arrays[name] = np.zeros(data.draw(SHAPES, label="shape"), dtype=data.draw(DTYPES))
    else:
        path = data.draw(st.sampled_from(json_paths(meta)), label="path")
        node: Any = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = data.draw(JSON, label="value")
    write_checkpoint(world.store.path, meta, arrays)
    before = world.snapshot()
    if world.store.restore() is None:
        world.assert_untouched(before)
    else:  # a replacement that is still valid (e.g. another count): swapped in whole
        live, _, policy = before
        assert all(world.states[n] is not live[n] for n in live)
        assert (world.actions.policy is not policy) == ("policy" in meta.get("extras", {}))


def _payload(world: World) -> bytes:
    data = world.store.path.read_bytes()
    return data[data.index(b"PK\x03\x04") :]


def _write_signed(path: Path, payload: bytes) -> None:
    import hashlib
    import struct

    import orjson

    from monitor.persistence.checkpoint import FORMAT_VERSION, MAGIC

    header = orjson.dumps(
        {
            "format_version": FORMAT_VERSION,
            "created_at": 1.0,
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "payload_bytes": len(payload),
        }
    )
    path.write_bytes(MAGIC + struct.pack(">I", len(header)) + header + payload)
