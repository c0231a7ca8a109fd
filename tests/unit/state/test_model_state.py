"""ModelState: bootstrapped references, version re-baselining, checkpoint round trip."""

from __future__ import annotations

import functools

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.devkit.synthetic import Traffic, features_of
from monitor.events import Prediction
from monitor.settings_loader import load_settings
from monitor.state import bootstrap
from monitor.state.model_state import ModelState, bootstrap_reference, footprint

T0 = 1.8e9


def state(rebaseline: bool, bootstrap: int = 500) -> ModelState:
    s = load_settings(
        None,
        overrides={
            "models": [
                {
                    "name": "fraud",
                    "features": features_of("fraud"),
                    "reference": {
                        "bootstrap_events": bootstrap,
                        "rebaseline_on_version_change": rebaseline,
                    },
                    "windows": [{"name": "1h", "length": "1h", "pane": "1m"}],
                }
            ]
        },
    )
    return ModelState(s.models[0])


def counted(st: ModelState) -> int:
    """Predictions in the (single, 1h) window."""
    return int(st.views()[0].total[: st.slots[0].stop].sum())


def preds(n: int, t0: float, version: str, drifted: bool = False) -> list[Prediction]:
    return [
        Prediction(
            e["id"], "fraud", version, e["timestamp"], e["features"], e["prediction"], e["score"]
        )
        for e in Traffic(3).events("fraud", n, t0, 10.0, drifted=drifted)
    ]


def test_bootstrap_builds_the_reference_then_counts_everything() -> None:
    st = state(rebaseline=False)
    st.add_predictions(preds(300, 1.8e9, "v1"))
    assert st.reference is None and st.bootstrap_needed == 200
    st.add_predictions(preds(400, 1.8e9 + 30, "v1"))
    assert st.reference is not None and st.reference.rows == 500
    assert st.views()[0].total[: st.slots[0].stop].sum() == 700  # buffered events replayed


def test_version_change_rebaselines_only_when_asked() -> None:
    for rebaseline in (False, True):
        st = state(rebaseline)
        st.add_predictions(preds(600, 1.8e9, "v1"))
        old_hash = st.reference.content_hash if st.reference else None
        st.add_predictions(preds(600, 1.8e9 + 60, "v2", drifted=True))
        assert st.version == "v2"
        assert st.reference is not None
        if rebaseline:
            # The new version's first 500 events are its reference: drifted data is the norm.
            assert st.reference.content_hash != old_hash
            assert st.views()[0].total[: st.slots[0].stop].sum() == 600
        else:
            assert st.reference.content_hash == old_hash
            assert st.views()[0].total[: st.slots[0].stop].sum() == 1200


def test_checkpoint_round_trip_is_exact() -> None:
    st = state(rebaseline=False)
    st.add_predictions(preds(800, 1.8e9, "v1"))
    arrays: dict[str, np.ndarray] = {}
    meta = st.to_state(arrays, "m")
    copy = state(rebaseline=False)
    copy.load_state(meta, arrays, "m")
    assert copy.reference is not None and st.reference is not None
    assert copy.reference.content_hash == st.reference.content_hash
    for a, b in zip(st.views(), copy.views(), strict=True):
        assert a.total.tolist() == b.total.tolist() and (a.start, a.end) == (b.start, b.end)
    more = preds(200, 1.8e9 + 100, "v1")
    st.add_predictions(more)
    copy.add_predictions(more)
    assert st.views()[0].total.tolist() == copy.views()[0].total.tolist()


@functools.cache
def pool() -> tuple[Prediction, ...]:
    """Fixed traffic: 2,500 events, 10 a second from T0, versioned by each test."""
    return tuple(preds(2500, T0, "unset"))


def versioned(pattern: list[str]) -> list[Prediction]:
    assert len(pattern) <= len(pool())
    return [p._replace(version=v) for p, v in zip(pool(), pattern, strict=False)]


