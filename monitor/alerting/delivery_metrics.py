"""The webhook dispatcher's metrics: deliveries by outcome, attempts, resolution failures,
the outbox size and the last success, per model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["OUTCOMES", "DeliveryMetrics"]

OUTCOMES: Final = ("delivered", "retry", "failed", "disabled", "expired")


class DeliveryMetrics:
    """The ``modelmon_webhook_*`` families on ``registry``."""

    def __init__(self, registry: CollectorRegistry, pending: Callable[[], int]) -> None:
        self.deliveries = Counter(
            "modelmon_webhook_deliveries",
            "Webhook events by outcome (retry counts failed attempts that will be retried).",
            ["model", "outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "modelmon_webhook_attempts", "Webhook delivery attempts.", ["model"], registry=registry
        )
        self.resolve_failures = Counter(
            "modelmon_webhook_resolve_failures",
            "Delivery attempts that could not resolve the webhook host (retried).",
            ["model"],
            registry=registry,
        )
        self.outbox_size = Gauge(
            "modelmon_webhook_outbox_size",
            "Webhook events waiting in the outbox.",
            registry=registry,
        )
        self.outbox_size.set_function(pending)
        self.last_success = Gauge(
            "modelmon_webhook_last_success_timestamp_seconds",
            "Unix time of the last delivered webhook.",
            ["model"],
            registry=registry,
        )

    def add_model(self, model: str) -> None:
        # create the zero series up front so rate() and alerts see them before the first event
        for outcome in OUTCOMES:
            self.deliveries.labels(model=model, outcome=outcome)
        self.attempts.labels(model=model)
        self.resolve_failures.labels(model=model)
