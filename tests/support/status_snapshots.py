"""Crafted Snapshots for the status page: every state a model and a window can be in.

``page_snapshot`` holds a degraded model with reasons, a bootstrapping one, a healthy one with a
window below ``min_samples``, and one whose names are hostile HTML. ``history_of`` makes a few
earlier evaluations of it, so the sparklines have something to draw.
"""

from __future__ import annotations

from dataclasses import replace

from monitor.snapshot import FeatureDrift, FeatureQuality, ModelResult, Snapshot, WindowResult

T0 = 1_795_000_000.0
HOSTILE_MODEL = "<script>alert('m')</script>"
HOSTILE_FEATURE = '"><img src=x onerror=alert(1)>'


def numeric(name: str, psi: float, d: float, p: float, drift: bool = False) -> FeatureDrift:
    return FeatureDrift(
        feature=name,
        kind="numeric",
        count=5000,
        psi=psi,
        ks_statistic=d,
        ks_pvalue=p,
        ks_bound=0.001,
        chi2_pvalue=p,
        drift_detected=drift,
        quality=FeatureQuality(missing=0.012, type_mismatch=0.0, out_of_range=0.034),
    )


def categorical(name: str, psi: float, js: float, p: float, drift: bool = False) -> FeatureDrift:
    return FeatureDrift(
        feature=name,
        kind="categorical",
        count=5000,
        psi=psi,
        ks_statistic=None,
        ks_pvalue=None,
        ks_bound=None,
        chi2_pvalue=p,
        drift_detected=drift,
        js_distance=js,
        quality=FeatureQuality(missing=0.0, type_mismatch=0.002, unseen=0.051),
    )


def full_window(name: str, features: tuple[FeatureDrift, ...], **perf: float) -> WindowResult:
    return WindowResult(
        window=name,
        start=T0 - 3600,
        end=T0,
        predictions=5000,
        labels=1250,
        enough_samples=True,
        features=features,
        prediction_psi=0.031,
        performance={"label_coverage": 0.25, **perf},
        min_samples=500,
    )


def page_snapshot(psi_shift: float = 0.0) -> Snapshot:
    """Four models: fraud (DEGRADED), demand (bootstrapping), churn (thin 5m window), hostile."""
    fraud = ModelResult(
        model="fraud",
        version="v7",
        reference_ready=True,
        reference_hash="3f2a9c1d0b7e4a5f",
        evaluated_at=T0,
        windows=(
            full_window(
                "1h",
                (
                    numeric("amount", 0.41 + psi_shift, 0.183, 2.1e-14, drift=True),
                    numeric("age", 0.012, 0.021, 0.38),
                    categorical("country", 0.028 + psi_shift / 4, 0.041, 0.12),
                ),
                accuracy=0.912,
                roc_auc=0.884,
            ),
        ),
        degraded=True,
        breaches={"feature_psi": 3, "feature_drift": 3, "accuracy_min": 0},
        versions=("v7",),
    )
    demand = ModelResult(
        model="demand",
        version=None,
        reference_ready=False,
        reference_hash=None,
        evaluated_at=T0,
        bootstrap_events=1000,
        bootstrap_needed=880,
    )
    thin = WindowResult(
        window="5m",
        start=T0 - 300,
        end=T0,
        predictions=42,
        labels=3,
        enough_samples=False,
        performance={"label_coverage": 3 / 42},
        min_samples=500,
    )
    churn = ModelResult(
        model="churn",
        version="2024-11",
        reference_ready=True,
        reference_hash="9b1c77aa02de33f0",
        evaluated_at=T0,
        windows=(
            thin,
            full_window(
                "1d",
                (numeric("tenure", 0.021, 0.03, 0.41), categorical("plan", 0.008, 0.02, 0.77)),
                f1=0.731,
            ),
        ),
    )
    hostile = ModelResult(
        model=HOSTILE_MODEL,
        version="<b>v</b>",
        reference_ready=True,
        reference_hash="&amp;",
        evaluated_at=T0,
        windows=(full_window("<i>1h</i>", (numeric(HOSTILE_FEATURE, 0.05, 0.04, 0.2),)),),
        breaches={"<rule>": 1},
    )
    return Snapshot(created_at=T0, models=(fraud, demand, churn, hostile))


def history_of(n: int) -> list[Snapshot]:
    """``n`` evaluations of :func:`page_snapshot`, the drift growing, the last one unshifted."""
    snaps = [
        replace(page_snapshot(psi_shift=-0.4 * (n - 1 - i) / n), created_at=T0 - 60 * (n - i))
        for i in range(n - 1)
    ]
    return [*snaps, page_snapshot()]
