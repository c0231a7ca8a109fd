"""ModelState: bootstrapped references, version re-baselining, checkpoint round trip."""

from __future__ import annotations

import numpy as np

from monitor.devkit.synthetic import Traffic, features_of
from monitor.events import Prediction
from monitor.settings_loader import load_settings
from monitor.state.model_state import ModelState


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
