"""``Actions`` alone: each snapshot goes through the policy, and each finding ends in exactly one
outcome of ``modelmon_findings_total``: ``enqueued`` (its webhook durable in the outbox, with
the body below), ``suppressed`` (cooldown), ``no_webhook`` (the model has none) or
``outbox_error`` (the outbox could not store it). ``annotate`` adds the policy's view without
deciding. Fake monotonic clock, fixed wall clock; the dispatcher never runs."""

from __future__ import annotations

import errno
import hashlib
import logging
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from monitor.snapshot import Snapshot, UnseenCategories, UnseenValue, WindowResult
from tests.support.actions_rig import URL, ActionsRig, make_actions, with_webhook
from tests.support.snapshots import T0, model_cfg, snap, window

BAD, MARGINAL, GOOD = 0.5, 0.19, 0.05  # amount's PSI against psi_max 0.2 (recovery at 0.18)
KAFKA = {"predictions": {0: [10, 99], 2: [7, 7]}, "labels": {1: [5, 6]}}


def event_id(rig: ActionsRig, model: str, kind: str, transition: int) -> str:
    """The documented id: the policy's lineage, the model, the type and the transition count."""
    lineage = rig.actions.policy.to_state()["lineage"]
    key = f"{lineage}\0{model}\0{kind}\0{transition}".encode()
    return "mm_" + hashlib.sha256(key).hexdigest()[:40]


def psi(value: float, model: str = "fraud") -> Snapshot:
    return snap(window(psi=value), model=model)


@pytest.fixture
def rig(tmp_path: Path) -> ActionsRig:
    return make_actions(tmp_path, with_webhook(model_cfg(breaches_to_fire=1)))


def test_a_degradation_is_enqueued_with_its_exact_body(rig: ActionsRig) -> None:
    def with_unseen(w: WindowResult, *values: UnseenValue) -> WindowResult:
        country = replace(w.features[1], unseen_categories=UnseenCategories(values, error=2))
        return replace(w, features=(w.features[0], country))

    # The policy reads the longest window (1h); the evidence is that window's, not the 5m one.
    short = with_unseen(window("5m", psi=GOOD), UnseenValue("ZZ", 9))
    w = with_unseen(window(psi=BAD), UnseenValue("XX", 40), UnseenValue("YY", 3))
    given = snap(short, w)

    out = rig.actions.on_snapshot(given, KAFKA)

    assert rig.all_findings() == {("fraud", "model.degraded", "enqueued"): 1.0}
    (entry,) = rig.outbox()
    assert (entry.id, entry.endpoint, entry.url, entry.event_type) == (
        event_id(rig, "fraud", "model.degraded", 1),
        "fraud",
        URL,
        "model.degraded",
    )
    assert orjson.loads(entry.body) == {
        "type": "model.degraded",
        "timestamp": "2027-01-15T08:00:00Z",
        "data": {
            "model": "fraud",
            "version": "v1",
            "window": "1h",
            "window_start": "2026-11-18T10:06:40Z",
            "window_end": "2026-11-18T11:06:40Z",
            "predictions": 5000,
            "labels": 1000,
            "reasons": [
                {"metric": "feature_psi", "feature": "amount", "value": 0.5, "threshold": 0.2}
            ],
            "top_drifted_features": [{"feature": "amount", "psi": 0.5, "drift_detected": False}],
            "unseen_categories": [
                {
                    "feature": "country",
                    "values": [{"value": "XX", "count": 40}, {"value": "YY", "count": 3}],
                    "error": 2,
                }
            ],
            "kafka": {"predictions": {"0": [10, 99], "2": [7, 7]}, "labels": {"1": [5, 6]}},
        },
    }
    assert rig.outbox_size() == 1
    # The snapshot comes back with the policy's view and is otherwise the one given.
    (model,) = out.models
    assert (model.degraded, model.breaches) == (
        True,
        {"feature_psi": 1, "prediction_psi": 0, "feature_drift": 0},
    )
    assert replace(model, degraded=False, breaches={}) == given.models[0]
    assert (out.created_at, out.catching_up) == (T0, False)


def test_without_kafka_ranges_the_body_has_no_kafka_key(rig: ActionsRig) -> None:
    rig.actions.on_snapshot(psi(BAD))
    (entry,) = rig.outbox()
    assert "kafka" not in orjson.loads(entry.body)["data"]


