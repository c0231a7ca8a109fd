"""The policy's state travels with the acting role through the state topic (``P`` record).

The acting replica publishes the policy's state after every evaluation that changed it; a
replica that becomes the acting one restores the last published state first, so a transition
already announced is not announced again, and one in progress is not lost.
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
            self._actions.restorer(orjson.loads(raw))()
            self._published = raw
            log.info("group: policy state taken over from the state topic")
        except Exception as exc:  # input: a bad record costs the policy's memory, not the daemon
            log.error("policy state from the state topic unusable (%s): starting afresh", exc)

    def publish(self) -> None:
        """Publish the policy's state if it changed since last time (acting replica only)."""
        raw = orjson.dumps(self._actions.to_state())
        if raw == self._published:
            return
        try:
            self._group.publish_policy(raw)
            self._published = raw
        except Exception as exc:
            self._metrics.state_flush_errors.inc()
            log.warning("publishing the policy state failed (%s): will retry", exc)
