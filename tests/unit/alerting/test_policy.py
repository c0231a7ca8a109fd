"""Degradation policy: hand-built Snapshots, a fake clock, and the Findings that come out."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from monitor.alerting.payload import finding_data
from monitor.alerting.policy import Policy, Reason
from monitor.alerting.standard_webhooks import build_body
from monitor.settings import PolicySettings
from monitor.snapshot import Snapshot
from tests.support.snapshots import HOUR, T0, FakeClock, model_cfg, run, snap, types, window

BAD, OK, BETWEEN = snap(window(psi=0.3)), snap(window(psi=0.01)), snap(window(psi=0.19))


# --- firing -------------------------------------------------------------------------------


def test_fires_only_after_n_consecutive_breaches() -> None:
    policy = Policy([model_cfg(breaches_to_fire=3)], FakeClock())
    assert run(policy, BAD, BAD, OK, BAD) == []  # the clean evaluation restarted the count
    assert policy.breaches("fraud")["feature_psi"] == 1
    assert run(policy, BAD) == []
    [fired] = run(policy, BAD)
    assert fired.type == "model.degraded" and not fired.suppressed
    assert fired.reasons == (Reason("feature_psi", "amount", 0.3, 0.2),)
    assert policy.degraded("fraud")
    assert run(policy, BAD, BAD) == []  # already degraded: no second alarm


@pytest.mark.parametrize(("m", "fires"), [(None, False), (4, True)])
def test_n_of_last_m(m: int | None, fires: bool) -> None:
    policy = Policy([model_cfg(breaches_to_fire=3, breaches_window=m)], FakeClock())
    findings = run(policy, BAD, OK, BAD, BAD)
    assert types(findings) == (["model.degraded"] if fires else [])


def test_n_of_m_forgets_breaches_older_than_m() -> None:
    policy = Policy([model_cfg(breaches_to_fire=2, breaches_window=3)], FakeClock())
    assert run(policy, BAD, OK, OK, BAD) == []
    assert policy.breaches("fraud")["feature_psi"] == 1


def test_breaches_window_below_n_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="breaches_window"):
        PolicySettings(breaches_to_fire=3, breaches_window=2)


def test_below_min_samples_never_breaches_and_keeps_the_count() -> None:
    policy = Policy([model_cfg(breaches_to_fire=2, accuracy_min=0.9)], FakeClock())
    # evaluate leaves statistics out of a thin window; even if some are there, they do not count
    thin = snap(window(psi=0.9, enough=False, drift=True, prediction_psi=0.9, accuracy=0.1))
    assert run(policy, *[thin] * 10) == []
    assert set(policy.breaches("fraud").values()) == {0}
    # no evidence neither breaches nor clears: it does not reset a streak either
    assert types(run(policy, BAD, thin, BAD)) == ["model.degraded"]


def test_performance_rules_need_min_labels_but_estimated_accuracy_does_not() -> None:
    policy = Policy([model_cfg(breaches_to_fire=1, psi_max=None, accuracy_min=0.9)], FakeClock())
    assert run(policy, snap(window(labels=199, accuracy=0.5))) == []
    [fired] = run(policy, snap(window(labels=200, accuracy=0.5)))
    assert fired.reasons == (Reason("accuracy", None, 0.5, 0.9),)

    label_free = Policy([model_cfg(breaches_to_fire=1, estimated_accuracy_min=0.8)], FakeClock())
    [fired] = run(label_free, snap(window(labels=0, estimated_accuracy=0.6)))
    assert fired.reasons == (Reason("estimated_accuracy", None, 0.6, 0.8),)


@pytest.mark.parametrize(
    ("rule", "limit", "metric", "bad"),
    [("f1_min", 0.7, "f1", 0.6), ("roc_auc_min", 0.8, "roc_auc", 0.7),
     ("mae_max", 2.0, "mae", 2.5), ("rmse_max", 3.0, "rmse", 4.0)],
)  # fmt: skip
def test_each_performance_rule(rule: str, limit: float, metric: str, bad: float) -> None:
    policy = Policy([model_cfg(breaches_to_fire=1, **{rule: limit})], FakeClock())
    assert run(policy, snap(window(**{metric: limit}))) == []  # at the limit is not a breach
    [fired] = run(policy, snap(window(**{metric: bad})))
    assert fired.reasons == (Reason(metric, None, bad, limit),)


@pytest.mark.parametrize(
    ("alphas", "numeric", "expected"),
    [
        ({"ks_alpha": None, "chi2_alpha": None}, True, None),
        ({"ks_alpha": None, "chi2_alpha": 0.01}, True, None),
        (
            {"ks_alpha": 0.01, "chi2_alpha": None},
            True,
            (("feature_ks_pvalue", 1e-4, 0.01), ("feature_ks_statistic", 0.1, 0.1)),
        ),
        (
            {"ks_alpha": None, "chi2_alpha": 0.01},
            False,
            (("feature_chi2_pvalue", 1e-3, 0.01), ("feature_js_distance", 0.2, 0.1)),
        ),
        ({"ks_alpha": 0.01, "chi2_alpha": None}, False, None),
    ],
)
def test_drift_tests_are_rules_only_when_their_alpha_is_set(
    alphas: dict[str, float | None],
    numeric: bool,
    expected: tuple[tuple[str, float, float], ...] | None,
) -> None:
    """A drifted feature's evidence: its p-value against alpha, its effect size against the
    policy's floor (issue 11: drift is significant and material)."""
    policy = Policy([model_cfg(breaches_to_fire=1, psi_max=None, **alphas)], FakeClock())
    findings = run(policy, snap(window(drift=numeric, drift_country=not numeric)))
    if expected is None:
        assert findings == []
    else:
        [fired] = findings
        feature = "amount" if numeric else "country"
        assert fired.reasons == tuple(Reason(m, feature, v, t) for m, v, t in expected)


