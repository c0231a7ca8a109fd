"""The policy's edges, on hand-built windows: what counts as no evidence, the order and limits
of the evidence, top drifted features, findings without a window, and the state's messages."""

from __future__ import annotations

import re
from typing import Any

import pytest

from monitor.alerting.policy import Policy, Reason, Rule, rules_for
from monitor.settings import PolicySettings
from monitor.snapshot import FeatureDrift, FeatureQuality, WindowResult
from tests.support.snapshots import T0, FakeClock, model_cfg, run, snap, types, window


def numeric(name: str, psi: float = 0.01, *, drift: bool = False, **kw: Any) -> FeatureDrift:
    defaults: dict[str, Any] = {"ks_statistic": 0.3, "ks_pvalue": 0.0001 if drift else 0.5}
    defaults.update(kw)
    return FeatureDrift(
        name, "numeric", 5000, psi, defaults["ks_statistic"], defaults["ks_pvalue"], 0.001, 0.5,
        drift, quality=defaults.get("quality"), reference_quality=defaults.get("reference"),
    )  # fmt: skip


def win(*features: FeatureDrift, prediction_psi: float | None = None) -> WindowResult:
    return WindowResult(
        "1h", T0 - 3600, T0, 5000, 1000, True, features, prediction_psi=prediction_psi
    )


def test_a_rule_without_values_keeps_its_breach_streak() -> None:
    policy = Policy([model_cfg(breaches_to_fire=2)], FakeClock())
    bad, nothing = win(numeric("a"), prediction_psi=0.5), win(numeric("a"))
    assert run(policy, snap(bad), snap(nothing)) == []
    assert policy.breaches("fraud")["prediction_psi"] == 1
    assert types(run(policy, snap(bad))) == ["model.degraded"]


def test_a_drift_rule_without_any_test_keeps_its_breach_streak() -> None:
    cfg = model_cfg(breaches_to_fire=2, psi_max=None, chi2_alpha=None)
    policy = Policy([cfg], FakeClock())
    drifted, untested = win(numeric("a", drift=True)), win(numeric("a", ks_pvalue=None))
    assert run(policy, snap(drifted), snap(untested)) == []
    assert policy.breaches("fraud")["feature_drift"] == 1
    assert types(run(policy, snap(drifted))) == ["model.degraded"]


def test_psi_breaches_are_listed_worst_first() -> None:
    policy = Policy([model_cfg(breaches_to_fire=1)], FakeClock())
    [fired] = run(policy, snap(win(numeric("a", 0.3), numeric("b", 0.5), numeric("c", 0.4))))
    assert [(r.feature, r.value) for r in fired.reasons] == [("b", 0.5), ("c", 0.4), ("a", 0.3)]


def test_drift_evidence_carries_each_kinds_own_limits() -> None:
    cfg = model_cfg(
        breaches_to_fire=1, psi_max=None, fdr="none", ks_alpha=0.05, chi2_alpha=0.01,
        ks_min_statistic=0.15, js_min_distance=0.1,
    )  # fmt: skip
    [fired] = run(Policy([cfg], FakeClock()), snap(win(numeric("a", drift=True))))
    assert fired.reasons == (
        Reason("feature_ks_pvalue", "a", 0.0001, 0.05),
        Reason("feature_ks_statistic", "a", 0.3, 0.15),
    )


def test_quality_excess_needs_both_sides() -> None:
    cfg = model_cfg(breaches_to_fire=1, psi_max=None, ks_alpha=None, chi2_alpha=None,
                    out_of_range_ratio_max=0.1)  # fmt: skip
    high = FeatureQuality(missing=0.0, type_mismatch=0.0, out_of_range=0.5)
    unknown = FeatureQuality(missing=0.0, type_mismatch=0.0, out_of_range=None)
    policy = Policy([cfg], FakeClock())
    no_reference = numeric("a", quality=high, reference=None)
    no_value = numeric("b", quality=high, reference=unknown)
    assert run(policy, snap(win(no_reference, no_value))) == []  # absent, not an error
    assert policy.breaches("fraud") == {"feature_out_of_range_excess": 0}
    clean = FeatureQuality(missing=0.0, type_mismatch=0.0, out_of_range=0.0)
    [fired] = run(policy, snap(win(numeric("c", quality=high, reference=clean))))
    assert fired.reasons == (Reason("feature_out_of_range_excess", "c", 0.5, 0.1),)


