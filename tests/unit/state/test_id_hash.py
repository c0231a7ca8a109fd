"""Id keys (issue 12): xxh3-64 now, blake2b before; a join restored from state written before
the change still joins the predictions it holds, and stops hashing twice once they are gone."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import xxhash

from monitor.events import Label, Prediction, PredictionBatch
from monitor.persistence.checkpoint import read_checkpoint, write_checkpoint
from monitor.settings import ModelSettings, WindowSpec
from monitor.state.id_hash import blake2b_keys, id_keys
from monitor.state.join import JoinCounts
from monitor.state.performance_state import PerformanceState
from tests.support.old_hash import as_old, old_keys

IDS = ["a", "order-42", "", "é", "日本語-7", "🙂 id", "Ω\x00x"]
T0 = 1_800_000_000.0
TTL = 3600.0
CFG = ModelSettings(
    name="m",
    reference=Path("unused.json"),
    features={"x": "numeric"},
    windows=[WindowSpec(name="1h", length=3600, pane=60)],
    label_ttl=TTL,
    label_wait=600.0,
)


def test_keys_are_xxh3_64_of_the_utf8_bytes_non_ascii_included() -> None:
    want = [xxhash.xxh3_64_intdigest(i.encode("utf-8")) for i in IDS]
    assert id_keys(IDS).tolist() == want
    assert id_keys(i for i in IDS).tolist() == want  # an iterator of unknown length too
    assert id_keys(IDS).dtype == np.uint64


def test_keys_of_state_before_issue_12_are_blake2b_64_little_endian() -> None:
    # Hard-coded: what the previous version wrote into checkpoints and J records.
    assert blake2b_keys(["a", "order-42", ""]).tolist() == [
        3405396810240292928,
        17566578532265864852,
        13020603013274838756,
    ]
    assert blake2b_keys(IDS).tolist() == [
        int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") for i in IDS
    ]


# --- a join restored from a checkpoint of the previous version -----------------------------


def pred(i: str, t: float) -> Prediction:
    return Prediction(i, "m", None, t, {}, 1, 0.75)


def feed(perf: PerformanceState, preds: list[Prediction]) -> tuple[int, JoinCounts]:
    """Predictions through the path ``ModelState`` takes; (duplicates, join counts)."""
    keys, fresh = perf.unseen([p.id for p in preds])
    kept = PredictionBatch.of("m", preds).take(fresh)
    ts = kept.timestamps
    newest = float(ts.max()) if ts.size else T0
    counts, _ = perf.add_predictions(perf.encode(kept), keys[fresh], ts, newest)
    return int((~fresh).sum()), counts


def labels(perf: PerformanceState, ids: list[str], t: float) -> tuple[JoinCounts, list[float]]:
    result = perf.add_labels([Label(i, "m", 0, t) for i in ids])
    return result.counts, result.delays.tolist()


def checkpoint(perf: PerformanceState, tmp_path: Path, old: bool = False) -> PerformanceState:
    """``perf`` through a checkpoint file into a fresh state (``old``: as the previous
    version wrote it)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    meta = perf.to_state(arrays, "m.perf")
    if old:
        as_old(meta["join"])
    write_checkpoint(tmp_path / "ckpt", {"perf": meta}, arrays)
    saved = read_checkpoint(tmp_path / "ckpt")
    restored = PerformanceState(CFG)
    restored.load_state(saved.meta["perf"], saved.arrays, "m.perf")
    return restored


def old_state() -> PerformanceState:
    """Built by the previous version's code path: predictions, one joined, one early label."""
    with old_keys():
        perf = PerformanceState(CFG)
        feed(perf, [pred("old-1", T0), pred("öld-2", T0 + 1), pred("old-3", T0 + 2)])
        assert labels(perf, ["old-1"], T0 + 5)[0].joined == 1
        assert labels(perf, ["wait-é"], T0 + 6)[0].joined == 0  # an early label
    return perf


def test_an_old_checkpoint_restored_joins_late_labels_and_early_ones(tmp_path: Path) -> None:
    perf = checkpoint(old_state(), tmp_path, old=True)
    assert perf.join.legacy == T0 + 6  # the newest blake2b-keyed row or early label
    counts, delays = labels(perf, ["öld-2", "old-3"], T0 + 30)
    assert counts == JoinCounts(joined=2) and delays == [29.0, 28.0]
    assert labels(perf, ["old-1"], T0 + 31)[0] == JoinCounts(duplicate_labels=1)
    assert labels(perf, ["wait-é"], T0 + 32)[0] == JoinCounts(duplicate_labels=1)
    assert feed(perf, [pred("old-3", T0 + 40)]) == (1, JoinCounts())  # a re-sent prediction
    assert feed(perf, [pred("wait-é", T0 + 3)])[1].joined == 1  # meets its early label
    feed(perf, [pred("new-1", T0 + 50)])
    arrays: dict[str, npt.NDArray[Any]] = {}
    perf.join.to_state(arrays, "j")
    keys = set(arrays["j.keys"].tolist())
    assert int(id_keys(["new-1"])[0]) in keys and int(blake2b_keys(["new-1"])[0]) not in keys
    assert labels(perf, ["new-1"], T0 + 60)[0].joined == 1


