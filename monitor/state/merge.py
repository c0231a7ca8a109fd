"""One model's global state from its per-partition states (group mode). Pure: no I/O.

In group mode every replica keeps a :class:`~monitor.state.model_state.ModelState` per input
partition it owns (a *shard*) and publishes it; the evaluation merges every partition's shard
into one state whose windows are what one process reading all partitions would hold: pane
counts and accumulators add, unseen-value summaries merge, each window ends at the newest
partition's pane. The join is not merged (each partition's labels join its own predictions).

Counts are exact; accumulator sums are float additions in another order than one process
would do them (equal to about 1e-15 relative).
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.reference.profile import ReferenceProfile
from monitor.settings import ModelSettings
from monitor.state.model_state import ModelState


def merge_states(
    cfg: ModelSettings, reference: ReferenceProfile | None, shards: Iterable[ModelState]
) -> ModelState:
    """A fresh state holding every shard's windows, event times and versions.

    Examples
    --------
    See ``tests/unit/state/test_merge.py``: shards of any split of a stream by partition merge
    into the windows one state over the whole stream holds.
    """
    out = ModelState(cfg, reference)
    shards = [s for s in shards if s.reference is not None]
    # Heads first: a pane of a slow partition that the fastest one pushed out stays out.
    for shard in shards:
        out.clocks.merge_from(shard.clocks)
        out.versions.merge_from(shard.versions)
        for name, ring in shard.windows.items():
            if ring.head is not None:
                out.windows[name].advance(ring.head)
    for name, acc in out.perf.rings.items():
        acc.advance(out.windows[name].head)
    for shard in shards:
        for name, ring in shard.windows.items():
            out.windows[name].merge_from(ring)
            out.unseen[name].merge_from(shard.unseen[name], out.windows[name].head)
        for name, acc in shard.perf.rings.items():
            out.perf.rings[name].merge_from(acc)
    return out
