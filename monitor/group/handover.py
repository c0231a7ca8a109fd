"""The policy travels with the acting role through the state topic (``P`` record).

The acting replica publishes the policy's state and the webhooks it has stored but not yet
delivered after every evaluation that changed either; a replica that becomes the acting one
restores that state and delivers those webhooks (same ``webhook-id``), so a transition already
announced is not announced again, and one whose webhook was still in the outbox of a replica
that died with its disk is still delivered.

Between a decision and the next publication (at most one evaluation) a dying acting replica
leaves no trace: its successor decides the same transition again from the same policy state,
which gives it the same ``webhook-id`` (a receiver that saw the first POST ignores the second).
"""

from __future__ import annotations

import logging

import orjson

from monitor.alerting.actions import Actions
from monitor.group.coordinator import Coordinator
from monitor.serve.ops_metrics import OpsMetrics

log = logging.getLogger(__name__)


class PolicyHandover:
    def __init__(self, actions: Actions, group: Coordinator, metrics: OpsMetrics) -> None:
        self._actions = actions
        self._group = group
        self._metrics = metrics
        self._published: bytes | None = None
        group.on_acting = self.take

    def take(self, raw: bytes | None) -> None:
        """Becoming the acting replica: continue the policy where the last one left it."""
        if raw is None:
            return
        try:
            state = orjson.loads(raw)
            self._actions.restorer(state["policy"])()
            adopted = self._actions.adopt_webhooks(list(state.get("webhooks", [])))
            self._published = raw
            log.info("group: policy taken over from the state topic (%d webhooks adopted)", adopted)
        except Exception as exc:  # input: a bad record costs the policy's memory, not the daemon
            log.error("policy state from the state topic unusable (%s): starting afresh", exc)

    def publish(self) -> None:
        """Publish the policy's state if it changed since last time (acting replica only)."""
        state = {
            "policy": self._actions.to_state(),
            "webhooks": self._actions.pending_webhooks(),
        }
        raw = orjson.dumps(state)
        if raw == self._published:
            return
        try:
            self._group.publish_policy(raw)
            self._published = raw
        except Exception as exc:
            self._metrics.state_flush_errors.inc()
            log.warning("publishing the policy state failed (%s): will retry", exc)