def test_prediction_psi_is_a_rule() -> None:
    policy = Policy([model_cfg(breaches_to_fire=1)], FakeClock())
    [fired] = run(policy, snap(window(prediction_psi=0.5)))
    assert fired.reasons == (Reason("prediction_psi", None, 0.5, 0.2),)


def test_rules_read_the_longest_window_unless_configured() -> None:
    short_drift = snap(window("5m", psi=0.9), window("1h", psi=0.01))
    assert run(Policy([model_cfg(breaches_to_fire=1)], FakeClock()), short_drift) == []
    policy = Policy([model_cfg(breaches_to_fire=1, window="5m")], FakeClock())
    [fired] = run(policy, short_drift)
    assert (fired.window, fired.window_start, fired.window_end) == ("5m", T0 - 300, T0)


# --- cooldown -----------------------------------------------------------------------------


def test_cooldown_suppresses_a_second_fire_and_reports_it() -> None:
    clock = FakeClock()
    policy = Policy([model_cfg(breaches_to_fire=1)], clock)
    assert types(run(policy, BAD, OK)) == ["model.degraded", "model.recovered"]
    clock.now += HOUR - 1
    [again] = run(policy, BAD)
    assert again.type == "model.degraded" and again.suppressed
    assert again.suppressed_reason == "cooldown"
    assert policy.degraded("fraud")  # the state is true; only the webhook is held back
    # its recovery is not sent either: the receiver never heard of this degradation
    assert types(run(policy, OK)) == ["model.recovered (suppressed)"]
    clock.now += 1
    assert types(run(policy, BAD)) == ["model.degraded"]


