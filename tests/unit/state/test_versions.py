"""Version logs: new versions once, flips are no change, presence follows event time."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.events import Prediction
from monitor.state.versions import MAX_VERSIONS, VersionLog, touch

HOUR = 3600.0


def observe(log: VersionLog, preds: list[Prediction]) -> list[str]:
    """The log fed as the model state feeds it: each event's version and time."""
    return log.observe([p.version for p in preds], np.array([p.timestamp for p in preds]))


def pred(version: str | None, t: float) -> Prediction:
    return Prediction(f"{version}-{t}", "fraud", version, t, {}, 0, None)


def test_a_canary_is_new_once_and_its_flips_are_no_change() -> None:
    log = VersionLog(HOUR)
    assert observe(log, [pred("v1", 0.0), pred("v1", 1.0)]) == []  # the first version is adopted
    assert observe(log, [pred("v1", 2.0), pred("v2", 3.0), pred("v1", 4.0)]) == ["v2"]
    assert observe(log, [pred("v2", 5.0), pred("v1", 6.0), pred("v2", 7.0)]) == []
    assert log.present() == ("v1", "v2") and log.current == "v2"


def test_unversioned_predictions_are_ignored() -> None:
    log = VersionLog(HOUR)
    assert observe(log, [pred(None, 0.0)]) == [] and log.current is None
    assert observe(log, [pred(None, 1.0), pred("v1", 2.0)]) == []
    assert log.present() == ("v1",)


def test_a_version_without_events_for_the_horizon_is_no_longer_present() -> None:
    log = VersionLog(HOUR)
    observe(log, [pred("v1", 0.0), pred("v2", 10.0)])
    observe(log, [pred("v1", 10.0 + HOUR)])
    assert log.present() == ("v1", "v2") and log.current == "v2"  # exactly a horizon: present
    observe(log, [pred("v1", 10.5 + HOUR)])
    assert log.present() == ("v1",) and log.current == "v1"  # the canary was rolled back
    assert "v2" in log  # still known: its return is no new version
    assert observe(log, [pred("v2", 11.0 + HOUR)]) == []


def test_the_least_recently_seen_version_is_forgotten_beyond_capacity() -> None:
    log = VersionLog(HOUR, capacity=3)
    observe(log, [pred("a", 0.0), pred("b", 1.0), pred("c", 2.0), pred("a", 3.0)])
    assert observe(log, [pred("d", 4.0)]) == ["d"]
    assert log.present() == ("a", "c", "d")  # b was seen least recently
    assert observe(log, [pred("b", 5.0)]) == ["b"]  # forgotten, so new again


def test_sixteen_versions_are_remembered_by_default() -> None:
    log = VersionLog(HOUR)
    names = [f"v{i}" for i in range(MAX_VERSIONS + 1)]
    observe(log, [pred(v, float(i)) for i, v in enumerate(names)])
    assert MAX_VERSIONS == 16 and log.present() == tuple(names[1:])


def test_state_round_trip_and_refusals() -> None:
    log = VersionLog(HOUR)
    observe(log, [pred("v1", 0.0), pred("v2", 5.0)])
    copy = VersionLog(HOUR)
    copy.load_state(log.to_state())
    assert copy.to_state() == [["v1", 0.0], ["v2", 5.0]] and copy.current == "v2"
    for bad in ([["v1"]], [[1, 2.0]], [["v1", "x"]], [["v1", True]], "v1"):
        with pytest.raises(ValueError, match="not \\[version, time\\]"):
            VersionLog(HOUR).load_state(bad)
    with pytest.raises(ValueError, match="over 2"):
        VersionLog(HOUR, capacity=2).load_state([*log.to_state(), ["v3", 6.0]])


def test_touch_keeps_the_least_recently_seen_first() -> None:
    seen: list[str] = []
    assert [touch(seen, v, capacity=2) for v in ("a", "b", "a", "c", "b")] == [
        False,  # adopted
        True,
        False,
        True,  # evicts b, the least recently seen
        True,  # b again: forgotten, so new
    ]
    assert seen == ["c", "b"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["v1", "v2", "v3"]), min_size=1, max_size=200), st.data())
def test_each_version_is_new_exactly_once_whatever_the_interleaving_and_batching(
    versions: list[str], data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(0, len(versions)))))
    events = [pred(v, float(i)) for i, v in enumerate(versions)]
    log = VersionLog(HOUR)
    new = [
        v
        for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)
        for v in observe(log, events[a:b])
    ]
    first_appearance = list(dict.fromkeys(versions))
    assert new == first_appearance[1:]
    assert log.present() == tuple(first_appearance) and log.current == first_appearance[-1]
