"""Issue 11, the headline: a verdict that means something at production volume.

A real data set shipped by a package (scikit-learn's diabetes data: 442 patients, 9 numeric
features and ``sex``), a real model on it (least squares), 30,000 predictions in a 30-minute
window, the **default policy**, the whole path in process: ModelState → evaluate → Actions
(policy, outbox, signed delivery) → a verifying receiver on 127.0.0.1.

Reference and stream are resamplings of the same patients (fixed seeds); the stream's ``bmi``
is offset by a fraction of its standard deviation, as a unit or preprocessing change would.
An offset of 0.03 sd is negligible (PSI about 0.007, KS D about 0.03) yet its KS p-value is
about 1e-12: on p-values alone the policy would retrain. 0.5 sd is material (PSI about 0.4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

from monitor.alerting.actions import Actions
from monitor.devkit.receiver import WebhookReceiver
from monitor.events import Prediction
from monitor.reference.build import build_reference
from monitor.reference.profile import ReferenceProfile
from monitor.settings import (
    ModelSettings,
    PolicySettings,
    Settings,
    StateSettings,
    WebhookSettings,
    WindowSpec,
)
from monitor.snapshot import FeatureDrift, Snapshot
from monitor.state.evaluate import evaluate
from monitor.state.model_state import ModelState
from tests.support.receivers import WH_SECRET

N = 30_000
T0 = 1_800_000_000.0
SPACING = 1800.0 / N  # 30,000 predictions over the 30-minute window
MODEL = "diabetes"


class Data:
    """The data set, its model, and the reference built from a resampling of it."""

    def __init__(self) -> None:
        bunch = load_diabetes(scaled=False)
        self.x: npt.NDArray[np.float64] = bunch.data
        self.names: list[str] = list(bunch.feature_names)
        self.kinds = {n: "categorical" if n == "sex" else "numeric" for n in self.names}
        self.model = LinearRegression().fit(self.x, bunch.target)
        rows = self.x[np.random.default_rng(0).integers(0, len(self.x), N)]
        columns: dict[str, list[object]] = {
            n: [self._value(n, v) for v in rows[:, i]] for i, n in enumerate(self.names)
        }
        columns["prediction"] = self.model.predict(rows).tolist()
        self.reference: ReferenceProfile = build_reference(
            MODEL,
            "regression",
            columns,
            self.kinds,  # type: ignore[arg-type]
        )

    def _value(self, name: str, v: float) -> object:
        return int(v) if name == "sex" else float(v)

    def stream(self, bmi_shift_sd: float) -> list[Prediction]:
        rows = self.x[np.random.default_rng(1).integers(0, len(self.x), N)].copy()
        bmi = self.names.index("bmi")
        rows[:, bmi] += bmi_shift_sd * self.x[:, bmi].std()
        predicted = self.model.predict(rows)
        return [
            Prediction(
                id=str(i),
                model=MODEL,
                version="v1",
                timestamp=T0 + i * SPACING,
                features={n: self._value(n, rows[i, j]) for j, n in enumerate(self.names)},
                prediction=float(predicted[i]),
                score=None,
            )
            for i in range(N)
        ]


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


def settings_for(
    data: Data, receiver: WebhookReceiver, state_dir: Path, policy: PolicySettings
) -> Settings:
    model = ModelSettings(
        name=MODEL,
        task="regression",
        reference=Path("unused.json"),
        windows=[WindowSpec(name="30m", length=1800, pane=60)],
        features=data.kinds,  # type: ignore[arg-type]
        policy=policy,
        webhook=WebhookSettings(
            url=receiver.url, secret=SecretStr(WH_SECRET), allow_private_targets=True
        ),
    )
    return Settings(models=[model], state=StateSettings(dir=state_dir))


def run(
    data: Data,
    receiver: WebhookReceiver,
    tmp_path: Path,
    shift: float,
    policy: PolicySettings | None = None,
    evaluations: int = 6,
) -> tuple[Snapshot, list[dict[str, object]], Actions]:
    """Count the stream, evaluate it ``evaluations`` times (policy ticks), deliver.

    ``policy`` None: the default one (psi_max 0.2, ks_alpha 0.01 with BH, ks_min_statistic 0.1).
    """
    settings = settings_for(data, receiver, tmp_path, policy or PolicySettings())
    state = ModelState(settings.models[0], data.reference)
    state.add_predictions(data.stream(shift))
    clock = Clock()
    actions = Actions(settings, CollectorRegistry(), clock=clock, environ={})
    actions.start()
    try:
        snap = evaluate([state], lambda: T0 + 1800)
        for _ in range(evaluations):
            clock.now += 15.0
            snap = actions.on_snapshot(snap)
        assert actions.dispatcher.flush(10.0)  # every enqueued webhook delivered
    finally:
        actions.stop(5.0)
    return snap, list(receiver.received.events), actions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bmi_of(snap: Snapshot) -> FeatureDrift:
    [window] = snap.models[0].windows
    assert window.predictions == N and window.enough_samples
    return next(f for f in window.features if f.feature == "bmi")


def test_a_negligible_shift_at_production_volume_sends_no_webhook(
    data: Data, devkit_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    snap, events, _ = run(data, devkit_receiver, tmp_path, shift=0.03)
    bmi = bmi_of(snap)
    assert bmi.psi < 0.02 and bmi.ks_statistic is not None and bmi.ks_statistic < 0.1
    # The test alone is overwhelmingly significant: the effect floor is what holds.
    assert bmi.ks_pvalue is not None and bmi.ks_pvalue < 1e-9
    assert not bmi.drift_detected
    assert snap.models[0].degraded is False and snap.models[0].breaches["feature_drift"] == 0
    assert events == []


def test_a_material_shift_sends_exactly_one_webhook_naming_the_feature(
    data: Data, devkit_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    snap, events, _ = run(data, devkit_receiver, tmp_path, shift=0.5)
    bmi = bmi_of(snap)
    assert bmi.psi > 0.25 and bmi.drift_detected
    [event] = events
    assert event["type"] == "model.degraded"
    payload = event["data"]
    assert isinstance(payload, dict)
    reasons = payload["reasons"]
    assert {r["feature"] for r in reasons} == {"bmi"}
    assert {r["metric"] for r in reasons} == {
        "feature_psi",
        "feature_ks_pvalue",
        "feature_ks_statistic",
    }
    assert [f["feature"] for f in payload["top_drifted_features"]] == ["bmi"]


def test_on_p_values_alone_the_same_negligible_shift_would_retrain(
    data: Data, devkit_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The contrast (the issue's measurement): without the effect floor the policy fires."""
    snap, events, _ = run(
        data, devkit_receiver, tmp_path, shift=0.03, policy=PolicySettings(ks_min_statistic=0.0)
    )
    assert bmi_of(snap).drift_detected
    [event] = events
    assert event["type"] == "model.degraded"