def test_a_degradation_outlasting_the_cooldown_is_sent_when_it_ends() -> None:
    clock = FakeClock()
    policy = Policy([model_cfg(breaches_to_fire=1)], clock)
    run(policy, BAD, OK)
    clock.now += 60
    assert types(run(policy, BAD)) == ["model.degraded (suppressed)"]
    clock.now += HOUR / 2
    assert run(policy, BAD) == []
    clock.now += HOUR / 2
    assert types(run(policy, BAD)) == ["model.degraded"]
    assert run(policy, BAD) == []
    assert types(run(policy, OK)) == ["model.recovered"]


# --- recovery -----------------------------------------------------------------------------


def test_recovery_needs_n_evaluations_below_the_recovery_threshold() -> None:
    policy = Policy([model_cfg(breaches_to_fire=2, recovery_margin=0.1)], FakeClock())
    run(policy, BAD, BAD)
    # 0.19 is inside psi_max 0.2 but not inside the recovery threshold 0.18
    assert run(policy, *[BETWEEN] * 5) == []
    assert run(policy, OK, BETWEEN, OK) == []  # the marginal evaluation restarted the streak
    [recovered] = run(policy, OK)
    assert recovered.type == "model.recovered"
    assert recovered.reasons == (Reason("feature_psi", "amount", 0.01, pytest.approx(0.18)),)
    assert not policy.degraded("fraud")
    assert policy.breaches("fraud")["feature_psi"] == 0


def test_recovery_threshold_of_a_lower_limit() -> None:
    policy = Policy([model_cfg(breaches_to_fire=1, psi_max=None, accuracy_min=0.9)], FakeClock())
    run(policy, snap(window(accuracy=0.8)))
    assert run(policy, snap(window(accuracy=0.905))) == []  # recovery needs 0.91
    assert types(run(policy, snap(window(accuracy=0.92)))) == ["model.recovered"]


def test_no_evidence_does_not_recover() -> None:
    policy = Policy([model_cfg(breaches_to_fire=1, accuracy_min=0.9)], FakeClock())
    [fired] = run(policy, snap(window(psi=0.3, accuracy=0.5)))
    assert {r.metric for r in fired.reasons} == {"feature_psi", "accuracy"}
    # drift is fine again, but accuracy, which fired too, has too few labels to say anything
    assert run(policy, *[snap(window(labels=5, accuracy=0.99))] * 5) == []
    assert policy.degraded("fraud")
    assert types(run(policy, snap(window(accuracy=0.99)))) == ["model.recovered"]


# --- versions, ids, state -----------------------------------------------------------------


def test_version_change_is_reported() -> None:
    policy = Policy([model_cfg()], FakeClock())
    assert run(policy, snap(version=None), snap(version="v1"), snap(version="v1")) == []
    [changed] = run(policy, snap(version="v2"))
    assert changed.type == "model.version_changed"
    assert (changed.previous_version, changed.version) == ("v1", "v2")
    assert finding_data(changed)["previous_version"] == "v1"


def test_event_ids_are_stable_distinct_and_usable_as_webhook_ids() -> None:
    sequence = [BAD, OK, snap(version="v2")]
    first = run(Policy([model_cfg(breaches_to_fire=1)], FakeClock(), lineage="L"), *sequence)
    again = run(Policy([model_cfg(breaches_to_fire=1)], FakeClock(), lineage="L"), *sequence)
    other = run(Policy([model_cfg(breaches_to_fire=1)], FakeClock()), *sequence)
    assert [f.event_id for f in first] == [f.event_id for f in again]
    assert len({f.event_id for f in first + other}) == 6  # a fresh lineage never repeats ids
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,128}", f.event_id) for f in first)


