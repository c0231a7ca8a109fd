"""The configuration reference and JSON Schema, generated from the settings schema.

``docs/configuration.md`` is :func:`config_reference`'s output (``modelmon config reference``); a
test fails when the two differ, so the page changes in the same commit as a key.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from monitor.settings import Settings
from monitor.settings_base import parse_duration

HEADER = """# Configuration reference

Generated from the settings schema by `modelmon config reference > docs/configuration.md`; do not
edit by hand (`tests/unit/test_config_reference.py` fails when it is out of date). For editors,
`modelmon config schema` prints the same schema as JSON Schema.

Every key can also be set from the environment: `MODELMON_<SECTION>__<KEY>` (e.g.
`MODELMON_KAFKA__BOOTSTRAP_SERVERS`), and per model `MODELMON_MODELS__<NAME or INDEX>__<KEY>`
(e.g. `MODELMON_MODELS__FRAUD__POLICY__PSI_MAX=0.3`). A duration is seconds or a string like
`250ms`, `10s`, `5m`, `1h`, `2d`. Unknown keys are refused. `modelmon validate-config` checks a
file without connecting anywhere. [`config/modelmon.yaml`](../config/modelmon.yaml) is a commented
example.
"""


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file (draft 2020-12), for editors and CI."""
    schema = Settings.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "modelmon configuration"
    return schema


def _is_duration(metadata: list[Any]) -> bool:
    return any(getattr(m, "func", None) is parse_duration for m in metadata)


def _bounds(metadata: list[Any]) -> str:
    marks = []
    for m in metadata:
        for kind, sign in ((at.Ge, "≥"), (at.Gt, ">"), (at.Le, "≤"), (at.Lt, "<")):
            if isinstance(m, kind):
                marks.append(f"{sign} {getattr(m, next(iter(m.__dataclass_fields__)))}")
    return f" ({', '.join(marks)})" if marks else ""


def _type(annotation: Any, metadata: list[Any] | None = None) -> str:
    metadata = metadata or []
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _type(inner, [*metadata, *extra])
    if _is_duration(metadata):
        return "duration"
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        text = " or ".join(_type(a) for a in options)
        return f"{text} or null" if len(options) < len(get_args(annotation)) else text
    if origin is Literal:
        return " \\| ".join(str(a) for a in get_args(annotation))
    if origin is list:
        return f"list of {_type(get_args(annotation)[0])}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"mapping {_type(key)} → {_type(value)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    names |= {Path: "path", SecretStr: "secret string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _seconds(value: float) -> str:
    """``21600.0`` → ``6h``: a duration as a person would write it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def _render(value: Any, duration: bool) -> str:
    if value is None:
        return "null"
    if duration and isinstance(value, int | float):
        return _seconds(float(value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list) and value and all(hasattr(v, "pane") for v in value):
        return ", ".join(
            f"{v.name} ({_seconds(v.length)}, panes {_seconds(v.pane)})" for v in value
        )
    if isinstance(value, BaseModel):
        return "see below"
    return str(value)


def _default(field: FieldInfo) -> str:
    duration = _is_duration(field.metadata)
    if field.default_factory is not None:
        return _render(field.default_factory(), duration)  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return "required"
    return _render(field.default, duration)


def _sections(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    """The section classes a field holds, with the suffix their keys hang from."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for option in get_args(annotation):
            yield from _sections(option)
    elif origin is list:
        for inner, suffix in _sections(get_args(annotation)[0]):
            yield inner, "[]" + suffix
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, ""


def _meaning(field: FieldInfo) -> str:
    return re.sub(r"\s+", " ", field.description or "").replace("|", "\\|").strip()


def _tables(model: type[BaseModel], path: str) -> Iterator[str]:
    rows, nested = [], []
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        rows.append(
            f"| `{key}` | {_type(field.annotation, list(field.metadata))}"
            f"{_bounds(field.metadata)} | {_default(field)} | {_meaning(field)} |"
        )
        nested += [(inner, key + suffix) for inner, suffix in _sections(field.annotation)]
    title = path or "top level"
    doc = "The file's top-level keys." if not path else (model.__doc__ or "").split("\n\n")[0]
    doc = re.sub(r"\s+", " ", doc).replace("``", "`").strip()
    yield f"\n## `{title}`\n\n{doc}\n\n| key | type | default | meaning |\n|---|---|---|---|"
    yield from rows
    for inner, key in nested:
        yield from _tables(inner, key)


def config_reference() -> str:
    """The Markdown page of every key: type, default and meaning."""
    return HEADER + "\n".join(_tables(Settings, "")) + "\n"
