"""Most frequent items in bounded memory: a mergeable Misra-Gries summary.

A summary keeps at most ``capacity`` counters (``k``). Each counter *underestimates* its
item's true count, by at most ``error = (n - sum(counters)) / (k + 1)`` where ``n`` is the
number of items summarised; an item absent from the summary occurred at most ``error`` times.
Since ``error <= n / (k + 1)``, every item more frequent than ``n / (k + 1)`` is kept.

Two summaries merge into one with the same guarantee over the union of their items (Agarwal et
al., *Mergeable Summaries*, PODS 2012): add the counters, then, if more than ``k`` remain,
subtract the ``(k + 1)``-th largest from all and drop those that reach zero. Each subtraction
of ``c`` removes at least ``(k + 1) * c`` from the counters' sum while lowering any one counter
by ``c``, which is what keeps the bound. Adding a batch is merging its exact counts (a summary
with error 0), so the order and grouping of the items change the counters but never the bound.
(Space-saving is the same summary shifted up: it overestimates where this underestimates.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

DEFAULT_CAPACITY = 64


class MisraGries:
    """A Misra-Gries heavy-hitters summary of string items.

    Parameters
    ----------
    capacity : int
        Most counters kept (``k``), at least 1.

    Examples
    --------
    >>> s = MisraGries(capacity=2)
    >>> s.add(["a", "b", "a", "c", "a", "d"])
    >>> s.top(2), s.total, s.error
    ([('a', 2)], 6, 1)
    >>> other = MisraGries(capacity=2)
    >>> other.add(["a", "a", "b"])
    >>> s.merge(other)
    >>> s.top(2), s.total, s.error
    ([('a', 4), ('b', 1)], 9, 1)
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.counters: dict[str, int] = {}
        self.total = 0

    def add(self, items: Iterable[str]) -> None:
        """Count ``items`` (merges their exact counts)."""
        counts = Counter(items)
        self._merge_counts(counts, sum(counts.values()))

    def merge(self, other: MisraGries) -> None:
        """Fold ``other`` in: the result summarises both item streams with the same bound."""
        self._merge_counts(other.counters, other.total)

    def _merge_counts(self, counts: Mapping[str, int], total: int) -> None:
        merged = dict(self.counters)
        for item, count in counts.items():
            merged[item] = merged.get(item, 0) + count
        if len(merged) > self.capacity:
            cut = sorted(merged.values(), reverse=True)[self.capacity]
            merged = {item: c - cut for item, c in merged.items() if c > cut}
        self.counters = merged
        self.total += total

    @property
    def error(self) -> int:
        """Largest possible undercount of any item (``floor((n - sum) / (k + 1))``)."""
        return (self.total - sum(self.counters.values())) // (self.capacity + 1)

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` largest counters, largest first (ties by item), as ``(item, count)``."""
        return sorted(self.counters.items(), key=lambda ic: (-ic[1], ic[0]))[:n]

    @classmethod
    def restore(cls, capacity: int, counters: Mapping[str, int], total: int) -> MisraGries:
        """A summary with these counters; ``ValueError`` if they cannot be one's."""
        if len(counters) > capacity:
            raise ValueError(f"{len(counters)} counters, more than the capacity {capacity}")
        if any(c <= 0 for c in counters.values()) or sum(counters.values()) > total:
            raise ValueError("counters must be positive and sum to at most the total")
        out = cls(capacity)
        out.counters, out.total = dict(counters), total
        return out
