"""Windows + reference profile → :class:`~monitor.snapshot.Snapshot`. Computes; decides nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from monitor.reference.bins import NumericProfile
from monitor.snapshot import (
    FeatureDrift,
    ModelResult,
    Snapshot,
    UnseenCategories,
    UnseenValue,
    WindowResult,
)
from monitor.state.layout import PREDICTION, Slot, drift_counts
from monitor.state.model_state import ModelState
from monitor.state.quality import reference_quality, window_quality
from monitor.state.window import IntArray, WindowView
from monitor.stats.drift import (
    benjamini_hochberg,
    chi2_two_sample,
    coarsen,
    js_distance,
    ks_binned,
    psi,
)


def _psi_counts(slot: Slot, counts: IntArray) -> tuple[IntArray, IntArray]:
    """Coarse PSI bins for a numeric feature, all bins for a categorical one."""
    ref = slot.profile.counts
    if isinstance(slot.profile, NumericProfile):
        # The missing bin rides along as an extra PSI bin: empty on both sides it adds 0.
        n_coarse = slot.profile.n_coarse
        return (
            coarsen(ref, slot.profile.coarse, n_coarse),
            coarsen(counts, slot.profile.coarse, n_coarse),
        )
    return ref, counts


def feature_drift(slot: Slot, cells: IntArray) -> tuple[FeatureDrift, float]:
    """Drift and data quality of one feature's window cells; returns the p-value for the FDR.

    ``drift_detected`` is left False: the verdict needs every feature's p-value (see
    :func:`evaluate_window`).
    """
    counts = drift_counts(slot, cells)
    ref_c, win_c = _psi_counts(slot, counts)
    chi2 = chi2_two_sample(ref_c, win_c)
    value = psi(ref_c, win_c)
    numeric = isinstance(slot.profile, NumericProfile)
    ks = ks_binned(slot.profile.counts[:-1], counts[:-1]) if numeric else None
    drift = FeatureDrift(
        feature=slot.name,
        kind=slot.kind,
        count=int(counts.sum()),
        psi=value,
        ks_statistic=None if ks is None else ks.statistic,
        ks_pvalue=None if ks is None else ks.pvalue,
        ks_bound=slot.profile.ks_bound if isinstance(slot.profile, NumericProfile) else None,
        chi2_pvalue=chi2.pvalue,
        drift_detected=False,
        js_distance=None if numeric else js_distance(ref_c, win_c),
        quality=window_quality(slot, cells),
        reference_quality=reference_quality(slot.profile),
    )
    return drift, chi2.pvalue if ks is None else ks.pvalue


def evaluate_window(state: ModelState, view: WindowView) -> WindowResult:
    policy = state.cfg.policy
    feature_slots = [s for s in state.slots if s.name != PREDICTION]
    predictions = (
        int(view.total[feature_slots[0].offset : feature_slots[0].stop].sum())
        if (feature_slots)
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
    drifts: list[FeatureDrift] = []
    pvalues: list[float] = []
    for slot in feature_slots:
        d, p = feature_drift(slot, view.total[slot.offset : slot.stop])
        if slot.name in view.unseen:
            top, error = view.unseen[slot.name]
            values = tuple(UnseenValue(v, c) for v, c in top)
            d = replace(d, unseen_categories=UnseenCategories(values, error))
        drifts.append(d)
        pvalues.append(p)
    if policy.fdr == "benjamini_hochberg":
        significant, _ = benjamini_hochberg(np.array(pvalues), policy.fdr_level)
    else:  # each feature tested alone, at its own kind's level
        limits = [policy.detection_level(d.kind) for d in drifts]
        significant = np.array(pvalues) < np.array(limits)
    drifts = [
        replace(d, drift_detected=policy.drifted(d.kind, bool(sig), d.effect_size))
        for d, sig in zip(drifts, significant.tolist(), strict=True)
    ]
    prediction_psi = None
    pred_slot = next((s for s in state.slots if s.name == PREDICTION), None)
    if pred_slot is not None:
        cells = view.total[pred_slot.offset : pred_slot.stop]
        ref_c, win_c = _psi_counts(pred_slot, drift_counts(pred_slot, cells))
        prediction_psi = psi(ref_c, win_c)
    return WindowResult(
        window=view.name,
        start=view.start,
        end=view.end,
        predictions=predictions,
        labels=perf.labels,
        enough_samples=True,
        features=tuple(drifts),
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
