"""From evaluations to actions: the policy decides, the webhook dispatcher delivers.

Endpoints and their secrets are resolved and their targets validated at start, so a missing
secret or a refused address fails before any connection, naming the key.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from monitor.alerting.delivery import WebhookDispatcher
from monitor.alerting.payload import finding_data
from monitor.alerting.policy import Finding, Policy
from monitor.alerting.standard_webhooks import (
    DEFAULT_RETRY,
    RetryPolicy,
    WebhookEndpoint,
    validate_webhook_url,
)
from monitor.alerting.targets import display_url
from monitor.redaction import redact
from monitor.settings import ConfigError, Settings, WebhookSettings
from monitor.snapshot import Snapshot

log = logging.getLogger(__name__)


def _secrets(
    model: str, hook: WebhookSettings, environ: Mapping[str, str]
) -> tuple[SecretStr, ...]:
    key = f"models[{model}].webhook"
    if hook.secret is not None:
        raw = hook.secret.get_secret_value()
    elif hook.secret_env is not None:
        if not environ.get(hook.secret_env):
            raise ConfigError(f"{key}.secret_env: environment variable {hook.secret_env} is unset")
        raw = environ[hook.secret_env]
    else:
        assert hook.secret_file is not None
        try:
            raw = hook.secret_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{key}.secret_file: {exc.strerror or exc}") from None
    parts = raw.split()
    if not parts:
        raise ConfigError(f"{key}: the secret is empty")
    return tuple(SecretStr(p) for p in parts)


def build_endpoints(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, WebhookEndpoint]:
    """One endpoint per model with a webhook; raises :class:`ConfigError` naming the key."""
    environ = os.environ if environ is None else environ
    out = {}
    for m in settings.models:
        hook = m.webhook
        if hook is None:
            continue
        key = f"models[{m.name}].webhook"
        try:
            endpoint = WebhookEndpoint(
                name=m.name,
                url=hook.url,
                secrets=_secrets(m.name, hook, environ),
                timeout=hook.timeout,
                allow_private=hook.allow_private_targets,
            )
            validate_webhook_url(hook.url, hook.allow_private_targets)
        except ValueError as exc:  # never includes the secret itself
            raise ConfigError(f"{key}: {redact(str(exc))}") from None
        except OSError as exc:  # DNS down or the name not yet published: not a config error
            log.warning(
                "%s: host of %s does not resolve now (%s); its events wait in the outbox and "
                "each attempt resolves again (modelmon_webhook_resolve_failures_total)",
                key,
                display_url(hook.url),
                redact(str(exc)),
            )
        out[m.name] = endpoint
    return out


def retry_policy(settings: Settings) -> RetryPolicy:
    """The dispatcher has one schedule: the first model that sets one decides (documented)."""
    for m in settings.models:
        if m.webhook is not None and m.webhook.retry_schedule is not None:
            return RetryPolicy(tuple(m.webhook.retry_schedule), m.webhook.retry_max_age)
    return DEFAULT_RETRY


class Actions:
    """Runs the policy over each snapshot and enqueues the findings as signed webhooks.

    ``lock`` guards the policy state: a decision and the outbox write of its webhook happen
    under it, and so does :meth:`to_state`, so a checkpoint never holds a transition whose
    webhook is not yet durable. It is never held together with the ingest lock.
    """

    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.lock = threading.Lock()
        self.policy = Policy(settings.models, clock)
        self.endpoints = build_endpoints(settings, environ)
        self.dispatcher = WebhookDispatcher(
            Path(settings.state.dir) / "webhooks",
            registry=registry,
            endpoints=self.endpoints.values(),
            retry=retry_policy(settings),
            clock=clock,
            wall=wall,
        )
        self.findings = Counter(
            "modelmon_findings",
            "Policy findings by type and what was done with them.",
            ["model", "type", "outcome"],
            registry=registry,
        )

    def start(self) -> None:
        self.dispatcher.start()

    def stop(self, deadline: float) -> None:
        self.dispatcher.stop(deadline)

    def on_snapshot(self, snap: Snapshot, kafka: Mapping[str, Any] | None = None) -> Snapshot:
        """Decide on ``snap``, act on the findings, return it with the policy's view added."""
        with self.lock:
            for finding in self.policy.observe(snap):
                self._act(finding, kafka, snap)
            return self._annotated(snap)

    def annotate(self, snap: Snapshot) -> Snapshot:
        """``snap`` with the policy's current view added, deciding nothing (catching up)."""
        with self.lock:
            return self._annotated(snap)

    def _annotated(self, snap: Snapshot) -> Snapshot:
        return replace(
            snap,
            models=tuple(
                replace(
                    m,
                    degraded=self.policy.degraded(m.model),
                    breaches=self.policy.breaches(m.model),
                )
                for m in snap.models
            ),
        )

    def _act(
        self, finding: Finding, kafka: Mapping[str, Any] | None, snap: Snapshot | None = None
    ) -> None:
        reasons = ", ".join(
            f"{r.metric}{'[' + r.feature + ']' if r.feature else ''}={r.value:.4g}"
            f" (limit {r.threshold:.4g})"
            for r in finding.reasons
        )
        if finding.suppressed:
            log.warning(
                "%s %s suppressed (%s): %s",
                finding.type,
                finding.model,
                finding.suppressed_reason,
                reasons or "-",
            )
            self.findings.labels(finding.model, finding.type, "suppressed").inc()
            return
        log.warning(
            "%s model=%s window=%s: %s", finding.type, finding.model, finding.window, reasons or "-"
        )
        endpoint = self.endpoints.get(finding.model)
        if endpoint is None:
            self.findings.labels(finding.model, finding.type, "no_webhook").inc()
            return
        model = snap.model(finding.model) if snap is not None else None
        window = model.window(finding.window) if model and finding.window else None
        try:
            stored = self.dispatcher.enqueue(
                endpoint,
                finding.type,
                finding_data(finding, kafka, window),
                event_id=finding.event_id,
            )
        except OSError as exc:
            # The outbox could not store it: say so loudly; the next transition retries.
            log.error(
                "could not store %s for %s in the outbox: %s", finding.type, finding.model, exc
            )
            self.findings.labels(finding.model, finding.type, "outbox_error").inc()
            return
        # A transition decided again after a restart (same id) while its webhook is still in
        # the outbox stores nothing: counting it as enqueued would overstate what is sent.
        outcome = "enqueued" if stored is not None else "already_pending"
        self.findings.labels(finding.model, finding.type, outcome).inc()

    # -- checkpoint part "policy": the policy's state is all the state Actions holds -------------
    def to_state(self) -> dict[str, Any]:
        with self.lock:
            return self.policy.to_state()

    def restorer(self, state: dict[str, Any]) -> Callable[[], None]:
        """Parse and check ``state`` now (ValueError if unusable); the call installs it."""
        policy = Policy.from_state(state, self._settings.models, self._clock)

        def install() -> None:
            with self.lock:
                self.policy = policy

        return install

    def load_state(self, state: dict[str, Any]) -> None:
        self.restorer(state)()

    # -- group mode: webhooks travel with the acting role -------------------------------------
    def pending_webhooks(self) -> list[dict[str, str]]:
        """The webhooks stored but not yet delivered (for the next acting replica)."""
        return [
            {"id": e.id, "endpoint": e.endpoint, "type": e.event_type, "body": e.body.decode()}
            for e in self.dispatcher.undelivered()
        ]

    def adopt_webhooks(self, items: list[Any]) -> int:
        """Deliver what the previous acting replica had not delivered; returns how many were
        new here (each keeps its ``webhook-id``, so a receiver that saw one ignores it)."""
        adopted = 0
        for item in items:
            endpoint = self.endpoints.get(str(item.get("endpoint")))
            if endpoint is None:
                log.warning("webhook %s for unknown endpoint dropped", item.get("id"))
                continue
            body = str(item["body"]).encode()
            adopted += self.dispatcher.adopt(endpoint, str(item["id"]), str(item["type"]), body)
        return adopted