def test_state_round_trip_resumes_exactly() -> None:
    cfg = [model_cfg(breaches_to_fire=2), model_cfg("churn", breaches_to_fire=2)]
    clock = FakeClock()
    live = Policy(cfg, clock)
    run(live, BAD, BAD, OK, snap(window(psi=0.5), model="churn"))
    clock.now += 600
    state = json.loads(json.dumps(live.to_state()))  # plain JSON types only

    # a new process: another monotonic origin; the 10 minutes since the alarm carry over
    restored = Policy.from_state(state, cfg, FakeClock(5.0))
    assert restored.degraded("fraud") and restored.breaches("churn") == live.breaches("churn")
    rest = [OK, BAD, BAD, snap(window(psi=0.5), model="churn")]
    expected = run(live, *rest)
    assert types(expected) == ["model.recovered", "model.degraded (suppressed)", "model.degraded"]
    assert run(restored, *rest) == expected  # same findings, same event ids


def test_restoring_drops_unconfigured_models_and_refuses_unknown_formats() -> None:
    state = Policy([model_cfg(), model_cfg("gone")], FakeClock()).to_state()
    restored = Policy.from_state(state, [model_cfg()], FakeClock())
    assert "gone" not in restored.to_state()["models"]
    with pytest.raises(ValueError, match="format"):
        Policy.from_state({**state, "format": 99}, [model_cfg()], FakeClock())


# --- webhook data -------------------------------------------------------------------------


def test_data_matches_the_webhook_contract() -> None:
    policy = Policy([model_cfg(breaches_to_fire=1)], FakeClock())
    [fired] = run(policy, snap(window(psi=0.31, drift=True, labels=40211)))
    kafka: Mapping[str, Mapping[int | str, list[int]]] = {"predictions": {0: [1200, 9800]}}
    data = finding_data(fired, kafka)
    assert data == {
        "model": "fraud",
        "version": "v1",
        "window": "1h",
        "window_start": "2026-11-18T10:06:40Z",
        "window_end": "2026-11-18T11:06:40Z",
        "predictions": 5000,
        "labels": 40211,
        "reasons": [
            {"metric": "feature_psi", "feature": "amount", "value": 0.31, "threshold": 0.2},
            {
                "metric": "feature_ks_pvalue",
                "feature": "amount",
                "value": 0.0001,
                "threshold": 0.01,
            },
            {"metric": "feature_ks_statistic", "feature": "amount", "value": 0.1, "threshold": 0.1},
        ],
        "top_drifted_features": [{"feature": "amount", "psi": 0.31, "drift_detected": True}],
        "kafka": {"predictions": {"0": [1200, 9800]}},
    }
    assert "kafka" not in finding_data(fired)
    body = orjson.loads(build_body(fired.type, data, T0))
    assert body["type"] == "model.degraded" and body["data"] == data


# --- properties ---------------------------------------------------------------------------


# Rules of the property test and, per outcome, the value that produces it (None: absent). The
# thresholds: psi 0.2 (recovers at or below 0.18), accuracy 0.9 (recovers at or above 0.91),
# mae 2.0 (recovers at or below 1.8); the drift rule breaches or clears, never marginal.
RULE_VALUES: dict[str, dict[str, float | bool | None]] = {
    "feature_psi": {"breach": 0.3, "marginal": 0.19, "clear": 0.05},
    "prediction_psi": {"breach": 0.3, "marginal": 0.19, "clear": 0.05, "absent": None},
    "feature_drift": {"breach": True, "clear": False},
    "accuracy": {"breach": 0.8, "marginal": 0.905, "clear": 0.95, "absent": None},
    "mae": {"breach": 2.5, "marginal": 1.9, "clear": 1.0, "absent": None},
}
# the Reason metrics a breaching rule gives, and the one its recovery evidence gives
BREACH_METRICS = {"feature_drift": {"feature_ks_pvalue", "feature_ks_statistic"}}
RECOVERY_METRIC = {"feature_drift": "feature_ks_pvalue"}
THIN = None  # a window below min_samples: every rule absent

Step = dict[str, str] | None


