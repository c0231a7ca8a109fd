"""A checkpoint file of the version before issue 12 (blake2b id keys) restored through
``StateStore``: the labels that arrive after the upgrade join the predictions made before it."""

from __future__ import annotations

from pathlib import Path

from monitor.events import Label
from monitor.persistence.checkpoint import read_checkpoint, write_checkpoint
from tests.support.old_hash import old_keys, old_models
from tests.support.restore_world import OFFSETS, World


def test_an_old_checkpoint_file_restores_and_late_labels_join(tmp_path: Path) -> None:
    with old_keys():
        world = World(tmp_path)  # 800 fraud predictions, the first 300 labelled
        world.store.save(lambda: dict(OFFSETS))
    ckpt = read_checkpoint(world.store.path)
    write_checkpoint(world.store.path, old_models(ckpt.meta), dict(ckpt.arrays))

    assert world.store.restore() == OFFSETS
    fraud = world.states["fraud"]
    assert fraud.perf.join.legacy is not None
    pending = fraud.perf.join.pending()
    ids = [f"fraud-{i}" for i in range(300, 800)]
    late = [Label(i, "fraud", 1, 1.8e9 + 9000.0) for i in ids]
    assert fraud.add_labels(late).counts.joined == pending == 500
    again = [Label(f"fraud-{i}", "fraud", 0, 1.8e9 + 9001.0) for i in range(300)]
    assert fraud.add_labels(again).counts.duplicate_labels == 300
