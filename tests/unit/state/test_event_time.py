"""Event time per partition: a backlog gives the same windows whatever the partition interleaving.

The in-order oracle is the same records consumed in event-time order; lateness (2 min here) is
far shorter than the skew between partitions (up to the whole backlog), which is what a
catch-up after a restart or a deploy looks like.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.devkit.synthetic import Traffic, features_of
from monitor.events import Label, Prediction
from monitor.reference.profile import ReferenceProfile
from monitor.settings import ModelSettings
from monitor.settings_loader import load_settings
from monitor.state.model_state import ModelState

T0 = 1.8e9
BACKLOG = 50 * 60.0  # seconds of traffic per partition
PARTITIONS = 6


def model_cfg() -> ModelSettings:
    s = load_settings(
        None,
        overrides={
            "models": [
                {
                    "name": "fraud",
                    "features": features_of("fraud"),
                    "reference": {"bootstrap_events": 100},
                    "windows": [
                        {"name": "5m", "length": "5m", "pane": "10s"},
                        {"name": "1h", "length": "1h", "pane": "1m"},
                    ],
                    "allowed_lateness": "2m",
                    "label_ttl": "2h",
                }
            ]
        },
    )
    return s.models[0]


def backlog(seed: int, per_partition: int) -> dict[int, list[Prediction]]:
    """Each partition's predictions in its own (event-time) order, spread over the backlog."""
    rng = np.random.default_rng(seed)
    out = {}
    for part in range(PARTITIONS):
        events = Traffic(seed * 100 + part).events("fraud", per_partition, T0, 1.0)
        times = np.sort(rng.uniform(T0, T0 + BACKLOG, per_partition))
        out[part] = [
            Prediction(
                f"{part}-{i}", "fraud", "v1", float(t), e["features"], e["prediction"], e["score"]
            )
            for i, (e, t) in enumerate(zip(events, times, strict=True))
        ]
    return out


def reference(cfg: ModelSettings, parts: dict[int, list[Prediction]]) -> ReferenceProfile:
    boot = ModelState(cfg)
    boot.add_predictions([p for preds in parts.values() for p in preds][:100])
    assert boot.reference is not None
    return boot.reference


def labels_for(preds: list[Prediction]) -> list[Label]:
    """Each prediction's label, a function of its id alone (so of no consumption order)."""
    return [
        Label(p.id, "fraud", int(p.id.endswith(("0", "3", "7"))), p.timestamp + 5.0) for p in preds
    ]


def consume(
    cfg: ModelSettings,
    ref: ReferenceProfile,
    parts: dict[int, list[Prediction]],
    order: list[tuple[int, int]],
) -> tuple[ModelState, int, int]:
    """Feed (partition, batch size) chunks in ``order``, each partition's labels with it."""
    state = ModelState(cfg, ref)
    pos = dict.fromkeys(parts, 0)
    late = out_of_window = 0
    for part, size in order:
        chunk = parts[part][pos[part] : pos[part] + size]
        pos[part] += len(chunk)
        result = state.add_predictions(chunk, part, arrived_at=0.0)
        late += result.late
        out_of_window += result.out_of_window
        state.add_labels(labels_for(chunk))
    assert all(pos[p] == len(parts[p]) for p in parts), "the order must consume everything"
    return state, late, out_of_window


def in_order(parts: dict[int, list[Prediction]]) -> list[tuple[int, int]]:
    """The oracle's order: every record one by one in event-time order."""
    merged = sorted((p.timestamp, part) for part, preds in parts.items() for p in preds)
    return [(part, 1) for _, part in merged]


def interleavings(draw: st.DrawFn, parts: dict[int, list[Prediction]]) -> list[tuple[int, int]]:
    """A random consumption order: uneven chunks, partitions read far ahead of each other."""
    left = {p: len(v) for p, v in parts.items()}
    order = []
    while any(left.values()):
        part = draw(st.sampled_from(sorted(p for p, n in left.items() if n)))
        size = draw(st.integers(1, left[part]))
        order.append((part, size))
        left[part] -= size
    return order


def assert_same_windows(a: ModelState, b: ModelState) -> None:
    for va, vb in zip(a.views(), b.views(), strict=True):
        assert (va.name, va.start, va.end) == (vb.name, vb.start, vb.end)
        assert va.total.tolist() == vb.total.tolist()
    for name in a.perf.rings:
        # Counts exact; sums (log loss, Brier) to 1e-9: float addition order follows arrival.
        pa, pb = asdict(a.perf.snapshot(name)), asdict(b.perf.snapshot(name))
        assert pa.keys() == pb.keys()
        for key, va in pa.items():
            vb = pb[key]
            if isinstance(va, float) and isinstance(vb, float):
                assert math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-12), (name, key, va, vb)
            else:
                assert va == vb, (name, key)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), data=st.data())