def step_snapshot(step: Step) -> Snapshot:
    if step is None:
        return snap(window(enough=False))
    performance = {
        rule: value
        for rule in ("accuracy", "mae")
        if isinstance(value := RULE_VALUES[rule][step[rule]], float)
    }
    pred_psi = RULE_VALUES["prediction_psi"][step["prediction_psi"]]
    return snap(
        window(
            psi=float(RULE_VALUES["feature_psi"][step["feature_psi"]] or 0.0),
            drift=bool(RULE_VALUES["feature_drift"][step["feature_drift"]]),
            prediction_psi=pred_psi if isinstance(pred_psi, float) else None,
            **performance,
        )
    )


def counted(evidence: list[str], m: int | None) -> int:
    """Breaches toward firing: among the last ``m`` evidenced outcomes, else the last run."""
    seen = [o == "breach" for o in evidence]
    if m is not None:
        return sum(seen[-m:])
    streak = 0
    for breach in reversed(seen):
        if not breach:
            break
        streak += 1
    return streak


def expected_findings(
    steps: list[tuple[Step, float]], n: int, m: int | None, cooldown: float
) -> tuple[list[tuple[str, bool, float, frozenset[str]]], list[bool]]:
    """The policy as its docstring states it, written out as a three-phase machine.

    Returns (type, sent, time, reason metrics) per finding and the degraded flag after each step.
    """
    phase = "ok"  # "ok" | "down-sent" | "down-unsent"
    evidence: dict[str, list[str]] = {rule: [] for rule in RULE_VALUES}
    fired: list[str] = []
    clean = 0
    last_alarm: float | None = None
    now = 1000.0
    out: list[tuple[str, bool, float, frozenset[str]]] = []
    degraded: list[bool] = []
    for step, dt in steps:
        now += dt
        outcome = {rule: "absent" if step is None else step[rule] for rule in RULE_VALUES}
        for rule, o in outcome.items():
            if o != "absent":
                evidence[rule].append(o)
        breaching = [r for r, o in outcome.items() if o == "breach"]
        metrics = frozenset(x for r in breaching for x in BREACH_METRICS.get(r, {r}))
        may_alarm = last_alarm is None or now - last_alarm >= cooldown

        if phase == "ok":
            fired = [r for r in RULE_VALUES if counted(evidence[r], m) >= n]
            if fired:
                phase, clean = ("down-sent" if may_alarm else "down-unsent"), 0
                out.append(("model.degraded", may_alarm, now, metrics))
                last_alarm = now if may_alarm else last_alarm
            degraded.append(phase != "ok")
            continue
        if phase == "down-unsent" and may_alarm and breaching:
            phase, last_alarm = "down-sent", now
            out.append(("model.degraded", True, now, metrics))
        values = set(outcome.values())
        if values & {"breach", "marginal"}:
            clean = 0
        elif values != {"absent"} and all(outcome[r] == "clear" for r in fired):
            clean += 1
        if clean >= n:
            recovered = frozenset(RECOVERY_METRIC.get(r, r) for r in fired)
            out.append(("model.recovered", phase == "down-sent", now, recovered))
            phase, fired, clean = "ok", [], 0
            evidence = {rule: [] for rule in RULE_VALUES}
        degraded.append(phase != "ok")
    return out, degraded


def everywhere(outcome: str) -> dict[str, str]:
    return {rule: outcome if outcome in v else "clear" for rule, v in RULE_VALUES.items()}


BREACH, CLEAR = everywhere("breach"), everywhere("clear")


def _rule_outcomes() -> st.SearchStrategy[Step]:
    each = st.fixed_dictionaries({r: st.sampled_from(sorted(v)) for r, v in RULE_VALUES.items()})
    same = st.sampled_from(["breach", "clear"]).map(everywhere)
    return st.one_of(st.none(), each, same, same)


# runs of 1 to 3 equal evaluations (a streak is what fires and recovers), mostly well inside
# the cooldown so that alarms fall into it and are deferred
STEPS = st.lists(
    st.tuples(
        _rule_outcomes(),
        st.integers(1, 3),
        st.floats(0, HOUR / 8) | st.floats(0, HOUR / 8) | st.floats(0, 2 * HOUR),
    ),
    min_size=4,
    max_size=24,
).map(lambda runs: [(step, gap) for step, times, gap in runs for _ in range(times)])


