"""Group mode across the id-hash change (issue 12): a partition's ``S`` and ``J`` records
written by the previous version (blake2b keys, no ``hash`` field) are taken over by this one,
and the labels that arrive after the handoff still join the predictions made before it, on
this owner and on the next."""

from __future__ import annotations

from typing import Any

from monitor.events import Label, Prediction
from monitor.group.records import decode_journal, decode_shard, encode_journal, encode_shard
from monitor.persistence.checkpoint import pack, unpack
from monitor.state.join_journal import JoinJournal
from monitor.state.model_state import ModelState
from tests.support.old_hash import old_keys, old_models
from tests.support.shards import CFG, REF, T0, label_of, stream

OFFSETS = {("predictions", 2): 51, ("labels", 2): 20}
WIDTHS = {"m": ModelState(CFG, REF).perf.join.proba_width}
PREDS = sorted(stream(11, 120, 1500.0), key=lambda p: p.timestamp)
EARLY = Label("early-é", "m", 1, T0 + 5.0)


def journalled(state: ModelState) -> ModelState:
    state.perf.join.journal = JoinJournal(state.perf.join.proba_width)  # as a takeover does
    return state


def flush(state: ModelState, seq: int, old: bool = False) -> tuple[bytes, dict[bytes, bytes]]:
    """``state``'s S record (as the previous version wrote it, if ``old``) and its panes."""
    encoded = encode_shard(2, {"m": state}, OFFSETS, seq, "replica")
    if not old:
        return encoded.shard, encoded.panes
    meta, arrays = unpack(encoded.shard, "test")
    return pack(old_models(meta), arrays), encoded.panes


def take_over(shard: bytes, panes: dict[bytes, bytes], journals: list[bytes]) -> ModelState:
    folded = [decode_journal(raw, WIDTHS) for raw in journals]
    lookup: Any = lambda key, _digest: panes.get(key)  # noqa: E731
    return journalled(decode_shard(shard, {"m": ModelState(CFG, REF)}, folded, lookup).states["m"])


def old_owner() -> tuple[bytes, dict[bytes, bytes], list[bytes]]:
    """The previous version's records of partition 2: two journal takes, then S."""
    with old_keys():
        state = journalled(ModelState(CFG, REF))
        state.add_labels([EARLY])  # waits for its prediction
        state.add_predictions(PREDS[:60], 2)
        state.add_labels([label_of(p, 11) for p in PREDS[:20]])
        journal = state.perf.join.journal
        assert journal is not None
        journals = [encode_journal(2, 1, {"m": journal.take()})]
        state.add_predictions(PREDS[60:], 2)
        journals.append(encode_journal(2, 2, {"m": journal.take()}))
        shard, panes = flush(state, 2, old=True)
    return shard, panes, journals


def test_labels_after_a_takeover_of_old_records_join_and_the_next_owner_knows_it() -> None:
    shard, panes, journals = old_owner()
    new = take_over(shard, panes, journals)
    assert new.perf.join.legacy is not None
    late = [label_of(p, 11) for p in PREDS[20:100]]
    assert new.add_labels(late).counts.joined == 80
    assert new.add_labels([label_of(PREDS[0], 11)]).counts.duplicate_labels == 1
    now = PREDS[-1].timestamp + 1.0  # on time
    arrived = Prediction("early-é", "m", "v1", now, {"country": "DE", "amount": 0.5}, 1, 0.9)
    assert new.add_predictions([arrived], 2).join.joined == 1
    assert new.add_predictions([PREDS[5]], 2).join.duplicate_predictions == 1

    # The next owner folds the old journals and this owner's (keys of both hashes, the old
    # rows' joins under their own keys) and reads this owner's S, which names the hash.
    journal = new.perf.join.journal
    assert journal is not None
    journals.append(encode_journal(2, 3, {"m": journal.take()}))
    shard, panes = flush(new, 3)
    assert unpack(shard, "test")[0]["models"]["m"]["perf"]["join"]["hash"] == "xxh3_64"
    after = take_over(shard, panes, journals)
    assert after.perf.join.legacy == new.perf.join.legacy
    assert after.add_labels(late).counts.duplicate_labels == 80
    rest = after.add_labels([label_of(p, 11) for p in PREDS[100:]])
    assert rest.counts.joined == 20
    assert after.perf.join.pending() == 0
