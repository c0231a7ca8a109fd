"""Issue 11: the data-quality rules and the drift verdict's effect-size floor."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from monitor.alerting.policy import Policy, Reason, rules_for
from monitor.settings import PolicySettings
from monitor.snapshot import FeatureQuality
from tests.support.snapshots import FakeClock, model_cfg, run, snap, window

REFERENCE = FeatureQuality(missing=0.03, type_mismatch=0.0, out_of_range=0.01, unseen=None)
COUNTRY_REF = FeatureQuality(missing=0.0, type_mismatch=0.0, unseen=0.02)


def with_quality(amount: FeatureQuality, country: FeatureQuality) -> object:
    w = window()
    amount_f, country_f = w.features
    features = (
        replace(amount_f, quality=amount, reference_quality=REFERENCE),
        replace(country_f, quality=country, reference_quality=COUNTRY_REF),
    )
    return snap(replace(w, features=features))


@pytest.mark.parametrize(
    ("setting", "amount", "country", "expected"),
    [
        # the excess over the reference breaches, not the ratio itself
        ("missing_ratio_max", REFERENCE, COUNTRY_REF, None),
        (
            "missing_ratio_max",
            replace(REFERENCE, missing=0.09),
            COUNTRY_REF,
            ("feature_missing_excess", "amount", 0.09 - 0.03),
        ),
        ("missing_ratio_max", replace(REFERENCE, missing=0.08), COUNTRY_REF, None),  # at 0.05
        (
            "out_of_range_ratio_max",
            replace(REFERENCE, out_of_range=0.2),
            COUNTRY_REF,
            ("feature_out_of_range_excess", "amount", 0.2 - 0.01),
        ),
        (
            "unseen_ratio_max",
            REFERENCE,
            replace(COUNTRY_REF, unseen=0.5),
            ("feature_unseen_excess", "country", 0.5 - 0.02),
        ),
    ],
)
def test_quality_rules_breach_on_the_excess_over_the_reference(
    setting: str,
    amount: FeatureQuality,
    country: FeatureQuality,
    expected: tuple[str, str, float] | None,
) -> None:
    policy = Policy(
        [
            model_cfg(
                breaches_to_fire=1, psi_max=None, ks_alpha=None, chi2_alpha=None, **{setting: 0.05}
            )
        ],
        FakeClock(),
    )
    findings = run(policy, with_quality(amount, country))  # type: ignore[arg-type]
    if expected is None:
        assert findings == []
    else:
        [fired] = findings
        assert fired.reasons == (Reason(*expected, 0.05),)


def test_quality_rules_are_off_by_default() -> None:
    names = {r.name for r in rules_for(PolicySettings())}
    assert names == {"feature_psi", "prediction_psi", "feature_drift"}


@pytest.mark.parametrize(
    ("kind", "significant", "effect", "drifted"),
    [
        ("numeric", True, 0.0999, False),
        ("numeric", True, 0.1, True),
        ("numeric", False, 0.9, False),
        ("numeric", True, float("nan"), False),
        ("categorical", True, 0.0999, False),
        ("categorical", True, 0.1, True),
        ("categorical", True, None, False),
    ],
)
def test_drift_is_significant_and_material(
    kind: str, significant: bool, effect: float | None, drifted: bool
) -> None:
    verdict = PolicySettings().drifted(
        np.array([kind == "numeric"]),
        np.array([significant]),
        np.array([math.nan if effect is None else effect]),
    )
    assert verdict.tolist() == [drifted]
