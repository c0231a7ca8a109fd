"""Degradation policy: Snapshots in, Findings out. Decides, never acts.

Each configured :class:`Rule` reads one window per evaluation (``policy.window``, default the
model's longest) and comes out as a breach, marginal (inside the firing threshold, outside the
recovery one), clear, or absent: no evidence (window below ``min_samples``, fewer than
``min_labels`` labels for a label-based metric, value missing). Absent changes nothing, so a
quiet stream neither fires nor recovers a model.

ok → degraded once a rule breaches ``breaches_to_fire`` times in a row (or among its last
``breaches_window`` evidenced evaluations). Within ``cooldown`` of the last ``model.degraded``
sent, the transition still happens but is reported suppressed; if the model still breaches when
the cooldown ends, the alarm is sent then: delayed, never lost. degraded → ok after
``breaches_to_fire`` consecutive evaluations with no rule outside its recovery threshold and
every rule that fired clear (hysteresis). The injected monotonic clock serves the cooldown only.

``model.version_changed`` is sent once per *new* version (:mod:`monitor.state.versions`): the
first time a version is among a Snapshot's present versions while the policy already knows
another. Flips between known versions (a canary interleaved with the stable version, a
rollback) are no change. The last :data:`~monitor.state.versions.MAX_VERSIONS` versions seen are
kept per model, in the checkpoint.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from monitor.alerting.policy_state import ModelPolicyState, restore_model_state
from monitor.settings import ModelSettings, PolicySettings
from monitor.snapshot import FeatureDrift, ModelResult, Snapshot, WindowResult
from monitor.state import restore_checks as checks
from monitor.state.versions import touch
from monitor.vocabulary import FeatureKind

__all__ = ["Finding", "Policy", "Reason", "Rule", "rules_for"]

FindingType = Literal["model.degraded", "model.recovered", "model.version_changed"]
Outcome = Literal["breach", "marginal", "clear", "absent"]
STATE_FORMAT: Final = 2  # 2 added "versions"; 1 is read as having seen its "version" only
TOP_FEATURES: Final = 5
#: (rule = Snapshot performance key, setting, upper limit, needs labels); lower limits are on
#: ratios in [0, 1], which is what their recovery thresholds assume.
_PERFORMANCE: Final = (
    ("accuracy", "accuracy_min", False, True),
    ("f1", "f1_min", False, True),
    ("roc_auc", "roc_auc_min", False, True),
    ("estimated_accuracy", "estimated_accuracy_min", False, False),
    ("mae", "mae_max", True, True),
    ("rmse", "rmse_max", True, True),
)
#: Data-quality rules: (rule, setting, FeatureQuality attribute). The value is the window's
#: ratio minus the reference's own, so what the training data already had is not an alarm.
_QUALITY: Final = (
    ("feature_missing_excess", "missing_ratio_max", "missing"),
    ("feature_out_of_range_excess", "out_of_range_ratio_max", "out_of_range"),
    ("feature_unseen_excess", "unseen_ratio_max", "unseen"),
)


@dataclass(frozen=True, slots=True)
class Reason:
    """One piece of evidence: ``metric`` of ``feature`` (None: model-level) against a limit."""

    metric: str
    feature: str | None
    value: float
    threshold: float


@dataclass(frozen=True, slots=True)
class Rule:
    """One configured check; ``upper``: breach above ``threshold``, else below it."""

    name: str
    threshold: float
    recovery: float
    upper: bool = True
    needs_labels: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    """A state transition (or a version change) for the app to log, count and send.

    A transition with a ``suppressed_reason`` (``"cooldown"``) happened but is not to be sent.
    ``event_id`` is the webhook id: the same transition from the same state gives the same id.
    """

    type: FindingType
    model: str
    version: str | None
    window: str | None
    window_start: float | None
    window_end: float | None
    predictions: int
    labels: int
    reasons: tuple[Reason, ...]
    event_id: str
    suppressed_reason: str | None = None
    previous_version: str | None = None
    #: (feature, psi, drift_detected) of the most drifted features, worst first.
    top_drifted: tuple[tuple[str, float, bool], ...] = ()

    @property
    def suppressed(self) -> bool:
        return self.suppressed_reason is not None


def rules_for(policy: PolicySettings) -> tuple[Rule, ...]:
    """The rules a policy configures, with recovery thresholds from ``recovery_margin``."""
    keep = 1.0 - policy.recovery_margin
    rules: list[Rule] = []
    if policy.psi_max is not None:
        rules.append(Rule("feature_psi", policy.psi_max, policy.psi_max * keep))
        rules.append(Rule("prediction_psi", policy.psi_max, policy.psi_max * keep))
    alpha = policy.ks_alpha if policy.ks_alpha is not None else policy.chi2_alpha
    if alpha is not None:  # a test decision has no margin: the clean streak is its hysteresis
        rules.append(Rule("feature_drift", alpha, alpha, upper=False))
    for name, key, _ in _QUALITY:
        ceiling: float | None = getattr(policy, key)
        if ceiling is not None:
            rules.append(Rule(name, ceiling, ceiling * keep))
    for name, key, upper, labelled in _PERFORMANCE:
        limit: float | None = getattr(policy, key)
        if limit is not None:
            recovery = limit * keep if upper else 1.0 - (1.0 - limit) * keep
            rules.append(Rule(name, limit, recovery, upper, labelled))
    return tuple(rules)


def _drift_alpha(kind: FeatureKind, policy: PolicySettings) -> float | None:
    """The level a feature's test ran at, or None when that test is not a rule."""
    own = policy.ks_alpha if kind == "numeric" else policy.chi2_alpha
    return None if own is None else policy.detection_level(kind)


