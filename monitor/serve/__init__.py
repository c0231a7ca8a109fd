"""Serving: the Prometheus collector, the HTTP endpoints and the operational metrics."""