def test_any_partition_interleaving_gives_the_in_order_windows(
    seed: int, data: st.DataObject
) -> None:
    cfg = model_cfg()
    parts = backlog(seed, per_partition=60)
    ref = reference(cfg, parts)
    oracle, oracle_late, oracle_out = consume(cfg, ref, parts, in_order(parts))
    got, late, out = consume(cfg, ref, parts, interleavings(data.draw, parts))
    assert late == oracle_late == 0
    assert_same_windows(got, oracle)
    # Every prediction is in the longest window or counted as outside it: none is lost.
    start = min(v.start for v in got.views())
    expected_out = sum(p.timestamp < start for preds in parts.values() for p in preds)
    assert out == expected_out
    assert oracle_out == 0  # in event-time order nothing arrives after its window passed


def test_a_partition_read_entirely_before_another_loses_nothing() -> None:
    # Partition 0's whole 50 minutes first, then partition 1's: a skew of 50 minutes against a
    # lateness of 2. Judged against the newest time of both partitions, all of partition 1
    # would be late.
    cfg = model_cfg()
    parts = {p: v for p, v in backlog(7, per_partition=400).items() if p < 2}
    ref = reference(cfg, parts)
    state, late, _ = consume(cfg, ref, parts, [(0, 400), (1, 400)])
    oracle, _, _ = consume(cfg, ref, parts, in_order(parts))
    assert late == 0
    assert_same_windows(state, oracle)
    hour = next(v for v in state.views() if v.name == "1h")
    assert hour.total[: state.slots[0].stop].sum() == 800  # every prediction, both partitions


def test_lateness_is_still_judged_within_a_partition() -> None:
    cfg = model_cfg()
    parts = backlog(3, per_partition=50)
    state = ModelState(cfg, reference(cfg, parts))
    first = parts[0][-1]
    assert state.add_predictions([first], 0).late == 0
    stale = parts[0][0]._replace(id="stale", timestamp=first.timestamp - 121.0)
    fine = parts[0][1]._replace(id="fine", timestamp=first.timestamp - 119.0)
    assert state.add_predictions([stale, fine], 0).late == 1
    # The same old time is on time in a partition that has not got that far.
    assert state.add_predictions([stale._replace(id="other")], 1).late == 0


def test_the_watermark_is_the_slowest_active_partition() -> None:
    cfg = model_cfg()
    parts = backlog(5, per_partition=20)
    state = ModelState(cfg, reference(cfg, parts))
    state.add_predictions(parts[0], 0, arrived_at=100.0)
    state.add_predictions(parts[1][:3], 1, arrived_at=100.0)
    fast, slow = parts[0][-1].timestamp, parts[1][2].timestamp
    assert state.newest_seen == fast
    assert state.watermark(now=130.0) == slow  # both active
    # Partition 1 idle for longer than idle_partition_timeout (60 s): no longer holds it back.
    state.add_predictions(parts[0][-1:], 0, arrived_at=170.0)  # a duplicate: time stays
    assert state.watermark(now=170.0) == fast


def test_join_expiry_follows_the_watermark_not_the_fastest_partition() -> None:
    cfg = model_cfg()  # label_ttl 2h
    parts = backlog(11, per_partition=30)
    state = ModelState(cfg, reference(cfg, parts))
    slow = [p._replace(timestamp=T0 + i) for i, p in enumerate(parts[1])]
    state.add_predictions(slow, 1, arrived_at=0.0)
    far = [p._replace(timestamp=T0 + 3 * 3600.0 + i) for i, p in enumerate(parts[0])]
    state.add_predictions(far, 0, arrived_at=0.0)
    assert state.perf.expire(state.watermark(now=1.0)).expired_unlabelled == 0
    result = state.add_labels(labels_for(slow))
    assert result.counts.orphan_labels == 0
    assert len(result.delays) == len(slow)


def test_checkpoint_keeps_each_partitions_time() -> None:
    cfg = model_cfg()
    parts = backlog(9, per_partition=40)
    ref = reference(cfg, parts)
    state = ModelState(cfg, ref)
    state.add_predictions(parts[0], 0)
    state.add_predictions(parts[1][:5], 1)
    arrays: dict[str, np.ndarray] = {}
    meta = state.to_state(arrays, "m")
    copy = ModelState(cfg, ref)
    copy.load_state(meta, arrays, "m")
    assert copy.clocks.newest == state.clocks.newest
    # Partition 1 continues where it was, not at partition 0's time.
    assert copy.add_predictions(parts[1][5:], 1).late == 0
