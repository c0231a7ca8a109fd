"""Windows + reference profile → :class:`~monitor.snapshot.Snapshot`. Computes; decides nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from monitor.settings import PolicySettings
from monitor.snapshot import (
    FeatureDrift,
    FeatureQuality,
    ModelResult,
    Snapshot,
    UnseenCategories,
    UnseenValue,
    WindowResult,
)
from monitor.state.drift_plan import DriftPlan, FloatArray
from monitor.state.model_state import ModelState
from monitor.state.window import IntArray, WindowView
from monitor.stats.fdr import benjamini_hochberg


def _significant(policy: PolicySettings, plan: DriftPlan, pvalues: FloatArray) -> list[bool]:
    """Each feature's test verdict, after the model's multiple-testing correction."""
    if policy.fdr == "benjamini_hochberg":
        return benjamini_hochberg(pvalues, policy.fdr_level)[0].tolist()  # type: ignore[no-any-return]
    # Each feature tested alone, at its own kind's level (a NaN p-value is never significant).
    limits = np.array([policy.detection_level(kind) for kind in plan.kinds])
    return (pvalues < limits).tolist()  # type: ignore[no-any-return]


def feature_drifts(
    plan: DriftPlan,
    total: IntArray,
    policy: PolicySettings,
    unseen: Mapping[str, tuple[list[tuple[str, int]], int]],
) -> tuple[FeatureDrift, ...]:
    """Drift, data quality and the drift verdict of every slot of ``plan`` over ``total``."""
    cols = plan.evaluate(total)
    significant = _significant(policy, plan, cols.pvalue)
    # One tolist per column: Python floats without a numpy scalar per feature and statistic.
    count, psi_, ks_d, ks_p, chi2_p, js, missing, mismatch, outside, unseen_ratio = (
        c.tolist()
        for c in (
            cols.count,
            cols.psi,
            cols.ks_statistic,
            cols.ks_pvalue,
            cols.chi2_pvalue,
            cols.js_distance,
            cols.missing,
            cols.type_mismatch,
            cols.out_of_range,
            cols.unseen,
        )
    )
    drifts = []
    for i, (name, kind, ks_bound) in enumerate(
        zip(plan.names, plan.kinds, plan.ks_bounds, strict=True)
    ):
        numeric = ks_bound is not None
        found = unseen.get(name)
        drifts.append(
            FeatureDrift(
                name,
                kind,
                count[i],
                psi_[i],
                ks_d[i] if numeric else None,
                ks_p[i] if numeric else None,
                ks_bound,
                chi2_p[i],
                policy.drifted(kind, significant[i], ks_d[i] if numeric else js[i]),
                None if numeric else js[i],
                FeatureQuality(
                    missing[i],
                    mismatch[i],
                    outside[i] if numeric else None,
                    None if numeric else unseen_ratio[i],
                ),
                plan.reference_quality[i],
                None
                if found is None
                else UnseenCategories(tuple(UnseenValue(v, c) for v, c in found[0]), found[1]),
            )
        )
    return tuple(drifts)


def evaluate_window(state: ModelState, view: WindowView) -> WindowResult:
    policy = state.cfg.policy
    plan = state.drift_plan
    feature_slots = plan.slots
    predictions = (
        int(view.total[feature_slots[0].offset : feature_slots[0].stop].sum())
        if feature_slots
        else 0
    )
    enough = predictions >= policy.min_samples
    perf = state.perf.snapshot(view.name)
    performance = perf.metrics()
    if not enough:
        return WindowResult(
            view.name,
            view.start,
            view.end,
            predictions,
            perf.labels,
            enough,
            performance=performance,
            min_samples=policy.min_samples,
        )
    drifts = feature_drifts(plan, view.total, policy, view.unseen)
    prediction_psi = None
    if state.prediction_plan.slots:
        prediction_psi = float(state.prediction_plan.evaluate(view.total).psi[0])
    return WindowResult(
        window=view.name,
        start=view.start,
        end=view.end,
        predictions=predictions,
        labels=perf.labels,
        enough_samples=True,
        features=drifts,
        prediction_psi=prediction_psi,
        performance=performance,
        min_samples=policy.min_samples,
    )


def evaluate_model(state: ModelState, wall_now: float) -> ModelResult:
    ref = state.reference
    windows = tuple(evaluate_window(state, v) for v in state.views()) if ref is not None else ()
    return ModelResult(
        model=state.cfg.name,
        version=state.version,
        reference_ready=ref is not None,
        reference_hash=ref.content_hash if ref is not None else None,
        evaluated_at=wall_now,
        windows=windows,
        versions=state.versions.present(),
        bootstrap_events=int(getattr(state.cfg.reference, "bootstrap_events", 0)),
        bootstrap_needed=state.bootstrap_needed,
    )


def evaluate(states: Iterable[ModelState], wall_clock: Callable[[], float]) -> Snapshot:
    """Evaluate every model; ``wall_clock`` stamps the results (injected for tests)."""
    now = wall_clock()
    return Snapshot(created_at=now, models=tuple(evaluate_model(s, now) for s in states))
