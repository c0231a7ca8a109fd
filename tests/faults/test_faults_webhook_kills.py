"""kill -9 of the real daemon at the two edges of a webhook's life, counted at a receiver that
does not deduplicate (every POST is recorded, repeats included):

- after the POST reached the receiver, before the outbox file is deleted: the next run sends
  the same ``webhook-id`` with the same bytes again, once, and decides nothing new;
- after the enqueue, before the next checkpoint (the policy's transition not yet saved): the
  next run decides the transition again, under the same ``webhook-id``, so one id reaches the
  receiver.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.devkit.broker import EmbeddedBroker
from monitor.persistence.checkpoint import read_checkpoint
from monitor.settings_loader import load_settings
from tests.support.fault_oracle import MODEL
from tests.support.fault_tools import CommittedOffsets, Daemon
from tests.support.helpers import Topics
from tests.support.receivers import WH_SECRET, Receiver
from tests.support.wait import wait_for
from tests.support.webhook_daemon import degrading_daemon, deliveries, findings

pytestmark = pytest.mark.faults

NOTHING_SENT = {"delivered": 0.0, "retry": 0.0, "failed": 0.0, "disabled": 0.0, "expired": 0.0}


def policy_in_checkpoint(path: Path) -> dict[str, Any] | None:
    """The model's policy state in the checkpoint file (None: no checkpoint)."""
    if not path.exists():
        return None
    state: dict[str, Any] = read_checkpoint(path).meta["extras"]["policy"]["models"][MODEL]
    return state


def decided_after(daemon: Daemon, wall: float) -> dict[str, Any]:
    """The first snapshot evaluated after ``wall`` that the policy decided on."""
    while (snap := daemon.status_after(wall))["catching_up"]:
        wall = snap["created_at"]
    return snap


def test_a_kill_after_the_post_before_the_delete_sends_the_same_bytes_once_more(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path, scripted_receiver: Receiver
) -> None:
    route = scripted_receiver.route("/hooks", WH_SECRET, ("hang", 60.0))  # records, then holds
    url = scripted_receiver.url("/hooks")
    daemon = degrading_daemon(broker, topics, tmp_path, url, WH_SECRET)
    checkpoint = tmp_path / "state" / "checkpoint.mmc"
    try:
        daemon.start()
        wait_for(lambda: len(route.attempts) == 1, 60, "the POST at the receiver", every=0.05)
        # The reply is held: the daemon has not counted the attempt, the file is still there.
        assert daemon.value("modelmon_webhook_outbox_size") == 1
        assert deliveries(daemon) == {**NOTHING_SENT, "attempts": 0.0}
        assert findings(daemon) == {"enqueued": 1.0}
        # A checkpoint after the decision (every second): the restart must not decide again.
        wait_for(
            lambda: (policy_in_checkpoint(checkpoint) or {}).get("degraded") is True,
            10,
            "the degradation checkpointed",
        )
        assert len(route.attempts) == 1
        daemon.kill()
        scripted_receiver.release.set()  # the held reply now goes to a dead socket

        daemon.start()
        daemon.wait_ready()
        wait_for(lambda: len(route.accepted) == 1, 30, "the redelivery", every=0.05)
        wait_for(lambda: deliveries(daemon)["delivered"] == 1, 10, "the delivery counted")
        assert deliveries(daemon) == {**NOTHING_SENT, "delivered": 1.0, "attempts": 1.0}
        assert daemon.value("modelmon_webhook_outbox_size") == 0
        # An evaluation the policy decided on (not catching up) since: the restored policy is
        # degraded already, so it decided nothing new.
        (model,) = decided_after(daemon, time.time())["models"]
        assert model["degraded"] is True
        assert findings(daemon) == {}
        assert findings(daemon, "model.recovered") == {}
        code, _ = daemon.terminate()
        assert code == 0
    finally:
        daemon.cleanup()

    # Final and exact: the one webhook twice, the same id and the same signed bytes.
    (first_id, second_id) = route.attempt_ids
    assert first_id == second_id == route.accepted[0]
    first, second = (body for _, _, body in route.attempts)
    assert first == second
    assert orjson.loads(first)["type"] == "model.degraded"
    assert route.rejected == []
    assert list((tmp_path / "state" / "webhooks" / "dead").iterdir()) == []


def test_a_kill_between_the_enqueue_and_the_checkpoint_sends_one_degraded_id(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path, scripted_receiver: Receiver
) -> None:
    route = scripted_receiver.route("/hooks", WH_SECRET)  # answers 200 at once
    url = scripted_receiver.url("/hooks")
    # No periodic checkpoint within the test: the kill lands after the enqueue, before it.
    daemon = degrading_daemon(
        broker, topics, tmp_path, url, WH_SECRET, state={"checkpoint_interval": "10m"}
    )
    settings = load_settings(daemon.config)
    parts = [(t, p) for t in (topics.predictions, topics.labels) for p in range(3)]
    checkpoint = tmp_path / "state" / "checkpoint.mmc"
    committed = CommittedOffsets(broker.bootstrap, settings.kafka.group_id)
    try:
        daemon.start()
        wait_for(lambda: len(route.accepted) == 1, 60, "the first delivery", every=0.05)
        wait_for(lambda: deliveries(daemon)["delivered"] == 1, 10, "the delivery counted")
        assert findings(daemon) == {"enqueued": 1.0}
        # In the window: no checkpoint holds the transition, no offset is committed.
        assert (policy_in_checkpoint(checkpoint) or {}).get("degraded") in (None, False)
        assert committed(parts) == dict.fromkeys(parts, 0)
        daemon.kill()

        daemon.start()
        daemon.wait_ready()
        # The same records, the policy as it was before the transition: it decides again.
        wait_for(lambda: findings(daemon) == {"enqueued": 1.0}, 30, "the decision again")
        wait_for(lambda: deliveries(daemon)["delivered"] == 1, 30, "its delivery")
        assert deliveries(daemon) == {**NOTHING_SENT, "delivered": 1.0, "attempts": 1.0}
        assert daemon.value("modelmon_webhook_outbox_size") == 0
        assert findings(daemon, "model.recovered") == {}
        code, _ = daemon.terminate()
        assert code == 0
    finally:
        committed.close()
        daemon.cleanup()

    # Final and exact: two POSTs (one per run), one webhook-id, both model.degraded.
    first_id, second_id = route.attempt_ids
    assert first_id == second_id
    assert [orjson.loads(body)["type"] for _, _, body in route.attempts] == ["model.degraded"] * 2
    assert route.rejected == []
