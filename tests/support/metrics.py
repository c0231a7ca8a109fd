"""The one Prometheus text parser of the suite: ``/metrics`` as a dict of samples."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

#: (sample name, sorted label pairs) -> value
Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Metrics:
    """Every sample of a Prometheus text exposition, keyed by name and sorted labels."""
    return metric_samples(text_string_to_metric_families(text))


def metric_samples(families: Iterable[Metric]) -> Metrics:
    """Every sample of metric families (parsed, or straight from a collector), keyed alike."""
    out: Metrics = {}
    for fam in families:
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
