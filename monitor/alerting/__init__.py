"""Alerting: decide (policy) and act (signed Standard Webhooks through a durable outbox)."""
