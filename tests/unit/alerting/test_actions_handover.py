"""Group mode's webhook handover through ``Actions`` alone (no Kafka): what one acting replica
stored but did not deliver, the next one adopts with the same id and the exact same body, once.
"""

from __future__ import annotations

from pathlib import Path

from monitor.alerting.actions import Actions
from monitor.settings import ModelSettings, WindowSpec
from tests.support.actions_rig import URL, make_actions, with_webhook


def actions(state_dir: Path) -> Actions:
    """Never started: entries stay undelivered."""
    model = ModelSettings(
        name="churn",
        reference=Path("unused.json"),
        windows=[WindowSpec(name="5m", length=300, pane=10)],
        features={"x": "numeric"},
    )
    return make_actions(state_dir, with_webhook(model)).actions


def test_undelivered_webhooks_are_adopted_with_their_id_and_exact_body_once(
    tmp_path: Path,
) -> None:
    first = actions(tmp_path / "a")
    endpoint = first.endpoints["churn"]
    ids = [
        first.dispatcher.enqueue(endpoint, "model.degraded", {"model": "churn", "n": 1}),
        first.dispatcher.enqueue(endpoint, "model.recovered", {"model": "churn", "é": "ü"}),
    ]
    pending = first.pending_webhooks()
    assert [p["id"] for p in pending] == ids
    assert [p["type"] for p in pending] == ["model.degraded", "model.recovered"]

    second = actions(tmp_path / "b")  # another pod, another (empty) disk
    assert second.adopt_webhooks(pending) == 2
    got = {e.id: e for e in second.dispatcher.undelivered()}
    want = {e.id: e for e in first.dispatcher.undelivered()}
    assert got.keys() == want.keys()
    for i in ids:  # the same bytes: the signature a receiver checks is over exactly these
        assert (got[i].body, got[i].event_type, got[i].url) == (
            want[i].body,
            want[i].event_type,
            URL,
        )
    assert second.adopt_webhooks(pending) == 0  # already pending there: not twice
    assert len(second.dispatcher.undelivered()) == 2


def test_a_webhook_for_an_endpoint_no_longer_configured_is_dropped(tmp_path: Path) -> None:
    second = actions(tmp_path / "b")
    item = {"id": "mm_x", "endpoint": "gone", "type": "model.degraded", "body": "{}"}
    assert second.adopt_webhooks([item]) == 0
    assert second.dispatcher.undelivered() == []
