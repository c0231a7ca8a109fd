"""Issue 11 items 2 and 3: data-quality ratios per feature and window, and wrong-typed values.

Every ratio is checked exactly (``==``) against a plain-Python count over the same rows, which
knows nothing of bins or cells: missing is None, a mismatch is a value whose JSON type the kind
does not take, out of range is a number outside the finite reference [min, max], unseen is a
category outside the profile's categories.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from monitor.events import Label, Prediction
from monitor.reference.bins import NumericProfile, profile_from_dict
from monitor.reference.build import build_reference
from monitor.reference.profile import ReferenceProfile, compute_content_hash
from monitor.settings import ModelSettings, PolicySettings, WindowSpec
from monitor.snapshot import FeatureDrift, WindowResult
from monitor.state.evaluate import evaluate
from monitor.state.model_state import ModelState, bootstrap_reference
from monitor.vocabulary import canonical_key

T0 = 1.8e9
FEATURES: dict[str, Any] = {"x": "numeric", "c": "categorical"}


def cfg(**policy: Any) -> ModelSettings:
    return ModelSettings(
        name="m",
        task="regression",
        reference=Path("unused.json"),
        windows=[WindowSpec(name="1h", length=3600, pane=60)],
        features=FEATURES,
        policy=PolicySettings(min_samples=1, **policy),
    )


def reference(xs: list[object], cs: list[object]) -> ReferenceProfile:
    return build_reference("m", "regression", {"x": xs, "c": cs}, FEATURES, fine_bins=50)


def window_of(ref: ReferenceProfile, xs: list[object], cs: list[object]) -> WindowResult:
    state = ModelState(cfg(), ref)
    spacing = 3000 / len(xs)  # all inside the one-hour window
    preds = [
        Prediction(str(i), "m", None, T0 + i * spacing, {"x": x, "c": c}, 1.0, None)
        for i, (x, c) in enumerate(zip(xs, cs, strict=True))
    ]
    state.add_predictions(preds)
    [window] = evaluate([state], lambda: T0).models[0].windows
    return window


def feature(w: WindowResult, name: str) -> FeatureDrift:
    return next(f for f in w.features if f.feature == name)


def independent(
    ref_x: list[object], ref_c: list[object], xs: list[object], cs: list[object]
) -> dict[str, float]:
    """The four ratios on the raw rows, without the monitor's bins."""
    finite = [v for v in ref_x if isinstance(v, float) and math.isfinite(v)]
    low, high = min(finite), max(finite)
    kept = {canonical_key(v) for v in ref_c if v is not None}  # every category: < 100 of them

    def number(v: object) -> bool:
        return type(v) in (int, float)

    n = len(xs)
    return {
        "x.missing": sum(v is None for v in xs) / n,
        "x.type_mismatch": sum(v is not None and not number(v) for v in xs) / n,
        "x.out_of_range": sum(number(v) and not low <= v <= high for v in xs) / n,  # type: ignore[operator]
        "c.missing": sum(v is None for v in cs) / n,
        "c.type_mismatch": sum(isinstance(v, list | dict) for v in cs) / n,
        "c.unseen": sum(
            v is not None and not isinstance(v, list | dict) and canonical_key(v) not in kept
            for v in cs
        )
        / n,
    }


def observed(w: WindowResult) -> dict[str, float]:
    x, c = feature(w, "x").quality, feature(w, "c").quality
    assert x is not None and c is not None and x.unseen is None and c.out_of_range is None
    assert x.out_of_range is not None and c.unseen is not None
    return {
        "x.missing": x.missing,
        "x.type_mismatch": x.type_mismatch,
        "x.out_of_range": x.out_of_range,
        "c.missing": c.missing,
        "c.type_mismatch": c.type_mismatch,
        "c.unseen": c.unseen,
    }


NUMBERS = st.one_of(
    st.floats(-5, 15, allow_nan=False),
    st.integers(-5, 15),
    st.sampled_from([0.0, 10.0, -math.inf, math.inf]),  # the reference's ends, and beyond
)
X_VALUES = st.one_of(NUMBERS, st.none(), st.sampled_from(["3", True, [1], {"a": 1}]))
C_VALUES = st.one_of(
    st.sampled_from(["a", "b", "c", "zz", 1, 2.0, True]), st.none(), st.sampled_from([[1], {}])
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(X_VALUES, C_VALUES), min_size=1, max_size=60))
def test_window_ratios_equal_an_independent_count_on_the_same_rows(
    rows: list[tuple[object, object]],
) -> None:
    rng = np.random.default_rng(7)
    ref_x: list[object] = [0.0, 10.0, *rng.uniform(0, 10, 300).tolist(), None]
    ref_c: list[object] = (["a", "b", "b", "1", None] * 61)[: len(ref_x)]
    xs, cs = [r[0] for r in rows], [r[1] for r in rows]
    w = window_of(reference(ref_x, ref_c), xs, cs)
    assert observed(w) == independent(ref_x, ref_c, xs, cs)


