"""The webhook evidence names the most frequent unseen categories of the window it read."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from monitor.alerting.actions import Actions
from monitor.alerting.payload import finding_data
from monitor.alerting.policy import Finding
from monitor.devkit.receiver import WebhookReceiver
from monitor.settings import (
    ModelSettings,
    PolicySettings,
    Settings,
    StateSettings,
    WebhookSettings,
    WindowSpec,
)
from monitor.snapshot import FeatureDrift, UnseenCategories, UnseenValue, WindowResult
from monitor.state.evaluate import evaluate
from monitor.state.model_state import ModelState
from tests.support.receivers import WH_SECRET
from tests.support.unseen_data import T0, batch, reference


def test_a_degraded_webhook_carries_the_unseen_values(
    devkit_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    model = ModelSettings(
        name="m",
        reference=Path("unused.json"),
        windows=[WindowSpec(name="10m", length=600, pane=60)],
        features={"country": "categorical", "amount": "numeric"},
        policy=PolicySettings(min_samples=10, breaches_to_fire=1),
        webhook=WebhookSettings(
            url=devkit_receiver.url, secret=SecretStr(WH_SECRET), allow_private_targets=True
        ),
    )
    settings = Settings(models=[model], state=StateSettings(dir=tmp_path))
    state = ModelState(model, reference())
    countries = ["NEW-a"] * 300 + ["NEW-b"] * 100 + ["DE", "FR", "IT"] * 200
    state.add_predictions(batch(countries, T0))
    actions = Actions(settings, CollectorRegistry(), clock=lambda: 1000.0, environ={})
    actions.start()
    try:
        actions.on_snapshot(evaluate([state], lambda: T0 + 600))
        assert actions.dispatcher.flush(10.0)
    finally:
        actions.stop(5.0)
    [event] = devkit_receiver.received.events
    assert event["type"] == "model.degraded"
    data = event["data"]
    assert isinstance(data, dict)
    assert data["unseen_categories"] == [
        {
            "feature": "country",
            "values": [{"value": "NEW-a", "count": 300}, {"value": "NEW-b", "count": 100}],
            "error": 0,
        }
    ]


def test_finding_data_without_a_window_has_no_unseen_key() -> None:
    finding = Finding("model.degraded", "m", None, "w", 0.0, 1.0, 5, 0, (), "mm_x")
    assert "unseen_categories" not in finding_data(finding)
    quiet = FeatureDrift("c", "categorical", 5, 0.0, None, None, None, 1.0, False)
    noisy = FeatureDrift(
        "d", "categorical", 5, 0.0, None, None, None, 1.0, False,
        unseen_categories=UnseenCategories((UnseenValue("q", 2),), 1),
    )  # fmt: skip
    window = WindowResult("w", 0.0, 1.0, 5, 0, True, features=(quiet, noisy))
    assert finding_data(finding, window=window)["unseen_categories"] == [
        {"feature": "d", "values": [{"value": "q", "count": 2}], "error": 1}
    ]