@dataclass(frozen=True, slots=True)
class _Check:
    outcome: Outcome
    breaches: tuple[Reason, ...] = ()  # worst first
    worst: Reason | None = None  # against the recovery threshold, for model.recovered


def _check(rule: Rule, w: WindowResult | None, policy: PolicySettings) -> _Check:
    if w is None or not w.enough_samples:
        return _Check("absent")
    if rule.name == "feature_drift":
        return _check_drift(w, policy)
    metric = rule.name
    values: list[tuple[str | None, float]]
    if rule.name == "feature_psi":
        values = [(f.feature, f.psi) for f in w.features]
    elif attr := next((a for name, _, a in _QUALITY if name == rule.name), None):
        values = [(f.feature, v) for f in w.features if (v := _excess(f, attr)) is not None]
    elif rule.name == "prediction_psi":
        values = [] if w.prediction_psi is None else [(None, w.prediction_psi)]
    elif rule.needs_labels and w.labels < policy.min_labels:
        return _Check("absent")
    else:
        value = w.performance.get(rule.name)
        values = [] if value is None else [(None, value)]
    values = [(f, v) for f, v in values if math.isfinite(v)]
    if not values:
        return _Check("absent")
    values.sort(key=lambda fv: -fv[1] if rule.upper else fv[1])

    def beyond(v: float, limit: float) -> bool:
        return v > limit if rule.upper else v < limit

    hits = tuple(
        Reason(metric, f, v, rule.threshold) for f, v in values if beyond(v, rule.threshold)
    )
    feature, value = values[0]
    worst = Reason(metric, feature, value, rule.recovery)
    if hits:
        return _Check("breach", hits, worst)
    return _Check("marginal" if beyond(value, rule.recovery) else "clear", (), worst)


