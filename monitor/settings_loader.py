"""Reading the configuration: a YAML file, overrides and ``MODELMON_`` environment variables.

Every problem comes out as one :class:`~monitor.settings.ConfigError` line naming the key (or the
file position) and never echoing a secret, before any connection is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.settings import ENV_PREFIX, ConfigError, Settings


def _apply_model_env(models: list[Any], environ: Mapping[str, str]) -> None:
    prefix = f"{ENV_PREFIX}MODELS__"
    for key, value in sorted(environ.items()):
        if not key.upper().startswith(prefix):
            continue
        parts = key[len(prefix) :].lower().split("__")
        selector, path = parts[0], parts[1:]
        target = next(
            (m for i, m in enumerate(models) if str(i) == selector or m.get("name") == selector),
            None,
        )
        if target is None or not path:
            raise ConfigError(f"{key}: no model named or numbered {selector!r} in the config")
        node = target
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(value)


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: ``models[0].policy.psi_max: Input should be ... (got 'x')``."""
    lines = []
    for e in err.errors():
        loc = ""
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        got = f" (got {e['input']!r})" if e["type"] != "missing" and "input" in e else ""
        if "secret" in loc or "password" in loc:
            got = ""  # never echo a secret back
        lines.append(f"{loc or 'config'}: {e['msg']}{got}")
    return "; ".join(lines)


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def load_settings(path: Path | None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the YAML file (optional), merge ``overrides``, apply ``MODELMON_`` env, validate.

    Raises :class:`ConfigError` with a single line naming the offending key.
    """
    environ = os.environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            # Position and problem only: PyYAML's own message quotes the offending line, which
            # may be the one holding a password.
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "syntax error"
            raise ConfigError(f"config file {path}: not valid YAML{where}: {problem}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping")
        data = loaded or {}
    _deep_merge(data, overrides or {})
    if any(k.upper().startswith(f"{ENV_PREFIX}MODELS__") for k in environ):
        models = data.get("models")
        if not isinstance(models, list):
            raise ConfigError("models: MODELMON_MODELS__* overrides need models in the file")
        _apply_model_env(models, environ)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
