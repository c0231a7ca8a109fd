"""A damaged checkpoint: any flipped bit is refused or harmless; a write cut short by kill -9
leaves no file behind.

Moved from the fault suite (in process: no broker, no daemon).
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.atomic import TMP_PREFIX
from monitor.events import Prediction
from monitor.persistence.checkpoint import CheckpointError, read_checkpoint
from monitor.persistence.store import StateStore
from monitor.settings_loader import load_settings
from monitor.state.model_state import ModelState
from tests.support.fault_oracle import MODEL, decode, model_config, save_reference, traffic
from tests.support.fault_rig import CHECKPOINT, SEED


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real checkpoint: a model state fed a stream, with offsets."""
    tmp = tmp_path_factory.mktemp("ckpt")
    reference = save_reference(tmp / "churn.json")
    settings = load_settings(None, overrides={"models": [model_config(tmp / "churn.json")]})
    records = list(itertools.islice(traffic("predictions", "labels", SEED), 2000))
    states = {MODEL: ModelState(settings.model(MODEL), reference)}
    for event in decode(settings, records):  # windows, pending joins, joined pairs
        if isinstance(event, Prediction):
            states[MODEL].add_predictions([event])
        else:
            states[MODEL].add_labels([event])
    store = StateStore(tmp, states, threading.Lock())
    store.save(lambda: {("predictions", 0): 1234, ("labels", 2): 56})
    return store.path.read_bytes()


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_any_flipped_bit_is_refused_or_harmless(
    checkpoint_bytes: bytes, tmp_path_factory: pytest.TempPathFactory, where: float, bit: int
) -> None:
    """Never half-read: a checkpoint with one bit flipped anywhere raises CheckpointError or
    reads back the same state and offsets (a flip in the header's timestamp changes only it)."""
    good = read_checkpoint(_write(tmp_path_factory, checkpoint_bytes))
    data = bytearray(checkpoint_bytes)
    data[int(where * len(data))] ^= 1 << bit
    try:
        got = read_checkpoint(_write(tmp_path_factory, bytes(data)))
    except CheckpointError:
        return
    assert got.meta == good.meta
    assert got.arrays.keys() == good.arrays.keys()
    assert all(np.array_equal(got.arrays[k], good.arrays[k]) for k in good.arrays)


def _write(factory: pytest.TempPathFactory, data: bytes) -> Path:
    path = factory.getbasetemp() / "flipped.mmc"
    path.write_bytes(data)
    return path


def test_a_checkpoint_write_cut_short_by_kill_9_leaves_no_file_behind(tmp_path: Path) -> None:
    """The temporary file of a write that never reached its rename is removed at the next start
    (the checkpoint it would have replaced is untouched)."""
    reference = save_reference(tmp_path / "churn.json")
    settings = load_settings(None, overrides={"models": [model_config(tmp_path / "churn.json")]})
    states = {MODEL: ModelState(settings.model(MODEL), reference)}
    store = StateStore(tmp_path / "state", states, threading.Lock())
    store.save(lambda: {("predictions", 0): 7})
    cut_short = tmp_path / "state" / f"{TMP_PREFIX}{CHECKPOINT}.x1y2z3"
    cut_short.write_bytes(store.path.read_bytes()[:100])
    assert store.restore() == {("predictions", 0): 7}
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [CHECKPOINT]
