"""ModelState: bootstrapped references, version re-baselining, checkpoint round trip."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from monitor.devkit.synthetic import Traffic, features_of
from monitor.events import Prediction
from monitor.settings_loader import load_settings
from monitor.state import model_state
from monitor.state.model_state import ModelState, footprint


def state(rebaseline: bool) -> ModelState:
    s = load_settings(
        None,
        overrides={
            "models": [
                {
                    "name": "fraud",
                    "features": features_of("fraud"),
                    "reference": {
                        "bootstrap_events": 500,
                        "rebaseline_on_version_change": rebaseline,
                    },
                    "windows": [{"name": "1h", "length": "1h", "pane": "1m"}],
                }
            ]
        },
    )
    return ModelState(s.models[0])


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
    assert {k for p in meta["bootstrap"] for k in p["features"]} == set(features_of("fraud"))
    restored = state(rebaseline=False)
    restored.load_state(orjson.loads(orjson.dumps(meta)), arrays, "m")
    assert restored.bootstrap_needed == 200


def test_bootstrap_buffer_is_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the byte budget the reference is built from what is buffered; nothing is lost."""
    batch = preds(300, 1.8e9, "v1")
    size = footprint(batch[0])
    assert all(footprint(p) == size for p in batch)
    monkeypatch.setattr(model_state, "BOOTSTRAP_MAX_BYTES", 120 * size)
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
