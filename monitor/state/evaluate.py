"""Windows + reference profile → :class:`~monitor.snapshot.Snapshot`. Computes; decides nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

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
from monitor.state.drift_plan import DriftPlan, FeatureColumns, FloatArray
from monitor.state.model_state import ModelState
from monitor.state.window import WindowView
from monitor.stats.fdr import benjamini_hochberg
from monitor.vocabulary import FeatureKind


def _significant(
    policy: PolicySettings, kinds: Sequence[FeatureKind], pvalues: FloatArray
) -> npt.NDArray[np.bool_]:
    """Each feature's test verdict, after the model's multiple-testing correction."""
    if policy.fdr == "benjamini_hochberg":
        return benjamini_hochberg(pvalues, policy.fdr_level)[0]
    # Each feature tested alone, at its own kind's level (a NaN p-value is never significant).
    limits = np.array([policy.detection_level(kind) for kind in kinds])
    return pvalues < limits


def _present(n: int, values: FloatArray, where: npt.NDArray[np.bool_]) -> list[float | None]:
    """The first ``n`` values as Python floats, None where ``where`` is False (one ``tolist``
    per column: no numpy scalar per feature and statistic)."""
    present = values[:n].astype(object)
    present[~where] = None
    out: list[float | None] = present.tolist()
    return out


def _categories(top: tuple[list[tuple[str, int]], int] | None) -> UnseenCategories | None:
    if top is None:
        return None
    return UnseenCategories(tuple(UnseenValue(v, c) for v, c in top[0]), top[1])


def feature_drifts(
    plan: DriftPlan,
    cols: FeatureColumns,
    policy: PolicySettings,
    unseen: Mapping[str, tuple[list[tuple[str, int]], int]],
) -> tuple[FeatureDrift, ...]:
    """Drift, data quality and the drift verdict of each feature of ``plan`` (``cols`` is its
    evaluation; the prediction's slot, last, has no verdict and takes no part in the FDR)."""
    n = plan.n_features
    numeric = cols.numeric[:n]
    effect = np.where(numeric, cols.ks_statistic[:n], cols.js_distance[:n])
    drifted = policy.drifted(numeric, _significant(policy, plan.kinds[:n], cols.pvalue[:n]), effect)
    return tuple(
        FeatureDrift(
            name,
            kind,
            count,
            psi,
            d,
            p,
            bound,
            chi2_p,
            verdict,
            js,
            FeatureQuality(missing, mismatch, outside, unseen_ratio),
            reference,
            categories,
        )
        for (
            name,
            kind,
            bound,
            reference,
            categories,
            verdict,
            count,
            psi,
            d,
            p,
            chi2_p,
            js,
            missing,
            mismatch,
            outside,
            unseen_ratio,
        ) in zip(
            plan.names[:n],
            plan.kinds[:n],
            plan.ks_bounds[:n],
            plan.reference_quality[:n],
            [_categories(unseen.get(name)) for name in plan.names[:n]] if unseen else [None] * n,
            drifted.tolist(),
            cols.count[:n].tolist(),
            cols.psi[:n].tolist(),
            _present(n, cols.ks_statistic, numeric),
            _present(n, cols.ks_pvalue, numeric),
            cols.chi2_pvalue[:n].tolist(),
            _present(n, cols.js_distance, ~numeric),
            cols.missing[:n].tolist(),
            cols.type_mismatch[:n].tolist(),
            _present(n, cols.out_of_range, numeric),
            _present(n, cols.unseen, ~numeric),
            strict=True,
        )
    )


def evaluate_window(state: ModelState, view: WindowView) -> WindowResult:
    policy = state.cfg.policy
    plan = state.drift_plan
    first = plan.slots[0] if plan.n_features else None
    predictions = int(view.total[first.offset : first.stop].sum()) if first else 0
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
    cols = plan.evaluate(view.total)  # the prediction's slot too: one pass for all
    drifts = feature_drifts(plan, cols, policy, view.unseen)
    prediction_psi = float(cols.psi[-1]) if plan.n_features < len(plan.slots) else None
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
