"""The one Prometheus text parser of the suite: ``/metrics`` as a dict of samples."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

#: (sample name, sorted label pairs) -> value
Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Metrics:
    """Every sample of a Prometheus text exposition, keyed by name and sorted labels."""
    out: Metrics = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