def canary(n: int, every: int = 20) -> list[str]:
    """v1 with every ``every``-th prediction v2 (5 % by default), interleaved record by record."""
    return ["v2" if i % every == every - 1 else "v1" for i in range(n)]


def feed(st: ModelState, events: list[Prediction], batch: int) -> None:
    for i in range(0, len(events), batch):
        st.add_predictions(events[i : i + batch])


def test_a_canary_rebaselines_from_its_own_predictions_and_finishes_while_interleaved() -> None:
    st = state(rebaseline=True, bootstrap=100)
    events = versioned(["v1"] * 200 + canary(2300))  # a 5 % canary after 200 v1
    v2_at = [i for i, p in enumerate(events) if p.version == "v2"]
    hundredth = v2_at[99]
    feed(st, events[:hundredth], batch=7)  # batches end on either version: flips are no change
    assert st.reference is None and st.bootstrap_needed == 1
    assert st.version == "v2" and st.versions.present() == ("v1", "v2")
    feed(st, events[hundredth:], batch=7)
    expected = bootstrap_reference(st.cfg, [events[i] for i in v2_at[:100]])
    assert st.reference is not None and st.reference.content_hash == expected.content_hash
    # the reference sample, then every version's predictions after it
    assert counted(st) == 100 + len(events) - hundredth - 1


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from(["v1", "v1", "v1", "v2", "v3"]), min_size=1, max_size=700),
    st.booleans(),
    st.data(),
)
def test_rebaselining_ends_on_the_newest_version_s_first_events_whatever_the_interleaving(
    pattern: list[str], rebaseline: bool, data: st.DataObject
) -> None:
    st_ = state(rebaseline=rebaseline, bootstrap=100)
    events = versioned(pattern)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(events)), max_size=20)))
    for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True):
        st_.add_predictions(events[a:b])

    arrivals = list(dict.fromkeys(pattern))
    if rebaseline and len(arrivals) > 1:  # the newest arrival's predictions from its first on
        positions = [i for i, v in enumerate(pattern) if v == arrivals[-1]]
    else:  # the model's first predictions, whatever their version
        positions = list(range(len(pattern)))
    assert st_.version == arrivals[-1]
    if len(positions) < 100:
        assert st_.reference is None and st_.bootstrap_needed == 100 - len(positions)
        return
    sample = [events[i] for i in positions[:100]]
    assert st_.reference is not None
    assert st_.reference.content_hash == bootstrap_reference(st_.cfg, sample).content_hash
    assert counted(st_) == 100 + len(events) - positions[99] - 1


def test_a_canary_rolled_back_before_its_reference_is_done_gives_way_to_the_current_version() -> (
    None
):
    st = state(rebaseline=True, bootstrap=100)
    feed(st, versioned(["v1"] * 200 + canary(400)), batch=50)  # 20 v2: not enough
    assert st.reference is None and st.bootstrap_needed == 80
    # v1 alone, more than the longest window (1h) after the canary's last prediction
    later = [
        p._replace(id=f"later-{p.id}", version="v1", timestamp=p.timestamp + 3700.0)
        for p in pool()[:300]
    ]
    st.add_predictions(later)
    assert st.version == "v1" and st.versions.present() == ("v1",)
    assert st.reference is not None
    assert st.reference.content_hash == bootstrap_reference(st.cfg, later[:100]).content_hash
    assert counted(st) == 300


def test_a_checkpoint_mid_rebaseline_resumes_exactly() -> None:
    events = versioned(["v1"] * 200 + canary(2300))
    live = state(rebaseline=True, bootstrap=100)
    feed(live, events[:1000], batch=100)
    arrays: dict[str, np.ndarray] = {}
    meta = live.to_state(arrays, "m")
    assert meta["versions"] == [["v1", T0 + 99.8], ["v2", T0 + 99.9]]
    assert meta["rebaseline_to"] == "v2" and meta["version"] == "v2"
    copy = state(rebaseline=True, bootstrap=100)
    copy.load_state(meta, arrays, "m")
    for st_ in (live, copy):
        feed(st_, events[1000:], batch=100)
    assert live.reference is not None and copy.reference is not None
    assert copy.reference.content_hash == live.reference.content_hash
    assert live.views()[0].total.tolist() == copy.views()[0].total.tolist()