def _check_drift(w: WindowResult, policy: PolicySettings) -> _Check:
    """``drift_detected`` is the verdict (significant and material, ``PolicySettings.drifted``);
    each drifted feature's evidence is its test's p-value and its effect size, with their
    limits."""
    tests = []
    for f in w.features:
        alpha = _drift_alpha(f.kind, policy)
        p = f.ks_pvalue if f.kind == "numeric" else f.chi2_pvalue
        if alpha is not None and p is not None:
            metric = "feature_ks_pvalue" if f.kind == "numeric" else "feature_chi2_pvalue"
            tests.append((f, Reason(metric, f.feature, p, alpha)))
    if not tests:
        return _Check("absent")
    tests.sort(key=lambda t: t[1].value)
    hits: list[Reason] = []
    for f, reason in (t for t in tests if t[0].drift_detected):
        hits.append(reason)
        if f.effect_size is not None:
            effect = "feature_ks_statistic" if f.kind == "numeric" else "feature_js_distance"
            hits.append(Reason(effect, f.feature, f.effect_size, policy.min_effect(f.kind)))
    return _Check("breach" if hits else "clear", tuple(hits), tests[0][1])


def _excess(f: FeatureDrift, attr: str) -> float | None:
    """A feature's quality ratio minus the reference's (None: not this kind's, or unknown)."""
    if f.quality is None or f.reference_quality is None:
        return None
    now, then = getattr(f.quality, attr), getattr(f.reference_quality, attr)
    return None if now is None or then is None else float(now - then)


def _top_drifted(
    w: WindowResult | None, psi_max: float | None
) -> tuple[tuple[str, float, bool], ...]:
    limit = math.inf if psi_max is None else psi_max
    features = w.features if w is not None else ()
    hits = sorted((f for f in features if f.drift_detected or f.psi > limit), key=lambda f: -f.psi)
    return tuple((f.feature, f.psi, f.drift_detected) for f in hits[:TOP_FEATURES])


