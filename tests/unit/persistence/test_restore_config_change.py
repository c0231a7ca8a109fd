"""Restore after the config changed between runs: a model removed, added, a window changed.

The checkpoint's offsets cover every model at once (state is per replica), so a model whose
state cannot come from the checkpoint can only be rebuilt by replaying the partitions for
every model: such a checkpoint is ignored whole (one ERROR line naming why) rather than
restored in part with offsets that would skip the new model's events.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.actions import Actions
from monitor.devkit.synthetic import features_of
from monitor.persistence.store import StateStore
from monitor.settings import Settings
from monitor.settings_loader import load_settings
from monitor.state.model_state import ModelState
from tests.support.restore_world import OFFSETS, World

WINDOW = [{"name": "1h", "length": "1h", "pane": "1m"}]


def config(tmp_path: Path, models: list[str], window: list[dict[str, str]] = WINDOW) -> Settings:
    tasks = {"fraud": "binary_classification", "demand": "regression", "churn": "regression"}
    return load_settings(
        None,
        overrides={
            "state": {"dir": str(tmp_path / "state")},
            "models": [
                {
                    "name": name,
                    "task": tasks[name],
                    "features": features_of("demand" if name == "churn" else name),
                    "reference": {"bootstrap_events": 500},
                    "windows": window,
                }
                for name in models
            ],
        },
    )


def restart(tmp_path: Path, cfg: Settings) -> tuple[StateStore, dict[str, ModelState], Actions]:
    """A new process on ``cfg`` over the same state directory."""
    states = {m.name: ModelState(m) for m in cfg.models}
    actions = Actions(cfg, CollectorRegistry(), environ={})
    store = StateStore(Path(cfg.state.dir), states, threading.Lock(), extras={"policy": actions})
    return store, states, actions


def totals(state: ModelState) -> list[Any]:
    return [v.total.tolist() for v in state.views()]


def counted(state: ModelState) -> int:
    return sum(sum(t) for t in totals(state))


@pytest.fixture
def saved(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.store.save(lambda: dict(OFFSETS))
    world.actions.stop(1.0)  # the old process is gone: its outbox lock with it
    return world


def test_a_model_removed_from_the_config_restores_the_others(
    tmp_path: Path, saved: World, caplog: pytest.LogCaptureFixture
) -> None:
    store, states, _ = restart(tmp_path, config(tmp_path, ["fraud"]))
    with caplog.at_level(logging.WARNING, logger="monitor.persistence.store"):
        assert store.restore() == OFFSETS
    assert not caplog.records
    assert set(states) == {"fraud"}
    assert totals(states["fraud"]) == totals(saved.states["fraud"])
    assert counted(states["fraud"]) > 0  # not vacuous: it held counts


@pytest.mark.parametrize(
    ("models", "window", "why"),
    [
        (["fraud", "demand", "churn"], WINDOW, "model churn is not in the checkpoint"),
        (["fraud", "demand"], [{"name": "1h", "length": "1h", "pane": "30s"}], ""),
        (["fraud", "demand"], [{"name": "2h", "length": "2h", "pane": "1m"}], ""),
    ],
    ids=["model added", "pane changed", "window renamed and longer"],
)
def test_a_model_added_or_a_window_changed_ignores_the_checkpoint_whole(
    tmp_path: Path,
    saved: World,
    caplog: pytest.LogCaptureFixture,
    models: list[str],
    window: list[dict[str, str]],
    why: str,
) -> None:
    store, states, actions = restart(tmp_path, config(tmp_path, models, window))
    live = dict(states)
    policy = actions.policy
    with caplog.at_level(logging.INFO, logger="monitor.persistence.store"):
        assert store.restore() is None  # None: every partition is replayed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "ignored" in errors[0] and why in errors[0], errors
    assert all(states[n] is live[n] for n in live)
    assert all(counted(s) == 0 for s in states.values())
    assert actions.policy is policy


def test_a_checkpoint_without_a_policy_part_restores_the_models_and_keeps_the_policy(
    tmp_path: Path, saved: World
) -> None:
    cfg = config(tmp_path, ["fraud", "demand"])
    states = {m.name: ModelState(m) for m in cfg.models}
    without = StateStore(Path(cfg.state.dir), states, threading.Lock())
    without.save(lambda: dict(OFFSETS))  # a run whose store had no policy part
    store, states, actions = restart(tmp_path, cfg)
    policy = actions.policy
    assert store.restore() == OFFSETS
    assert actions.policy is policy
