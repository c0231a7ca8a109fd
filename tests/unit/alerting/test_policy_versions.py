"""Policy and model versions: ``model.version_changed`` once per new version, never per flip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerting.payload import finding_data
from monitor.alerting.policy import Finding, Policy
from monitor.devkit.synthetic import Traffic, features_of
from monitor.events import Prediction
from monitor.settings_loader import load_settings
from monitor.snapshot import ModelResult, Snapshot
from monitor.state.evaluate import evaluate_model
from monitor.state.model_state import ModelState
from tests.support.snapshots import T0, FakeClock, model_cfg, run, snap, window


def seen(*versions: str) -> Snapshot:
    """A Snapshot whose windows hold ``versions`` (oldest arrival first), as evaluated."""
    result = ModelResult("fraud", versions[-1], True, "abc", T0, (window(),), versions=versions)
    return Snapshot(created_at=T0, models=(result,))


def changes(findings: list[Finding]) -> list[tuple[str | None, str | None]]:
    return [(f.previous_version, f.version) for f in findings if f.type == "model.version_changed"]


def test_a_canary_is_reported_once_and_its_rollback_and_return_never() -> None:
    policy = Policy([model_cfg()], FakeClock())
    evaluations = [
        seen("v1"),
        seen("v1", "v2"),  # a 5 % canary starts
        seen("v1", "v2"),
        seen("v1"),  # rolled back: gone from the windows
        seen("v1", "v2"),  # and back
        seen("v1", "v2", "v3"),
    ]
    [v2, v3] = run(policy, *evaluations)
    assert changes([v2, v3]) == [("v1", "v2"), ("v2", "v3")]
    assert finding_data(v2)["version"] == "v2" and finding_data(v2)["previous_version"] == "v1"


def test_a_snapshot_version_that_flips_is_no_change() -> None:
    # Snapshots that carry one version only (the last record's, as modelmon once reported)
    policy = Policy([model_cfg()], FakeClock())
    flips = [snap(version=v) for v in ("v1", "v2", "v1", "v2", "v1", "v1", "v2")]
    assert changes(run(policy, *flips)) == [("v1", "v2")]


def test_the_first_evaluation_adopts_the_oldest_version_and_reports_the_others() -> None:
    policy = Policy([model_cfg()], FakeClock())
    assert changes(run(policy, seen("v1", "v2"))) == [("v1", "v2")]


def test_seen_versions_survive_a_restart_and_a_format_1_state_knows_its_version() -> None:
    cfg = [model_cfg()]
    live = Policy(cfg, FakeClock(), lineage="L")
    run(live, seen("v1"), seen("v1", "v2"), seen("v1"))
    state = json.loads(json.dumps(live.to_state()))
    assert state["format"] == 2 and state["models"]["fraud"]["versions"] == ["v2", "v1"]
    restored = Policy.from_state(state, cfg, FakeClock())
    assert changes(run(restored, seen("v1", "v2"), seen("v1", "v2", "v3"))) == [("v2", "v3")]

    old = {**state, "format": 1, "models": {"fraud": dict(state["models"]["fraud"])}}
    del old["models"]["fraud"]["versions"]
    old["models"]["fraud"]["version"] = "v1"
    from_v1 = Policy.from_state(old, cfg, FakeClock())
    assert changes(run(from_v1, seen("v1"), seen("v1", "v2"), seen("v1"))) == [("v1", "v2")]


def test_a_bad_versions_list_in_a_saved_state_is_refused() -> None:
    state = Policy([model_cfg()], FakeClock()).to_state()
    state["models"]["fraud"]["versions"] = "v1"
    with pytest.raises(ValueError, match="versions is not a list of strings"):
        Policy.from_state(state, [model_cfg()], FakeClock())


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["v1", "v2", "v3"]), min_size=1, max_size=3, unique=True),
        min_size=1,
        max_size=30,
    )
)
def test_every_version_is_reported_exactly_once_whatever_the_interleaving(
    evaluations: list[list[str]],
) -> None:
    arrivals: list[str] = []
    snapshots = []
    for present in evaluations:
        arrivals += [v for v in present if v not in arrivals]
        snapshots.append(seen(*sorted(present, key=arrivals.index)))
    findings = run(Policy([model_cfg()], FakeClock()), *snapshots)
    reported = changes(findings)
    assert [new for _, new in reported] == arrivals[1:]
    assert all(old is not None and old != new for old, new in reported)
    assert len({f.event_id for f in findings}) == len(findings)


def test_a_canary_through_model_state_and_evaluation_is_one_version_change() -> None:
    settings_ = load_settings(
        None,
        overrides={
            "models": [
                {
                    "name": "fraud",
                    "features": features_of("fraud"),
                    "reference": {"bootstrap_events": 100, "rebaseline_on_version_change": True},
                    "windows": [{"name": "1h", "length": "1h", "pane": "1m"}],
                }
            ]
        },
    )
    cfg = settings_.models[0]
    state = ModelState(cfg)
    policy = Policy([cfg], FakeClock())
    events = Traffic(5).events("fraud", 3000, 1.8e9, 10.0)
    preds = [
        Prediction(
            e["id"],
            "fraud",
            "v2" if i >= 500 and i % 20 == 0 else "v1",  # 5 % canary after 500 events
            e["timestamp"],
            e["features"],
            e["prediction"],
            e["score"],
        )
        for i, e in enumerate(events)
    ]
    findings: list[Finding] = []
    reported = []
    for i in range(0, len(preds), 13):  # evaluations between batches ending on either version
        state.add_predictions(preds[i : i + 13])
        result = evaluate_model(state, 1.8e9 + i)
        reported.append(result.version)
        findings += policy.observe(Snapshot(result.evaluated_at, (result,)))
    assert changes(findings) == [("v1", "v2")]
    first_canary_batch = 500 // 13  # the canary's first prediction (index 500) is in it
    assert reported == ["v1"] * first_canary_batch + ["v2"] * (
        len(reported) - first_canary_batch
    )  # the canary is the current version while it runs, whichever version a batch ends on
    assert state.reference is not None  # the rebaseline finished: 125 v2 predictions arrived
