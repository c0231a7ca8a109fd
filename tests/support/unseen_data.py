"""A categorical model's reference (countries DE, FR, IT) and prediction batches naming other
countries: the data of the unseen-category tests."""

from __future__ import annotations

import numpy as np

from monitor.events import Prediction
from monitor.reference.build import build_reference
from monitor.reference.profile import ReferenceProfile

T0 = 1_800_000_000.0  # a whole number of minutes


def reference() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    columns: dict[str, list[object]] = {
        "country": rng.choice(["DE", "FR", "IT"], 3000).tolist(),
        "amount": rng.normal(0, 1, 3000).tolist(),
        "prediction": rng.integers(0, 2, 3000).tolist(),
        "score": rng.uniform(0, 1, 3000).tolist(),
    }
    return build_reference(
        "m", "binary_classification", columns, {"country": "categorical", "amount": "numeric"}
    )


def batch(countries: list[str], t0: float, first_id: int = 0) -> list[Prediction]:
    return [
        Prediction(
            str(first_id + i), "m", "v1", t0 + i * 0.01, {"country": c, "amount": 0.5}, 1, 0.7
        )
        for i, c in enumerate(countries)
    ]
