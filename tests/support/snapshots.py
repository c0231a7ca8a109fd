"""Hand-built Snapshots and a fake clock for the policy's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitor.alerting.policy import Finding, Policy
from monitor.settings import ModelSettings, PolicySettings, WindowSpec
from monitor.snapshot import FeatureDrift, ModelResult, Snapshot, WindowResult

HOUR = 3600.0
T0 = 1_795_000_000.0  # event time of the windows' end


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def model_cfg(name: str = "fraud", **policy: Any) -> ModelSettings:
    policy.setdefault("cooldown", HOUR)
    return ModelSettings(
        name=name,
        reference=Path("ref.json"),
        windows=[
            WindowSpec(name="5m", length=300, pane=10),
            WindowSpec(name="1h", length=3600, pane=60),
        ],
        features={"amount": "numeric", "country": "categorical"},
        policy=PolicySettings(**policy),
    )


def window(
    name: str = "1h",
    *,
    psi: float = 0.05,
    enough: bool = True,
    labels: int = 1000,
    drift: bool = False,
    drift_country: bool = False,
    prediction_psi: float | None = None,
    **performance: float,
) -> WindowResult:
    length = 3600.0 if name == "1h" else 300.0
    features = (
        FeatureDrift(
            "amount", "numeric", 5000, psi, 0.1, 0.0001 if drift else 0.4, 0.001, 0.3, drift
        ),
        FeatureDrift(
            "country",
            "categorical",
            5000,
            0.01,
            None,
            None,
            None,
            0.001 if drift_country else 0.6,
            drift_country,
            js_distance=0.2 if drift_country else 0.02,
        ),
    )
    return WindowResult(
        window=name,
        start=T0 - length,
        end=T0,
        predictions=5000 if enough else 10,
        labels=labels,
        enough_samples=enough,
        features=features,
        prediction_psi=prediction_psi,
        performance=dict(performance),
    )


def snap(*windows: WindowResult, model: str = "fraud", version: str | None = "v1") -> Snapshot:
    result = ModelResult(model, version, True, "abc", T0, windows or (window(),))
    return Snapshot(created_at=T0, models=(result,))


def run(policy: Policy, *snapshots: Snapshot) -> list[Finding]:
    return [f for s in snapshots for f in policy.observe(s)]


def types(findings: list[Finding]) -> list[str]:
    return [f.type + (" (suppressed)" if f.suppressed else "") for f in findings]
