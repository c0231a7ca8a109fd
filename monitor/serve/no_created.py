"""The registry as ``/metrics`` serves it: without prometheus-client's ``*_created`` series.

prometheus-client adds a ``<name>_created`` sample (the Unix time the series was created) to
every counter and histogram. Dashboards and rules never read them, yet they double the series
a scrape stores. The library's own switch is process-wide; this wrapper drops them for our
endpoint only, for every format (text 0.0.4, OpenMetrics, ``name[]`` filtering).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric


class WithoutCreated:
    """A read-only view of ``registry`` whose families carry no ``_created`` samples.

    Examples
    --------
    >>> from prometheus_client import Counter, generate_latest
    >>> registry = CollectorRegistry()
    >>> Counter("jobs", "Jobs done.", registry=registry).inc()
    >>> text = generate_latest(WithoutCreated(registry)).decode()  # type: ignore[arg-type]
    >>> "jobs_total 1.0" in text, "jobs_created" in text
    (True, False)
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            kept = [s for s in family.samples if not s.name.endswith("_created")]
            if len(kept) != len(family.samples):
                family.samples = kept
            yield family

    def restricted_registry(self, names: Iterable[str]) -> WithoutCreated:
        """What ``/metrics?name[]=…`` asks for, still without ``_created``."""
        return WithoutCreated(self._registry.restricted_registry(names))  # type: ignore[arg-type]
