"""Synthetic prediction traffic for the demo, the benchmark and the tests (fixed seeds).

Two models: ``fraud``, a binary classifier with 8 numeric and 2 categorical features, and
``demand``, a regressor. :meth:`Traffic.events` can inject data drift: ``amount`` and
``distance_km`` shift and the ``country`` mix changes (fraud); ``temperature`` shifts (demand).
:meth:`Traffic.labels` gives ground truth, optionally after a concept drift.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

FRAUD_NUMERIC = (
    "amount",
    "age",
    "tenure_days",
    "txn_count_24h",
    "avg_basket",
    "distance_km",
    "session_seconds",
    "device_score",
)
FRAUD_CATEGORICAL = ("country", "channel")
FRAUD_DRIFTED = ("amount", "distance_km", "country")
DEMAND_NUMERIC = ("temperature", "price", "promo_depth", "stock")
DEMAND_CATEGORICAL = ("store_type",)
DEMAND_DRIFTED = ("temperature",)

_COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL")
_COUNTRY_P = np.array([0.35, 0.25, 0.15, 0.1, 0.1, 0.05])
_COUNTRY_P_DRIFT = np.array([0.15, 0.15, 0.1, 0.1, 0.1, 0.4])
_CHANNELS = ("web", "app", "pos")
_STORES = ("mall", "street", "outlet")


@dataclass
class Traffic:
    """Reproducible feature rows; ``drifted=True`` draws from the shifted distributions."""

    seed: int = 7

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def fraud_rows(self, n: int, drifted: bool = False) -> list[dict[str, Any]]:
        r = self._rng
        amount = r.lognormal(3.5 + (0.6 if drifted else 0.0), 0.8, n)
        cols: dict[str, Any] = {
            "amount": amount,
            "age": r.normal(41, 12, n).clip(18, 95).round(),
            "tenure_days": r.exponential(400, n).round(),
            "txn_count_24h": r.poisson(2.0, n).astype(float),  # many ties: discrete
            "avg_basket": r.gamma(2.0, 20.0, n),
            "distance_km": r.exponential(8.0 * (3.0 if drifted else 1.0), n),
            "session_seconds": r.lognormal(4.0, 1.0, n),
            "device_score": r.beta(5, 2, n),
        }
        country = r.choice(_COUNTRIES, n, p=_COUNTRY_P_DRIFT if drifted else _COUNTRY_P)
        channel = r.choice(_CHANNELS, n, p=[0.5, 0.4, 0.1])
        missing_age = r.random(n) < 0.02  # a few missing values, as in real traffic
        rows = []
        for i in range(n):
            row: dict[str, Any] = {k: float(v[i]) for k, v in cols.items()}
            if missing_age[i]:
                row["age"] = None
            row["country"] = str(country[i])
            row["channel"] = str(channel[i])
            rows.append(row)
        return rows

    def fraud_scores(self, rows: list[dict[str, Any]]) -> np.ndarray:
        amount = np.array([r["amount"] for r in rows])
        dist = np.array([r["distance_km"] for r in rows])
        logit = -3.0 + 0.015 * amount + 0.05 * dist + self._rng.normal(0, 0.5, len(rows))
        return np.asarray(1.0 / (1.0 + np.exp(-logit)))

    def demand_rows(self, n: int, drifted: bool = False) -> list[dict[str, Any]]:
        r = self._rng
        temp = r.normal(14 + (9 if drifted else 0), 6, n)
        price = r.uniform(1, 20, n)
        promo = r.choice([0.0, 0.1, 0.2, 0.3], n, p=[0.7, 0.15, 0.1, 0.05])
        stock = r.integers(0, 500, n).astype(float)
        store = r.choice(_STORES, n)
        return [
            {
                "temperature": float(temp[i]),
                "price": float(price[i]),
                "promo_depth": float(promo[i]),
                "stock": float(stock[i]),
                "store_type": str(store[i]),
            }
            for i in range(n)
        ]

    def events(
        self, model: str, n: int, t0: float, rate: float, drifted: bool = False
    ) -> list[dict[str, Any]]:
        """``n`` prediction events for ``model`` with event times ``t0, t0 + 1/rate, …``."""
        ts = t0 + np.arange(n) / rate
        if model == "fraud":
            rows = self.fraud_rows(n, drifted)
            scores = self.fraud_scores(rows)
            return [
                {
                    "id": uuid.uuid4().hex,
                    "model": "fraud",
                    "version": "2026-11-01",
                    "timestamp": float(ts[i]),
                    "features": rows[i],
                    "prediction": int(scores[i] > 0.5),
                    "score": round(float(scores[i]), 6),
                }
                for i in range(n)
            ]
        rows = self.demand_rows(n, drifted)
        return [
            {
                "id": uuid.uuid4().hex,
                "model": "demand",
                "version": "v3",
                "timestamp": float(ts[i]),
                "features": rows[i],
                "prediction": round(50 + 2 * rows[i]["temperature"] - rows[i]["price"], 3),
            }
            for i in range(n)
        ]

    def labels(
        self, events: list[dict[str, Any]], concept_drift: bool = False
    ) -> list[float | int]:
        """Ground truth for ``events``.

        fraud: drawn from the model's own score, so the model is calibrated and its
        label-free estimated accuracy should match the realised one. demand: the prediction
        plus noise; with ``concept_drift`` the true demand is 40 % higher while the inputs stay
        the same, so only the performance metrics can see it.
        """
        r = self._rng
        if not events:
            return []
        if events[0]["model"] == "fraud":
            scores = np.array([e["score"] for e in events])
            return [int(v) for v in (r.random(len(events)) < scores)]
        pred = np.array([e["prediction"] for e in events])
        truth = pred * (1.4 if concept_drift else 1.0) + r.normal(0, 3, len(events))
        return [round(float(v), 3) for v in truth]

    def training_rows(self, model: str, n: int) -> Iterator[dict[str, Any]]:
        """Flat training rows (features + prediction/score) for ``modelmon reference build``."""
        for e in self.events(model, n, t0=1.8e9, rate=1.0):
            row = dict(e["features"])
            row["prediction"] = e["prediction"]
            if "score" in e:
                row["score"] = e["score"]
            yield row


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def features_of(model: str) -> dict[str, str]:
    """The config ``features`` map for a synthetic model."""
    num, cat = (
        (FRAUD_NUMERIC, FRAUD_CATEGORICAL)
        if model == "fraud"
        else (DEMAND_NUMERIC, DEMAND_CATEGORICAL)
    )
    return {**dict.fromkeys(num, "numeric"), **dict.fromkeys(cat, "categorical")}
