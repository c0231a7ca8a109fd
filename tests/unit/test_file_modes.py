"""Files modelmon writes: shared ones follow the umask, the webhook outbox stays private."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from monitor.alerting.outbox import Outbox
from monitor.atomic import atomic_write
from monitor.persistence.checkpoint import write_checkpoint
from monitor.reference.build import build_reference


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    mask: int = request.param
    previous = os.umask(mask)
    yield mask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_reference_file_follows_the_umask(tmp_path: Path, umask: int) -> None:
    ref = build_reference("m", "regression", {"a": [1.0, 2.0, 3.0]}, {"a": "numeric"})
    ref.save(tmp_path / "ref.json")
    assert _mode(tmp_path / "ref.json") == 0o666 & ~umask


def test_a_checkpoint_follows_the_umask(tmp_path: Path, umask: int) -> None:
    write_checkpoint(tmp_path / "checkpoint.mmc", {"k": 1}, {"x": np.zeros(3)})
    assert _mode(tmp_path / "checkpoint.mmc") == 0o666 & ~umask


def test_the_webhook_outbox_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    outbox = Outbox(tmp_path / "webhooks")
    try:
        url = "https://hooks.example/x?token=t"
        entry = outbox.add("msg_1", "fraud", url, "model.test", b"{}")
        assert entry is not None
        assert _mode(tmp_path / "webhooks" / entry.filename) == 0o600
    finally:
        outbox.close()


def test_a_private_write_replaces_a_file_that_was_readable(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "f"
    atomic_write(path, b"old", private=False)
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temporary file left behind
