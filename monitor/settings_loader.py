"""Reading the configuration: a YAML file, overrides and ``MODELMON_`` environment variables.

Every problem comes out as one :class:`~monitor.settings.ConfigError` line naming the key (or the
file position) and never echoing a secret, before any connection is made.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import SettingsError

from monitor.redaction import one_line, redact
from monitor.safe_yaml import YamlFileError, read_yaml_file
from monitor.settings import ENV_PREFIX, ConfigError, Settings

_GOT = 60  # characters of an offending value quoted back
_SENSITIVE = re.compile(r"secret|password|passwd|token|credential|sasl|ssl_key", re.IGNORECASE)
#: Where a model override came from: (model index, key path) → environment variable.
_Origins = dict[tuple[int, tuple[str, ...]], str]


def _apply_model_env(models: list[Any], environ: Mapping[str, str]) -> _Origins:
    prefix = f"{ENV_PREFIX}MODELS__"
    origins: _Origins = {}
    for key, value in sorted(environ.items()):
        if not key.upper().startswith(prefix):
            continue
        parts = key[len(prefix) :].lower().split("__")
        selector, path = parts[0], parts[1:]
        found = next(
            (
                (i, m)
                for i, m in enumerate(models)
                if isinstance(m, dict) and (str(i) == selector or m.get("name") == selector)
            ),
            None,
        )
        if found is None or not path or not all(path):
            raise ConfigError(f"{key}: no model named or numbered {selector!r} in the config")
        index, node = found
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: {part!r} is not a section; check the variable name")
        try:
            node[path[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{key}: not a valid YAML value; quote it or fix it") from None
        origins[(index, tuple(path))] = key
    return origins


def _env_name(loc: tuple[Any, ...], environ: Mapping[str, str], origins: _Origins) -> str | None:
    """The environment variable that set the value at ``loc``, if one did."""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        rest = tuple(str(p) for p in loc[2:])
        for (index, path), key in origins.items():
            if index == loc[1] and rest[: len(path)] == path:
                return key
        return None
    upper = {k.upper() for k in environ}
    for n in range(len(loc), 0, -1):  # the most specific variable first
        name = ENV_PREFIX + "__".join(str(p) for p in loc[:n]).upper()
        if name in upper:
            return name
    return None


def format_validation_error(
    err: ValidationError,
    environ: Mapping[str, str] | None = None,
    origins: _Origins | None = None,
) -> str:
    """One clause per problem: ``models[0].policy.psi_max: Input should be ... (got 'x')``.

    A value set by an environment variable is named by it. The offending value is quoted only
    when it is a short scalar outside any secret-looking key, with URL credentials redacted.
    """
    lines = []
    for e in err.errors():
        loc = ""
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        value = e.get("input")
        got = ""
        if (
            e["type"] != "missing"
            and isinstance(value, str | int | float | bool)
            and not _SENSITIVE.search(loc)
        ):
            got = f" (got {one_line(redact(repr(value)), _GOT)})"
        var = _env_name(tuple(e["loc"]), environ or {}, origins or {})
        where = f"{var} ({loc or 'config'})" if var else loc or "config"
        # Our validators' messages say what is wrong and the fix; pydantic's "Value error, "
        # prefix adds nothing to them.
        msg = str(e["ctx"]["error"]) if e["type"] == "value_error" else e["msg"]
        lines.append(f"{where}: {msg}{got}")
    return one_line("; ".join(lines))


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
            loaded = read_yaml_file(Path(path))
        except YamlFileError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping")
        data = loaded or {}
    _deep_merge(data, overrides or {})
    origins: _Origins = {}
    if any(k.upper().startswith(f"{ENV_PREFIX}MODELS__") for k in environ):
        models = data.get("models")
        if not isinstance(models, list):
            raise ConfigError("models: MODELMON_MODELS__* overrides need models in the file")
        origins = _apply_model_env(models, environ)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, environ, origins)) from None
    except SettingsError as exc:  # a section given whole in one variable, not as JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"{ENV_PREFIX}{field.group(1).upper()}" if field else f"a {ENV_PREFIX}* variable"
        raise ConfigError(
            f"{name}: not valid JSON for a section; set its keys one by one, "
            f"e.g. {ENV_PREFIX}HTTP__PORT=9108"
        ) from None


def check_state_dir(settings: Settings) -> None:
    """Refuse a ``state.dir`` that cannot be created or written, before anything connects.

    The checkpoint, the webhook outbox and its lock all live there; finding out at the first
    checkpoint would be a crash after the daemon had already joined the consumer group.
    """
    directory = Path(settings.state.dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".modelmon-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"state.dir {directory}: not a writable directory ({reason}); give one that "
            "modelmon's user can write (MODELMON_STATE__DIR or state.dir in the config)"
        ) from None


#: The line ``run`` (and ``validate-config``) stop with when the chosen client is not installed.
CONFLUENT_MISSING = (
    "kafka.client: confluent needs the confluent-kafka package: "
    "pip install 'modelmon[confluent]' (or set kafka.client: kafka-python)"
)


def check_kafka_client(settings: Settings) -> None:
    """Refuse ``kafka.client: confluent`` when confluent-kafka is not installed."""
    if settings.kafka.client == "confluent" and importlib.util.find_spec("confluent_kafka") is None:
        raise ConfigError(CONFLUENT_MISSING)