def test_a_checkpoint_from_before_version_logs_knows_its_one_version() -> None:
    old = state(rebaseline=True, bootstrap=100)
    feed(old, versioned(["v1"] * 300), batch=100)
    arrays: dict[str, np.ndarray] = {}
    meta = old.to_state(arrays, "m")
    del meta["versions"], meta["rebaseline_to"]  # what an older modelmon wrote
    copy = state(rebaseline=True, bootstrap=100)
    copy.load_state(meta, arrays, "m")
    assert copy.version == "v1"
    hash_before = copy.reference.content_hash if copy.reference else None
    copy.add_predictions([p._replace(id=f"again-{p.id}") for p in versioned(["v1"] * 50)])
    assert copy.reference is not None and copy.reference.content_hash == hash_before
    copy.add_predictions(versioned(["v1"] * 300 + ["v2"])[300:])
    assert copy.reference is None and copy.bootstrap_needed == 99  # v2 is new: rebaseline


# -- hostile records (issue 10) -----------------------------------------------------------------


def deep(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_bootstrap_keeps_only_configured_features_so_the_checkpoint_serialises() -> None:
    st = state(rebaseline=False)
    batch = preds(300, 1.8e9, "v1")
    batch[7] = batch[7]._replace(features={**batch[7].features, "deep": deep(600)})
    result = st.add_predictions(batch)
    assert result.unknown_features == 1
    arrays: dict[str, np.ndarray] = {}
    meta = st.to_state(arrays, "m")
    assert {k for _, p in meta["bootstrap"] for k in p["features"]} == set(features_of("fraud"))
    restored = state(rebaseline=False)
    restored.load_state(orjson.loads(orjson.dumps(meta)), arrays, "m")
    assert restored.bootstrap_needed == 200


def test_bootstrap_buffer_is_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the byte budget the reference is built from what is buffered; nothing is lost."""
    batch = preds(300, 1.8e9, "v1")
    size = footprint(batch[0])
    assert all(footprint(p) == size for p in batch)
    monkeypatch.setattr(bootstrap, "BOOTSTRAP_MAX_BYTES", 120 * size)
    st = state(rebaseline=False)
    st.add_predictions(batch[:100])
    assert st.reference is None and st.bootstrap_needed == 400
    st.add_predictions(batch[100:])
    assert st.reference is not None and st.reference.rows == 120
    assert st.views()[0].total[: st.slots[0].stop].sum() == 300


def test_a_future_watermark_is_clamped_with_the_panes_after_it() -> None:
    st = state(rebaseline=False)
    st.add_predictions(preds(600, 1.8e9, "v1"))
    st.add_predictions(preds(10, 4.0e9, "v1"))  # past a decoder that did not check yet
    assert st.newest_seen > 4.0e9
    bound = 1.8e9 + 3000.0  # the wall clock at restore
    assert st.clamp_event_time(bound) is True
    assert st.newest_seen == bound
    view = st.views()[0]
    assert view.end == bound - bound % 60 + 60  # the window ends at the bound's pane
    assert view.total.sum() == 0  # the old panes slid out when the head jumped: gone
    assert all(r.head == int(bound // r.pane) for r in st.perf.rings.values())
    later = preds(50, 1.8e9 + 3000, "v1")
    result = st.add_predictions(later)
    assert result.late == 0 and st.views()[0].total[: st.slots[0].stop].sum() == 50
    assert st.clamp_event_time(st.newest_seen) is False  # not past it: nothing to do