def test_the_reference_keeps_its_own_ratios() -> None:
    ref_x: list[object] = [1.0, 2.0, 3.0, math.inf, -math.inf, None, None, 2.5]
    ref_c: list[object] = ["a", "a", None, "b", "a", "a", "b", "a"]
    ref = build_reference("m", "regression", {"x": ref_x, "c": ref_c}, FEATURES, fine_bins=2)
    w = window_of(ref, [1.5], ["a"])
    x, c = feature(w, "x").reference_quality, feature(w, "c").reference_quality
    assert x is not None and c is not None
    assert (x.missing, x.out_of_range, x.type_mismatch) == (2 / 8, 2 / 8, 0.0)
    assert (c.missing, c.unseen, c.type_mismatch) == (1 / 8, 0.0, 0.0)
    again = ReferenceProfile.from_dict(ref.to_dict())
    assert again == ref and again.features["x"].low == 1.0  # type: ignore[union-attr]


def test_a_bootstrapped_reference_counts_its_mismatches_as_its_own() -> None:
    preds = [
        Prediction(str(i), "m", None, T0 + i, {"x": v, "c": c}, 1.0, None)
        for i, (v, c) in enumerate([(1.0, "a"), ("bad", "a"), (2.0, [1]), (None, "b")])
    ]
    ref = bootstrap_reference(cfg(), preds)
    assert ref.features["x"].type_mismatch == 1 and ref.features["c"].type_mismatch == 1
    assert ref.features["x"].counts[-1] == 2  # the mismatch and the None: missing for drift
    w = window_of(ref, [1.0], ["a"])
    x = feature(w, "x").reference_quality
    assert x is not None and (x.missing, x.type_mismatch) == (1 / 4, 1 / 4)


def test_profiles_written_before_the_quality_fields_load_with_their_hash() -> None:
    """A profile file from before issue 11 (no ``low``) loads, and its stored hash holds."""
    new = reference([1.0, 2.0, 3.0], ["a", "b", "a"])
    old = new.to_dict()
    del old["features"]["x"]["low"]
    features = {k: profile_from_dict(v, k) for k, v in old["features"].items()}
    old["content_hash"] = compute_content_hash("m", "regression", 3, features, None)
    assert old["content_hash"] != new.content_hash
    loaded = ReferenceProfile.from_dict(old)  # raises on a hash mismatch
    x = loaded.features["x"]
    # Without low the first edge stands in: here one float step below the minimum (a point mass).
    assert isinstance(x, NumericProfile) and x.low is None
    assert x.range_low == np.nextafter(1.0, -np.inf)
    assert loaded.to_dict() == old


def test_a_wrong_typed_value_is_a_mismatch_and_the_prediction_still_counts() -> None:
    """Item 3: the other feature and the performance keep the prediction."""
    rng = np.random.default_rng(3)
    ref = reference(rng.uniform(0, 10, 200).tolist(), ["a", "b"] * 100)
    state = ModelState(cfg(), ref)
    xs: list[object] = [1.0, "oops", 5.0, {"n": 1}]
    preds = [
        Prediction(str(i), "m", None, T0 + i, {"x": x, "c": "a"}, 2.0, None)
        for i, x in enumerate(xs)
    ]
    state.add_predictions(preds)
    state.add_labels([Label(str(i), "m", 3.0, T0 + i + 1) for i in range(4)])
    [w] = evaluate([state], lambda: T0).models[0].windows
    assert w.predictions == 4 and w.labels == 4
    assert w.performance["mae"] == 1.0
    x, c = feature(w, "x"), feature(w, "c")
    assert x.count == 4 and x.quality is not None
    assert (x.quality.type_mismatch, x.quality.missing) == (0.5, 0.0)
    assert c.count == 4 and c.quality is not None and c.quality.type_mismatch == 0.0


def test_a_categorical_feature_drifts_on_significance_and_js_distance() -> None:
    """evaluate and the policy share PolicySettings.drifted: chi-square AND JS distance."""
    rng = np.random.default_rng(11)
    ref = reference(rng.uniform(0, 10, 20_000).tolist(), ["a", "b"] * 10_000)
    xs = rng.uniform(0, 10, 30_000).tolist()
    slight = window_of(ref, xs, ["a"] * 15_600 + ["b"] * 14_400)  # 52 / 48
    c = feature(slight, "c")
    assert c.chi2_pvalue < 1e-4 and c.js_distance is not None and c.js_distance < 0.1
    assert not c.drift_detected
    strong = feature(window_of(ref, xs, ["a"] * 24_000 + ["b"] * 6_000), "c")  # 80 / 20
    expected = jensenshannon([10_000, 10_000, 0, 0], [24_000, 6_000, 0, 0], base=2)
    assert strong.js_distance == pytest.approx(expected, abs=1e-9)
    assert strong.drift_detected