def test_a_checkpoint_taken_while_migrating_keeps_both_hashes(tmp_path: Path) -> None:
    migrating = checkpoint(old_state(), tmp_path, old=True)
    feed(migrating, [pred("new-1", T0 + 50)])
    arrays: dict[str, npt.NDArray[Any]] = {}
    meta = migrating.to_state(arrays, "m.perf")["join"]
    assert meta["hash"] == "xxh3_64" and meta["blake2b"] == T0 + 6
    again = checkpoint(migrating, tmp_path)
    assert again.join.legacy == T0 + 6
    assert labels(again, ["öld-2", "new-1"], T0 + 70)[0].joined == 2
    assert feed(again, [pred("wait-é", T0 + 3)])[1].joined == 1


def test_the_migration_ends_when_the_last_blake2b_row_expires(tmp_path: Path) -> None:
    perf = checkpoint(old_state(), tmp_path, old=True)
    feed(perf, [pred("new-1", T0 + 2000)])
    perf.expire(now=T0 + 2000)
    assert perf.join.legacy == T0 + 6  # old rows still within the TTL
    assert perf.unseen(["x"])[0].legacy is not None
    perf.expire(now=T0 + 6 + TTL + 1)  # past the TTL of every old row and early label
    assert perf.join.legacy is None
    assert perf.unseen(["x"])[0].legacy is None  # one hash from now on
    arrays: dict[str, npt.NDArray[Any]] = {}
    assert "blake2b" not in perf.to_state(arrays, "m.perf")["join"]
    assert checkpoint(perf, tmp_path).join.legacy is None
    assert labels(perf, ["new-1"], T0 + 2100)[0].joined == 1


def test_a_new_checkpoint_never_migrates(tmp_path: Path) -> None:
    perf = PerformanceState(CFG)
    feed(perf, [pred("a", T0)])
    restored = checkpoint(perf, tmp_path)
    assert restored.join.legacy is None
    assert labels(restored, ["a"], T0 + 1)[0].joined == 1


@pytest.mark.parametrize("name", ["md5", 64, None])
def test_a_hash_this_version_does_not_know_is_refused(name: object, tmp_path: Path) -> None:
    arrays: dict[str, npt.NDArray[Any]] = {}
    perf = old_state()
    meta = perf.to_state(arrays, "m.perf")
    meta["join"]["hash"] = name
    with pytest.raises(ValueError, match="id hash"):
        PerformanceState(CFG).load_state(meta, arrays, "m.perf")


def test_an_old_checkpoint_of_an_empty_join_restores_without_migrating(tmp_path: Path) -> None:
    restored = checkpoint(PerformanceState(CFG), tmp_path, old=True)
    assert restored.join.legacy is None  # nothing keyed by blake2b: nothing to migrate
    feed(restored, [pred("a", T0)])
    assert labels(restored, ["a"], T0 + 1)[0].joined == 1


def test_a_migration_bound_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    arrays: dict[str, npt.NDArray[Any]] = {}
    meta = checkpoint(old_state(), tmp_path, old=True).to_state(arrays, "m.perf")
    meta["join"]["blake2b"] = "soon"
    with pytest.raises(ValueError, match=r"^m\.perf\.join blake2b bound must be a number$"):
        PerformanceState(CFG).load_state(meta, arrays, "m.perf")


def test_the_migration_lasts_while_the_newest_old_row_or_early_label_remains(
    tmp_path: Path,
) -> None:
    """The bound is the newest old row's or early label's time, and a row or label *at* the
    bound still needs the old hash: the migration ends only once none is left."""
    with old_keys():
        rows = PerformanceState(CFG)
        feed(rows, [pred("r-0", T0), pred("r-2", T0 + 2)])  # no early label: a row is newest
        early = PerformanceState(CFG)
        labels(early, ["e-5"], T0 + 5)  # an early label alone
    rows = checkpoint(rows, tmp_path, old=True)
    assert rows.join.legacy == T0 + 2
    rows.expire(now=T0 + 1 + TTL)  # r-0 expires; r-2, at the bound, is left
    assert rows.join.legacy == T0 + 2
    assert labels(rows, ["r-2"], T0 + 10)[0].joined == 1
    early = checkpoint(early, tmp_path, old=True)
    early.expire(now=T0 + 100)  # the early label, at the bound, is left
    assert early.join.legacy == T0 + 5
    assert feed(early, [pred("e-5", T0 + 4)])[1].joined == 1


def test_while_migrating_every_old_prediction_sent_again_and_a_new_repeat_are_duplicates(
    tmp_path: Path,
) -> None:
    perf = checkpoint(old_state(), tmp_path, old=True)
    again = [pred(i, T0 + 40) for i in ("old-1", "öld-2", "old-3")]  # every old row, row 0 too
    assert feed(perf, again) == (3, JoinCounts())
    assert feed(perf, [pred("n", T0 + 41), pred("n", T0 + 42)])[0] == 1
