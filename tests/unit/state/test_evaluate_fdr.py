"""The drift verdict with ``fdr: none`` (each feature at its own kind's level) against
Benjamini-Hochberg, judged from the snapshot's own p-values by an independent rule (scipy's
``false_discovery_control`` for BH, a plain comparison for none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from monitor.events import Prediction
from monitor.reference.build import build_reference
from monitor.reference.profile import ReferenceProfile
from monitor.settings import ModelSettings, PolicySettings, WindowSpec
from monitor.snapshot import FeatureDrift
from monitor.state.evaluate import evaluate
from monitor.state.model_state import ModelState

MODEL = "m"
KINDS = {"x": "numeric", "y": "numeric", "c": "categorical"}
T0 = 1_800_000_000.0
KS_ALPHA = 0.05
CHI2_ALPHA = 1e-12


def reference() -> ReferenceProfile:
    g = np.random.default_rng(0)
    columns: dict[str, list[object]] = {
        "x": g.normal(size=5_000).tolist(),
        "y": g.normal(size=5_000).tolist(),
        "c": g.choice(["a", "b", "d"], 5_000, p=[0.5, 0.3, 0.2]).tolist(),
        "prediction": g.normal(size=5_000).tolist(),
    }
    return build_reference(MODEL, "regression", columns, KINDS)  # type: ignore[arg-type]


def stream(n: int = 2_000) -> list[Prediction]:
    """x shifted (a tiny KS p), y as in the reference, c mildly moved (chi-square p well
    above 1e-12 but far below 0.05)."""
    g = np.random.default_rng(1)
    x, y = g.normal(0.4, 1.0, n), g.normal(size=n)
    c = g.choice(["a", "b", "d"], n, p=[0.43, 0.33, 0.24])
    return [
        Prediction(str(i), MODEL, "v1", T0 + i, {"x": x[i], "y": y[i], "c": str(c[i])}, 0.0, None)
        for i in range(n)
    ]


def features(fdr: str) -> dict[str, FeatureDrift]:
    policy = PolicySettings(
        min_samples=1,
        ks_alpha=KS_ALPHA,
        chi2_alpha=CHI2_ALPHA,
        fdr=fdr,
        ks_min_statistic=0.0,  # significance alone decides here
        js_min_distance=0.0,
    )
    cfg = ModelSettings(
        name=MODEL,
        task="regression",
        reference=Path("unused.json"),
        windows=[WindowSpec(name="1h", length=3600, pane=60)],
        features=KINDS,
        policy=policy,
    )
    state = ModelState(cfg, reference())
    state.add_predictions(stream())
    model = evaluate([state], lambda: T0).model(MODEL)
    assert model is not None
    (window,) = model.windows
    return {f.feature: f for f in window.features}


def pvalue(f: FeatureDrift) -> float:
    p = f.ks_pvalue if f.kind == "numeric" else f.chi2_pvalue
    assert p is not None
    return p


@pytest.fixture(scope="module")
def both() -> dict[str, dict[str, FeatureDrift]]:
    return {fdr: features(fdr) for fdr in ("none", "benjamini_hochberg")}


def test_the_statistics_do_not_depend_on_the_fdr_setting(
    both: dict[str, dict[str, FeatureDrift]],
) -> None:
    for name in KINDS:
        a, b = both["none"][name], both["benjamini_hochberg"][name]
        assert (a.psi, a.ks_pvalue, a.chi2_pvalue) == (b.psi, b.ks_pvalue, b.chi2_pvalue)


def test_the_stream_puts_c_between_the_two_levels(
    both: dict[str, dict[str, FeatureDrift]],
) -> None:
    f = both["none"]
    assert pvalue(f["x"]) < 1e-12
    assert pvalue(f["y"]) > 0.05
    assert CHI2_ALPHA < pvalue(f["c"]) < KS_ALPHA / 3  # rejected by BH whatever its rank


def test_fdr_none_tests_each_feature_alone_at_its_kind_s_level(
    both: dict[str, dict[str, FeatureDrift]],
) -> None:
    f = both["none"]
    level = {"numeric": KS_ALPHA, "categorical": CHI2_ALPHA}
    for name, d in f.items():
        assert d.drift_detected == (pvalue(d) < level[d.kind]), name
    # c is significant at 0.05 but not at its own chi-square level: not drift without BH.
    assert {n: d.drift_detected for n, d in f.items()} == {"x": True, "y": False, "c": False}


def test_benjamini_hochberg_tests_all_features_at_the_ks_level(
    both: dict[str, dict[str, FeatureDrift]],
) -> None:
    f = both["benjamini_hochberg"]
    names = list(f)
    adjusted = false_discovery_control([pvalue(f[n]) for n in names])
    for name, adj in zip(names, adjusted, strict=True):
        assert f[name].drift_detected == bool(adj <= KS_ALPHA), name
    assert {n: d.drift_detected for n, d in f.items()} == {"x": True, "y": False, "c": True}


def test_detection_level_per_kind() -> None:
    none = PolicySettings(fdr="none", ks_alpha=0.05, chi2_alpha=0.001)
    assert (none.detection_level("numeric"), none.detection_level("categorical")) == (0.05, 0.001)
    fallback = PolicySettings(fdr="none", ks_alpha=0.05, chi2_alpha=None)
    assert fallback.detection_level("categorical") == 0.05
    bh = PolicySettings(ks_alpha=0.05, chi2_alpha=0.001)
    assert (bh.detection_level("numeric"), bh.detection_level("categorical")) == (0.05, 0.05)
