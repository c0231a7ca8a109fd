"""Thresholds from the reference: a calibrated threshold lets through about the chosen rate of
fresh no-drift windows, and the resampled statistics are the daemon's own."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import binom

from monitor.reference.build import build_reference
from monitor.state.calibrate import calibrate, null_statistics, upper_threshold
from monitor.state.layout import Slot
from monitor.stats.drift import psi

RESAMPLES = 2000
FRESH = 4000


def slots() -> tuple[Slot, ...]:
    rng = np.random.default_rng(0)
    columns: dict[str, list[object]] = {
        "amount": rng.lognormal(3, 1, 4000).tolist(),
        "country": rng.choice(["DE", "FR", "IT", "ES"], 4000, p=[0.4, 0.3, 0.2, 0.1]).tolist(),
    }
    ref = build_reference(
        "m", "regression", columns, {"amount": "numeric", "country": "categorical"}
    )
    return (Slot("amount", ref.features["amount"], 0), Slot("country", ref.features["country"], 0))


@pytest.mark.parametrize("rate", [0.05, 0.2])
@pytest.mark.parametrize("events", [300, 5000])
def test_a_calibrated_threshold_lets_through_about_the_rate(rate: float, events: int) -> None:
    cal = calibrate(slots(), events, rate, RESAMPLES, seed=0)
    # The threshold's own exceedance probability is uncertain by the calibration's sampling
    # error (sd sqrt(r(1-r)/R)); within 4 sd of it, a fresh count is within the exact binomial
    # 1e-6 quantiles.
    spread = 4 * math.sqrt(rate * (1 - rate) / RESAMPLES)
    low = binom.ppf(1e-6, FRESH, rate - spread)
    high = binom.ppf(1 - 1e-6, FRESH, rate + spread)
    for slot, c in zip(slots(), cal, strict=True):
        fresh_psi, fresh_effect = null_statistics(slot, events, FRESH, np.random.default_rng(99))
        assert c.effect is not None
        for name, beyond in (
            ("psi", int((fresh_psi > c.psi).sum())),
            ("effect", int((fresh_effect >= c.effect).sum())),
        ):
            assert low <= beyond <= high, (slot.name, name, beyond, low, high)


def test_at_most_the_rate_of_the_calibration_sample_lies_beyond() -> None:
    for slot in slots():
        psi_v, effect_v = null_statistics(slot, 500, 1000, np.random.default_rng(3))
        for rate in (0.01, 0.05, 0.3):
            assert (psi_v > upper_threshold(psi_v, rate)).sum() <= rate * 1000
            assert (effect_v >= upper_threshold(effect_v, rate, True)).sum() <= rate * 1000
            assert (psi_v >= upper_threshold(psi_v, rate)).sum() >= rate * 1000


def test_the_resampled_statistics_are_the_daemons_against_scipy() -> None:
    country = slots()[1]
    ref = country.profile.counts
    psi_v, js_v = null_statistics(country, 700, 50, np.random.default_rng(7))
    draws = np.random.default_rng(7).multinomial(700, ref / ref.sum(), size=50)
    for i, draw in enumerate(draws):
        assert js_v[i] == pytest.approx(jensenshannon(ref, draw, base=2), abs=1e-9)
        assert psi_v[i] == pytest.approx(psi(ref, draw), abs=1e-12)


def test_more_traffic_means_lower_noise_thresholds_and_the_seed_fixes_them() -> None:
    small = calibrate(slots(), 300, 0.01, 500, seed=1)
    large = calibrate(slots(), 30_000, 0.01, 500, seed=1)
    for s, b in zip(small, large, strict=True):
        assert b.psi < s.psi / 10 and b.effect is not None and s.effect is not None
        assert b.effect < s.effect / 3
    assert calibrate(slots(), 300, 0.01, 500, seed=1) == small
    assert calibrate(slots(), 300, 0.01, 500, seed=2) != small


def test_upper_threshold_edges() -> None:
    assert math.isnan(upper_threshold([math.nan], 0.1))
    assert upper_threshold([3.0], 0.5) == 3.0
