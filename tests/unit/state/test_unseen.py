"""Which unseen categories: per-pane summaries in a model's windows, the status JSON, the
checkpoint, and never a metric label."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.serve.collector import SnapshotCollector
from monitor.settings import ModelSettings, PolicySettings, WindowSpec
from monitor.state.evaluate import evaluate
from monitor.state.model_state import ModelState
from monitor.state.unseen import MAX_VALUE_CHARS, UnseenPanes
from tests.support.unseen_data import T0, batch, reference


def model_state() -> ModelState:
    cfg = ModelSettings(
        name="m",
        reference=Path("unused.json"),
        windows=[WindowSpec(name="10m", length=600, pane=60)],
        features={"country": "categorical", "amount": "numeric"},
        policy=PolicySettings(min_samples=10),
    )
    return ModelState(cfg, reference())


def zipf_countries(n: int, seed: int) -> list[str]:
    """Mostly known countries, plus unseen codes with Zipf frequencies."""
    rng = np.random.default_rng(seed)
    known = rng.choice(["DE", "FR", "IT"], n).tolist()
    unseen = [f"X{v}" for v in rng.zipf(1.8, n).tolist()]
    return [u if rng.uniform() < 0.4 else k for k, u in zip(known, unseen, strict=True)]


def test_the_window_names_its_most_frequent_unseen_values_exactly_when_small() -> None:
    st = model_state()
    countries = zipf_countries(2000, seed=3)
    st.add_predictions(batch(countries, T0))
    top, error = st.views()[0].unseen["country"]
    exact = Counter(c for c in countries if c not in ("DE", "FR", "IT"))
    assert error <= sum(exact.values()) // 65
    for value, count in top:
        assert exact[value] - error <= count <= exact[value]
    assert len(top) == 10 and top[0] == (exact.most_common(1)[0][0], top[0][1])


def test_a_pane_that_slides_out_takes_its_values_with_it() -> None:
    st = model_state()
    st.add_predictions(batch(["XX"] * 5 + ["DE"] * 20, T0))
    st.add_predictions(batch(["YY"] * 3 + ["FR"] * 20, T0 + 300, first_id=100))
    assert st.views()[0].unseen["country"] == ([("XX", 5), ("YY", 3)], 0)
    st.add_predictions(batch(["IT"] * 20, T0 + 600, first_id=200))  # pane of T0 slides out
    assert st.views()[0].unseen["country"] == ([("YY", 3)], 0)
    assert "amount" not in st.views()[0].unseen  # numeric features have none


def test_status_json_carries_them_and_metrics_never_do() -> None:
    st = model_state()
    st.add_predictions(batch(["NEW-a"] * 7 + ["NEW-b"] * 2 + ["DE"] * 30, T0))
    snap = evaluate([st], lambda: T0 + 60)
    [window] = snap.to_json()["models"][0]["windows"]
    country = next(f for f in window["features"] if f["feature"] == "country")
    assert country["unseen_categories"] == {
        "values": [{"value": "NEW-a", "count": 7}, {"value": "NEW-b", "count": 2}],
        "error": 0,
    }
    amount = next(f for f in window["features"] if f["feature"] == "amount")
    assert amount["unseen_categories"] is None
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snap))
    text = generate_latest(registry).decode()
    assert "modelmon_feature_unseen_ratio" in text and "NEW-a" not in text


def test_a_long_value_is_cut() -> None:
    st = model_state()
    st.add_predictions(batch(["Z" * 1000] * 3 + ["DE"] * 10, T0))
    assert st.views()[0].unseen["country"] == ([("Z" * MAX_VALUE_CHARS, 3)], 0)


def test_checkpoint_round_trip_and_an_old_checkpoint_without_them() -> None:
    st = model_state()
    st.add_predictions(batch(zipf_countries(500, seed=5), T0))
    arrays: dict[str, Any] = {}
    meta = st.to_state(arrays, "m")
    back = model_state()
    back.load_state(meta, arrays, "m")
    assert back.views()[0].unseen == st.views()[0].unseen
    old = model_state()
    old.load_state({k: v for k, v in meta.items() if k != "unseen"}, arrays, "m")
    assert old.views()[0].unseen == {"country": ([], 0)}


@pytest.mark.parametrize(
    ("crafted", "message"),
    [
        ([[0, {"country": [5, [["a", 1]]]}]], "pane id"),  # pane outside the window
        ([["x", {"country": [5, [["a", 1]]]}]], "pane id must be an integer"),
        ([[None, {}], [None, {}]], "pane id"),
        ([["PANE", {"amount": [5, [["a", 1]]]}]], "not a categorical feature"),
        ([["PANE", {"country": [5, [[f"v{i}", 1] for i in range(65)]]}]], "more than 64"),
        ([["PANE", {"country": [1, [["a", 2]]]}]], "sum to at most"),
        ([["PANE", {"country": [5, [["a", 0]]]}]], "count must be in"),
        ([["PANE", {"country": [5, [["a" * 121, 1]]]}]], "too long"),
        ([["PANE", {"country": [5, [["a", 1], ["a", 1]]]}]], "twice"),
        ([["PANE", {"country": [5]}]], "two items"),
        ({"not": "a list"}, "JSON array"),
    ],
)
def test_a_crafted_checkpoint_is_refused(crafted: Any, message: str) -> None:
    st = model_state()
    st.add_predictions(batch(["XX", "DE"], T0))
    arrays: dict[str, Any] = {}
    meta = st.to_state(arrays, "m")
    head = st.windows["10m"].head

    def fill(value: Any) -> Any:
        if value == "PANE":
            return head
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    meta["unseen"] = {"10m": fill(crafted)}
    with pytest.raises(ValueError, match=message):
        model_state().load_state(meta, arrays, "m")


def test_unseen_for_a_window_not_configured_is_refused() -> None:
    st = model_state()
    arrays: dict[str, Any] = {}
    meta = st.to_state(arrays, "m")
    meta["unseen"] = {"1h": []}
    with pytest.raises(ValueError, match="window not configured"):
        model_state().load_state(meta, arrays, "m")


def test_clamp_drops_future_panes() -> None:
    u = UnseenPanes(600.0, 60.0, ("c",))
    u.add(np.array([0.0, 120.0]), "c", ["a", "b"], head=2)
    u.clamp(1)
    assert u.top("c") == ([("a", 1)], 0)