@settings(max_examples=300, deadline=None)
@given(
    steps=STEPS,
    n=st.integers(1, 3),
    extra=st.none() | st.integers(0, 2),
    cooldown=st.sampled_from([0.0, HOUR / 2, HOUR, 24 * HOUR]),
)
# Always run, whatever is generated: a clean evaluation counts toward recovery only with every
# rule that fired evidenced and clear; a recovery from an alarm never sent is not sent either;
# an alarm deferred by the cooldown is sent when it ends.
@example(
    steps=[(BREACH, 0.0), ({**CLEAR, "prediction_psi": "absent"}, 0.0), (CLEAR, 0.0)],
    n=1,
    extra=None,
    cooldown=HOUR,
)
@example(
    steps=[(BREACH, 0.0), (CLEAR, 0.0), (BREACH, 0.0), (CLEAR, 0.0)], n=1, extra=None, cooldown=HOUR
)
@example(
    steps=[(BREACH, 0.0), (CLEAR, 0.0), (BREACH, 0.0), (BREACH, HOUR), (CLEAR, 0.0)],
    n=1,
    extra=None,
    cooldown=HOUR,
)
def test_findings_follow_an_independent_model_of_the_policy(
    steps: list[tuple[Step, float]], n: int, extra: int | None, cooldown: float
) -> None:
    """Generated breach/marginal/clear/absent sequences over five rules (PSI twice, drift,
    accuracy, MAE), N in a row or N of M, a cooldown the steps straddle: every finding (type,
    sent or suppressed, when, its evidence) and the degraded state after each evaluation are
    what the model above predicts."""
    m = None if extra is None else n + extra
    cfg = model_cfg(
        breaches_to_fire=n, breaches_window=m, accuracy_min=0.9, mae_max=2.0, cooldown=cooldown
    )
    clock = FakeClock()
    policy = Policy([cfg], clock)
    got: list[tuple[str, bool, float, frozenset[str]]] = []
    degraded: list[bool] = []
    for step, dt in steps:
        clock.now += dt
        for f in policy.observe(step_snapshot(step)):
            got.append(
                (f.type, not f.suppressed, clock.now, frozenset(r.metric for r in f.reasons))
            )
        degraded.append(policy.degraded("fraud"))
    expected, expected_degraded = expected_findings(steps, n, m, cooldown)
    assert got == expected
    assert degraded == expected_degraded

    # what a receiver sees: alarms and recoveries alternate, alarms at least a cooldown apart
    sent = [(kind, t) for kind, was_sent, t, _ in got if was_sent]
    kinds = [kind for kind, _ in sent]
    assert kinds == (["model.degraded", "model.recovered"] * len(kinds))[: len(kinds)]
    fired = [t for kind, t in sent if kind == "model.degraded"]
    assert all(b - a >= cooldown for a, b in itertools.pairwise(fired))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([BAD, OK, BETWEEN]), st.floats(0, HOUR)), max_size=40))
def test_sent_alarms_alternate_and_respect_the_cooldown(
    steps: list[tuple[Snapshot, float]],
) -> None:
    clock = FakeClock()
    policy = Policy([model_cfg(breaches_to_fire=2, breaches_window=3)], clock)
    sent: list[tuple[str, float]] = []
    for snapshot, dt in steps:
        clock.now += dt
        sent += [(f.type, clock.now) for f in policy.observe(snapshot) if not f.suppressed]
    kinds = [kind for kind, _ in sent]
    assert kinds == (["model.degraded", "model.recovered"] * len(kinds))[: len(kinds)]
    fired = [t for kind, t in sent if kind == "model.degraded"]
    assert all(b - a >= HOUR for a, b in itertools.pairwise(fired))
