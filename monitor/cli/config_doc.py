"""The configuration reference, generated from the settings schema."""

from __future__ import annotations

from typing import Any

from monitor.settings import Settings


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file (draft 2020-12), for editors and CI."""
    schema = Settings.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "modelmon configuration"
    return schema


def config_reference() -> str:
    return ""