def test_a_recovery_follows_in_order_with_the_next_id(rig: ActionsRig) -> None:
    rig.actions.on_snapshot(psi(BAD))
    rig.actions.on_snapshot(psi(GOOD))
    assert rig.all_findings() == {
        ("fraud", "model.degraded", "enqueued"): 1.0,
        ("fraud", "model.recovered", "enqueued"): 1.0,
    }
    degraded, recovered = rig.outbox()
    assert [e.id for e in (degraded, recovered)] == [
        event_id(rig, "fraud", "model.degraded", 1),
        event_id(rig, "fraud", "model.recovered", 2),
    ]
    assert degraded.seq < recovered.seq
    data = orjson.loads(recovered.body)["data"]
    # evidence against the recovery threshold, psi_max * (1 - recovery_margin)
    assert data["reasons"] == [
        {"metric": "feature_psi", "feature": "amount", "value": 0.05, "threshold": 0.2 * 0.9}
    ]
    assert data["top_drifted_features"] == []


def test_a_degradation_within_the_cooldown_is_suppressed_then_sent_when_it_ends(
    rig: ActionsRig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.actions.on_snapshot(psi(BAD))  # sent at t=1000
    rig.actions.on_snapshot(psi(GOOD))
    rig.clock.now += 60
    with caplog.at_level(logging.WARNING, logger="monitor.alerting.actions"):
        out = rig.actions.on_snapshot(psi(BAD))
    assert rig.findings("fraud", "model.degraded", "suppressed") == 1
    assert rig.findings("fraud", "model.degraded", "enqueued") == 1
    assert len(rig.outbox()) == 2
    assert out.models[0].degraded  # the transition happened; only the webhook is held back
    assert "model.degraded fraud suppressed (cooldown): feature_psi[amount]=0.5 (limit 0.2)" in (
        caplog.messages
    )

    rig.clock.now = 1000 + 3600 - 0.001  # still cooling: the deferred alarm waits
    rig.actions.on_snapshot(psi(BAD))
    assert len(rig.outbox()) == 2
    rig.clock.now = 1000 + 3600  # cooled, still breaching: sent now, delayed, never lost
    rig.actions.on_snapshot(psi(BAD))
    assert rig.all_findings() == {
        ("fraud", "model.degraded", "enqueued"): 2.0,
        ("fraud", "model.degraded", "suppressed"): 1.0,
        ("fraud", "model.recovered", "enqueued"): 1.0,
    }
    ids = [e.id for e in rig.outbox()]
    assert ids[2] == event_id(rig, "fraud", "model.degraded", 4)  # 3 was the suppressed one


def test_a_recovery_from_a_suppressed_degradation_is_suppressed_too(rig: ActionsRig) -> None:
    rig.actions.on_snapshot(psi(BAD))
    rig.actions.on_snapshot(psi(GOOD))
    rig.clock.now += 60
    rig.actions.on_snapshot(psi(BAD))  # suppressed: never sent
    out = rig.actions.on_snapshot(psi(GOOD))
    assert rig.all_findings() == {
        ("fraud", "model.degraded", "enqueued"): 1.0,
        ("fraud", "model.degraded", "suppressed"): 1.0,
        ("fraud", "model.recovered", "enqueued"): 1.0,
        ("fraud", "model.recovered", "suppressed"): 1.0,
    }
    assert [e.event_type for e in rig.outbox()] == ["model.degraded", "model.recovered"]
    assert not out.models[0].degraded


def test_hysteresis_a_marginal_value_neither_fires_nor_recovers(tmp_path: Path) -> None:
    rig = make_actions(tmp_path, with_webhook(model_cfg(breaches_to_fire=2)))
    rig.actions.on_snapshot(psi(BAD))
    assert rig.all_findings() == {} and rig.outbox() == []  # one breach of two
    rig.actions.on_snapshot(psi(BAD))
    assert rig.all_findings() == {("fraud", "model.degraded", "enqueued"): 1.0}
    for value in (GOOD, MARGINAL, GOOD):  # the marginal one restarts the clean streak
        out = rig.actions.on_snapshot(psi(value))
        assert out.models[0].degraded
    assert len(rig.outbox()) == 1
    out = rig.actions.on_snapshot(psi(GOOD))  # second clean in a row
    assert not out.models[0].degraded
    assert rig.all_findings() == {
        ("fraud", "model.degraded", "enqueued"): 1.0,
        ("fraud", "model.recovered", "enqueued"): 1.0,
    }
    assert [e.event_type for e in rig.outbox()] == ["model.degraded", "model.recovered"]


def test_a_model_without_a_webhook_is_counted_and_enqueues_nothing(tmp_path: Path) -> None:
    rig = make_actions(
        tmp_path,
        model_cfg("quiet", breaches_to_fire=1),
        with_webhook(model_cfg(breaches_to_fire=1)),
    )
    assert set(rig.actions.endpoints) == {"fraud"}
    out = rig.actions.on_snapshot(psi(BAD, model="quiet"))
    assert rig.all_findings() == {("quiet", "model.degraded", "no_webhook"): 1.0}
    assert rig.outbox() == [] and rig.outbox_size() == 0
    assert out.models[0].degraded


def test_an_outbox_that_cannot_write_is_counted_and_the_next_transition_is_sent(
    rig: ActionsRig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def disk_full(path: Path, data: bytes, *, private: bool = True) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("monitor.alerting.outbox.atomic_write", disk_full)
    with caplog.at_level(logging.ERROR, logger="monitor.alerting.actions"):
        out = rig.actions.on_snapshot(psi(BAD))
    assert rig.all_findings() == {("fraud", "model.degraded", "outbox_error"): 1.0}
    assert rig.outbox() == [] and rig.outbox_size() == 0
    assert out.models[0].degraded  # decided; the webhook is lost, loudly
    assert caplog.messages == [
        "could not store model.degraded for fraud in the outbox: [Errno 28] No space left on device"
    ]

    monkeypatch.undo()  # the disk has room again
    rig.actions.on_snapshot(psi(GOOD))
    assert rig.all_findings() == {
        ("fraud", "model.degraded", "outbox_error"): 1.0,
        ("fraud", "model.recovered", "enqueued"): 1.0,
    }
    (entry,) = rig.outbox()
    assert entry.id == event_id(rig, "fraud", "model.recovered", 2)


def test_each_model_is_decided_and_sent_on_its_own(tmp_path: Path) -> None:
    rig = make_actions(
        tmp_path,
        with_webhook(model_cfg("fraud", breaches_to_fire=1), URL + "/fraud"),
        with_webhook(model_cfg("churn", breaches_to_fire=1), URL + "/churn"),
    )
    both = Snapshot(T0, psi(BAD).models + psi(GOOD, model="churn").models)
    out = rig.actions.on_snapshot(both)
    assert [(m.model, m.degraded) for m in out.models] == [("fraud", True), ("churn", False)]
    assert rig.all_findings() == {("fraud", "model.degraded", "enqueued"): 1.0}
    (entry,) = rig.outbox()
    assert (entry.endpoint, entry.url) == ("fraud", URL + "/fraud")


def test_annotate_adds_the_policy_view_and_decides_nothing(rig: ActionsRig) -> None:
    bad = psi(BAD)
    for _ in range(3):
        out = rig.actions.annotate(bad)
    assert rig.all_findings() == {} and rig.outbox() == []
    (model,) = out.models
    assert (model.degraded, model.breaches) == (
        False,
        {"feature_psi": 0, "prediction_psi": 0, "feature_drift": 0},
    )
    assert replace(model, breaches={}) == bad.models[0]

    rig.actions.on_snapshot(bad)  # now degraded
    before = rig.actions.to_state()
    for _ in range(3):  # clean evidence, but annotate never advances the policy
        out = rig.actions.annotate(psi(GOOD))
    assert rig.actions.to_state() == before
    assert (out.models[0].degraded, out.models[0].breaches["feature_psi"]) == (True, 1)
    assert rig.all_findings() == {("fraud", "model.degraded", "enqueued"): 1.0}
    assert len(rig.outbox()) == 1


def test_a_transition_decided_again_from_its_checkpoint_is_not_enqueued_twice(
    tmp_path: Path,
) -> None:
    """kill -9 after the enqueue, before the checkpoint: the restarted policy (from the last
    checkpoint) decides the same transition again, with the same id, and the outbox keeps the
    one it holds, with its first bytes."""
    cfg = with_webhook(model_cfg(breaches_to_fire=1))
    first = make_actions(tmp_path, cfg)
    checkpoint = first.actions.to_state()
    first.actions.on_snapshot(psi(BAD), KAFKA)
    (stored,) = first.outbox()
    first.actions.stop(1.0)  # releases the outbox's lock, as the process's death would

    again = make_actions(tmp_path, cfg)
    again.actions.load_state(checkpoint)
    again.actions.on_snapshot(psi(0.7), {"predictions": {0: [10, 120]}})
    (kept,) = again.outbox()
    assert (kept.id, kept.body, kept.seq) == (stored.id, stored.body, stored.seq)
    # Counted for what it is: nothing new was stored.
    assert again.all_findings() == {("fraud", "model.degraded", "already_pending"): 1.0}
