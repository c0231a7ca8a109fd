"""``modelmon validate-config``: everything ``run`` checks at start, short of connecting.

Errors (exit 2, one line): the schema, the web config, every reference file (present, and
profiling the configured features), every webhook (its secret set, its target allowed).
Warnings (exit 0, one line each): keys that do nothing for the model's task, a ``state.dir``
this user could not create or write here.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from monitor.cli.common import CommandError, load, setup_tool_logging
from monitor.settings import ModelSettings, Settings

log = logging.getLogger("monitor.cli")

#: Keys that only mean something for some tasks: key → the tasks it applies to.
_TASK_KEYS: dict[str, tuple[str, ...]] = {
    "policy.accuracy_min": ("binary_classification", "multiclass_classification"),
    "policy.f1_min": ("binary_classification", "multiclass_classification"),
    "policy.estimated_accuracy_min": ("binary_classification", "multiclass_classification"),
    "policy.roc_auc_min": ("binary_classification",),
    "policy.mae_max": ("regression",),
    "policy.rmse_max": ("regression",),
    "positive_class": ("binary_classification",),
    "classes": ("multiclass_classification",),
}


def _is_set(model: ModelSettings, key: str) -> bool:
    section, _, name = key.rpartition(".")
    owner = model.policy if section == "policy" else model
    return name in owner.model_fields_set and getattr(owner, name) is not None


def task_warnings(settings: Settings) -> list[str]:
    """A line per key set on a model whose task never reads it (``mae_max`` on a classifier)."""
    out = []
    for i, model in enumerate(settings.models):
        for key, tasks in _TASK_KEYS.items():
            if _is_set(model, key) and model.task not in tasks:
                out.append(
                    f"models[{i}].{key}: has no effect on a {model.task} model "
                    f"({model.name}); it applies to {' and '.join(tasks)}"
                )
    return out


def state_dir_warning(settings: Settings) -> str | None:
    """Whether this user could create and write ``state.dir`` here, without creating it."""
    directory = Path(settings.state.dir)
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK):
        return None
    return (
        f"state.dir {directory}: this user cannot {'write' if probe == directory else 'create'} "
        "it here; run checks it again at start (set MODELMON_STATE__DIR or state.dir)"
    )


def config_path(args: argparse.Namespace) -> Path:
    """``validate-config FILE`` or ``validate-config --config FILE``, like every command."""
    given: list[Path] = [p for p in (args.config_file, args.config) if p is not None]
    if not given:
        raise CommandError(
            "validate-config: which file? give it as --config FILE (or as the only argument)"
        )
    if len(given) == 2 and given[0] != given[1]:
        raise CommandError(
            f"validate-config: two config files ({given[0]} and {given[1]}); give one"
        )
    return given[0]


def cmd_validate(args: argparse.Namespace) -> int:
    from monitor.alerting.actions import build_endpoints
    from monitor.app import load_states

    setup_tool_logging()
    path = config_path(args)
    settings = load(path)
    load_states(settings, base=path.resolve().parent)
    build_endpoints(settings)  # secrets set, targets allowed; a name that does not resolve warns
    for line in task_warnings(settings):
        log.warning("%s", line)
    if (state_dir := state_dir_warning(settings)) is not None:
        log.warning("%s", state_dir)
    names = ", ".join(m.name for m in settings.models)
    print(f"{path}: valid ({len(settings.models)} model(s): {names})")
    return 0