class Policy:
    """Per-model degradation state over successive Snapshots.

    Parameters
    ----------
    settings_models
        The configured models; others in a Snapshot are ignored.
    clock
        Monotonic seconds, for the cooldown only.
    lineage
        Salt of the event ids, kept in :meth:`to_state`. A policy started without a checkpoint
        gets a fresh one, so its transition counters restarting at 0 cannot repeat an earlier
        run's ids (receivers would drop the new event as a duplicate).
    """

    def __init__(
        self,
        settings_models: Sequence[ModelSettings],
        clock: Callable[[], float] = time.monotonic,
        *,
        lineage: str | None = None,
    ) -> None:
        self._clock = clock
        self._lineage = lineage if lineage is not None else uuid.uuid4().hex
        self._cfg = {m.name: m for m in settings_models}
        self._rules = {m.name: rules_for(m.policy) for m in settings_models}
        self._window = {
            m.name: m.policy.window or max(m.windows, key=lambda w: w.length).name
            for m in settings_models
        }
        self._state = {m.name: ModelPolicyState() for m in settings_models}

    def degraded(self, model: str) -> bool:
        """Whether ``model`` is in the degraded state (suppressed degradations included)."""
        return self._state[model].degraded

    def breaches(self, model: str) -> dict[str, int]:
        """Per rule, the breaches counted toward ``breaches_to_fire`` (for the gauge)."""
        state, policy = self._state[model], self._cfg[model].policy
        return {
            r.name: self._count(state.history.get(r.name, []), policy) for r in self._rules[model]
        }

    @staticmethod
    def _count(history: list[bool], policy: PolicySettings) -> int:
        if policy.breaches_window is not None:
            return sum(history[-policy.breaches_window :])
        return len(list(itertools.takewhile(bool, reversed(history))))

    def observe(self, snapshot: Snapshot) -> list[Finding]:
        """Advance every configured model in ``snapshot`` by one evaluation."""
        return [f for m in snapshot.models if m.model in self._cfg for f in self._observe_model(m)]

    def _observe_model(self, result: ModelResult) -> Iterable[Finding]:
        name, state = result.model, self._state[result.model]
        policy = self._cfg[name].policy
        window = result.window(self._window[name])
        now = self._clock()

        def finding(kind: FindingType, reasons: Iterable[Reason], **extra: Any) -> Finding:
            state.transitions += 1
            key = f"{self._lineage}\0{name}\0{kind}\0{state.transitions}".encode()
            extra.setdefault("version", result.version)
            return Finding(
                type=kind,
                model=name,
                window=window.window if window else self._window[name],
                window_start=window.start if window else None,
                window_end=window.end if window else None,
                predictions=window.predictions if window else 0,
                labels=window.labels if window else 0,
                reasons=tuple(reasons),
                event_id="mm_" + hashlib.sha256(key).hexdigest()[:40],
                top_drifted=_top_drifted(window, policy.psi_max),
                **extra,
            )

        out: list[Finding] = []
        present = result.versions or ((result.version,) if result.version is not None else ())
        previous = state.version  # what each new version replaces: the one current before it
        for v in present:
            if touch(state.versions, v):
                out.append(
                    finding("model.version_changed", (), version=v, previous_version=previous)
                )
                previous = v
            elif previous is None:  # the first version this policy meets is adopted silently
                previous = v
        state.version = result.version if result.version is not None else state.version

        checks = {r.name: _check(r, window, policy) for r in self._rules[name]}
        keep = policy.breaches_window or policy.breaches_to_fire
        for rule, check in checks.items():
            if check.outcome != "absent":
                history = state.history.setdefault(rule, [])
                history.append(check.outcome == "breach")
                del history[:-keep]
        breaching = [r for c in checks.values() for r in c.breaches]
        cooled = state.last_sent is None or now - state.last_sent >= policy.cooldown

        if not state.degraded:
            firing = [
                r
                for r in checks
                if self._count(state.history.get(r, []), policy) >= policy.breaches_to_fire
            ]
            if firing:
                state.degraded, state.notified = True, cooled
                state.fired_rules, state.clean_streak = firing, 0
                state.last_sent = now if cooled else state.last_sent
                quiet = None if cooled else "cooldown"
                out.append(finding("model.degraded", breaching, suppressed_reason=quiet))
            return out

        if not state.notified and cooled and breaching:  # the deferred alarm
            state.notified, state.last_sent = True, now
            out.append(finding("model.degraded", breaching))
        if any(c.outcome in ("breach", "marginal") for c in checks.values()):
            state.clean_streak = 0
        elif any(c.outcome != "absent" for c in checks.values()) and all(
            checks[r].outcome == "clear" for r in state.fired_rules if r in checks
        ):
            state.clean_streak += 1
        if state.clean_streak >= policy.breaches_to_fire:
            reasons = [c.worst for r, c in checks.items() if r in state.fired_rules and c.worst]
            # a degradation that was never sent is not followed by a recovery either
            quiet = None if state.notified else "cooldown"
            out.append(finding("model.recovered", reasons, suppressed_reason=quiet))
            state.degraded = state.notified = False
            state.history, state.fired_rules, state.clean_streak = {}, [], 0
        return out

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-ready state; the cooldown is kept as the age of the last sent alarm,
        because monotonic clocks of two processes are not comparable."""
        now = self._clock()
        models = {name: asdict(s) for name, s in self._state.items()}
        for m in models.values():
            m["last_sent"] = None if m["last_sent"] is None else now - m["last_sent"]
        return {"format": STATE_FORMAT, "lineage": self._lineage, "models": models}

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        settings_models: Sequence[ModelSettings],
        clock: Callable[[], float] = time.monotonic,
    ) -> Policy:
        """Rebuild from :meth:`to_state`. Models no longer configured are dropped, new ones
        start fresh; time spent down does not count toward a cooldown."""
        if not isinstance(state, Mapping) or state.get("format") not in (1, STATE_FORMAT):
            found = state.get("format") if isinstance(state, Mapping) else None
            raise ValueError(f"unsupported policy state format {found!r}")
        lineage = checks.text(state.get("lineage"), "policy lineage")
        policy = cls(settings_models, clock, lineage=lineage)
        now = clock()
        for name, raw in checks.mapping(state.get("models"), "policy models").items():
            if name in policy._state:  # rules no longer configured are never read
                policy._state[name] = restore_model_state(raw, now, policy._cfg[name].policy)
        return policy
