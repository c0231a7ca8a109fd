"""One model's config, reference and a synthetic stream for the group-mode state tests.

Shared by the merge, record and coordinator tests: epoch-scale fractional times, unseen
categories, a canary version, labels that are a function of the prediction id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.events import Label, Prediction
from monitor.reference.build import build_reference
from monitor.reference.profile import ReferenceProfile
from monitor.settings import ModelSettings, PolicySettings, WindowSpec

T0 = 1_800_000_000.0
LATENESS = 120.0
KNOWN = ("DE", "FR", "IT")
UNSEEN = ("XA", "XB", "XC", "XD", "XE")  # fewer than a summary's capacity: counted exactly


def model_cfg() -> ModelSettings:
    return ModelSettings(
        name="m",
        reference=Path("unused.json"),  # the profile is handed to ModelState directly
        features={"country": "categorical", "amount": "numeric"},
        windows=[
            WindowSpec(name="5m", length=300, pane=7.5),  # a pane of a fractional second count
            WindowSpec(name="1h", length=3600, pane=60),
        ],
        allowed_lateness=LATENESS,
        policy=PolicySettings(min_samples=1),
    )


def reference() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    columns: dict[str, list[object]] = {
        "country": rng.choice(KNOWN, 3000).tolist(),
        "amount": rng.normal(0, 1, 3000).tolist(),
        "prediction": rng.integers(0, 2, 3000).tolist(),
        "score": rng.uniform(0, 1, 3000).tolist(),
    }
    return build_reference(
        "m", "binary_classification", columns, {"country": "categorical", "amount": "numeric"}
    )


CFG = model_cfg()
REF = reference()


def stream(seed: int, n: int, span: float) -> list[Prediction]:
    """Predictions over ``span`` seconds of epoch-scale time (fractional, anywhere in a pane),
    with unseen countries and two versions (a canary: ``v2`` interleaved with ``v1``)."""
    rng = np.random.default_rng(seed)
    times = T0 + 0.37 + rng.uniform(0.0, span, n)
    countries = np.where(
        rng.uniform(size=n) < 0.3, rng.choice(UNSEEN, n), rng.choice(KNOWN, n)
    ).tolist()
    versions = np.where(rng.uniform(size=n) < 0.2, "v2", "v1").tolist()
    return [
        Prediction(
            f"id-{i}",
            "m",
            versions[i],
            float(times[i]),
            {"country": countries[i], "amount": float(rng.normal())},
            int(rng.integers(0, 2)),
            float(rng.uniform()),
        )
        for i in range(n)
    ]


def label_of(p: Prediction, seed: int) -> Label:
    """The label of ``p``: a function of its id (so of no order), 1 to 90 s after it."""
    h = (int(p.id.removeprefix("id-")) * 7919 + seed) % 1000
    return Label(p.id, "m", h % 2, p.timestamp + 1.0 + h % 90)
