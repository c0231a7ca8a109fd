"""The outbox across a crash at each step of an entry's life, without a dispatcher: the crash
is the process stopping between two file operations, reproduced by making the second one fail
and reopening the directory as the next process would."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from monitor.alerting.outbox import _LOCK_NAME, DEAD_DIR, Outbox
from monitor.atomic import TMP_PREFIX


def open_box(directory: Path) -> Outbox:
    return Outbox(directory, clock=lambda: 100.0, wall=lambda: 1_800_000_000.0)


def test_an_entry_marked_dead_but_not_moved_is_moved_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = open_box(tmp_path)
    a = box.add("msg_a", "ep", "https://hook.example/a", "model.degraded", b'{"a":1}')
    b = box.add("msg_b", "ep", "https://hook.example/a", "model.recovered", b'{"b":2}')
    assert a is not None and b is not None

    def killed(path: Path) -> Path:
        raise SystemExit("killed between marking and moving")

    monkeypatch.setattr(box, "_move_dead", killed)
    with pytest.raises(SystemExit):
        box.bury(a, "HTTP 410 Gone")
    box.close()
    monkeypatch.undo()
    assert json.loads((tmp_path / a.filename).read_bytes())["dead_reason"] == "HTTP 410 Gone"

    again = open_box(tmp_path)
    assert [e.id for e in again.entries("ep")] == ["msg_b"]  # never sent again
    assert again.pending() == 1
    assert not (tmp_path / a.filename).exists()
    moved = json.loads((tmp_path / DEAD_DIR / a.filename).read_bytes())
    assert (moved["id"], moved["dead_reason"]) == ("msg_a", "HTTP 410 Gone")
    again.close()
    assert [e.id for e in open_box(tmp_path).entries("ep")] == ["msg_b"]  # and stays so


def test_an_entry_posted_but_not_deleted_is_pending_again_with_its_id_and_body(
    tmp_path: Path,
) -> None:
    """kill -9 after the POST, before complete(): at-least-once, the same webhook-id (the
    receiver's deduplication key) and the same signed bytes."""
    box = open_box(tmp_path)
    a = box.add("msg_a", "ep", "https://hook.example/a", "model.degraded", b'{"a":1}')
    assert a is not None and box.take("ep") == a
    box.reschedule(a, 0.0)  # the attempt was recorded, then the process died
    box.close()
    again = open_box(tmp_path)
    (reloaded,) = again.entries("ep")
    assert (reloaded.id, reloaded.body, reloaded.seq) == ("msg_a", b'{"a":1}', a.seq)
    assert again.add("msg_a", "ep", "https://hook.example/a", "model.degraded", b"{}") is None
    again.complete(reloaded)
    again.close()
    assert open_box(tmp_path).pending() == 0
    assert os.listdir(tmp_path / DEAD_DIR) == []


def test_an_add_cut_before_its_rename_leaves_nothing_pending(tmp_path: Path) -> None:
    """kill -9 inside add(): only the temporary file exists; nobody was told it was stored."""
    (tmp_path / f"{TMP_PREFIX}000000000001-msg_a.json.x1").write_bytes(b'{"half": ')
    box = open_box(tmp_path)
    assert box.pending() == 0
    assert sorted(os.listdir(tmp_path)) == sorted([DEAD_DIR, _LOCK_NAME])
    assert os.listdir(tmp_path / DEAD_DIR) == []