def test_top_drifted_holds_drifted_or_over_psi_max_features_worst_first() -> None:
    policy = Policy([model_cfg(breaches_to_fire=1, psi_max=0.2)], FakeClock())
    features = (
        numeric("over", 0.3),
        numeric("at_limit", 0.2),  # not over psi_max, not drifted
        numeric("drifted_low", 0.05, drift=True),
        numeric("drifted", 0.25, drift=True),
    )
    [fired] = run(policy, snap(win(*features)))
    assert fired.top_drifted == (("over", 0.3, False), ("drifted", 0.25, True),
                                 ("drifted_low", 0.05, True))  # fmt: skip


def test_a_finding_without_the_policy_window_has_no_counts() -> None:
    policy = Policy([model_cfg()], FakeClock(), lineage="L")
    run(policy, snap(window("5m"), version="v1"))
    [changed] = run(policy, snap(window("5m"), version="v2"))
    assert changed.type == "model.version_changed"
    assert (changed.window, changed.window_start, changed.window_end) == ("1h", None, None)
    assert (changed.predictions, changed.labels, changed.top_drifted) == (0, 0, ())
    assert re.fullmatch(r"mm_[0-9a-f]{40}", changed.event_id)
    assert policy.to_state()["models"]["fraud"]["transitions"] == 1


def test_a_snapshot_without_a_version_keeps_the_known_one() -> None:
    policy = Policy([model_cfg()], FakeClock())
    run(policy, snap(version="v1"), snap(version=None))
    assert policy.to_state()["models"]["fraud"]["version"] == "v1"
    [changed] = run(policy, snap(version="v2"))
    assert (changed.version, changed.previous_version) == ("v2", "v1")


def test_the_checkpoint_keeps_the_cooldown_as_an_age() -> None:
    clock = FakeClock(1000.0)
    policy = Policy([model_cfg(breaches_to_fire=1)], clock)
    run(policy, snap(window(psi=0.3)))
    clock.now = 1600.0
    assert policy.to_state()["models"]["fraud"]["last_sent"] == 600.0


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"format": 7}, "unsupported policy state format 7"),
        ([2], "unsupported policy state format None"),
        ({"format": 2, "lineage": 5, "models": {}}, "policy lineage must be a string"),
        ({"format": 2, "lineage": "L", "models": []}, "policy models must be a JSON object"),
    ],
)
def test_a_malformed_checkpoint_is_refused(state: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Policy.from_state(state, [model_cfg()], FakeClock())


def test_rules_for_lists_every_configured_rule_with_its_recovery_threshold() -> None:
    policy = PolicySettings(
        psi_max=0.2, ks_alpha=0.05, recovery_margin=0.5, accuracy_min=0.9, mae_max=4.0,
        missing_ratio_max=0.1,
    )  # fmt: skip
    # margin 0.5: an upper limit recovers below half of it, a lower one halfway from it to 1
    assert rules_for(policy) == (
        Rule("feature_psi", 0.2, 0.1),
        Rule("prediction_psi", 0.2, 0.1),
        Rule("feature_drift", 0.05, 0.05, upper=False),
        Rule("feature_missing_excess", 0.1, 0.05),
        Rule("accuracy", 0.9, 0.95, upper=False, needs_labels=True),
        Rule("mae", 4.0, 2.0, upper=True, needs_labels=True),
    )
    only_chi2 = PolicySettings(psi_max=None, ks_alpha=None, chi2_alpha=0.01)
    assert rules_for(only_chi2) == (Rule("feature_drift", 0.01, 0.01, upper=False),)


def test_too_few_labels_is_no_evidence_and_keeps_the_breach_streak() -> None:
    policy = Policy([model_cfg(breaches_to_fire=2, psi_max=None, accuracy_min=0.9)], FakeClock())
    labelled, unlabelled = window(labels=1000, accuracy=0.5), window(labels=100, accuracy=0.5)
    assert run(policy, snap(labelled), snap(unlabelled)) == []
    assert policy.breaches("fraud")["accuracy"] == 1
    assert types(run(policy, snap(labelled))) == ["model.degraded"]


def test_a_degradation_inside_the_cooldown_and_its_recovery_say_why_they_are_quiet() -> None:
    clock = FakeClock()
    policy = Policy([model_cfg(breaches_to_fire=1)], clock)
    bad, ok = snap(window(psi=0.3)), snap(window(psi=0.01))
    run(policy, bad, ok)  # sent, recovered: the cooldown runs
    clock.now += 60.0
    degraded, recovered = run(policy, bad, ok)
    assert (degraded.type, degraded.suppressed_reason) == ("model.degraded", "cooldown")
    assert (recovered.type, recovered.suppressed_reason) == ("model.recovered", "cooldown")
