"""The configuration reference and JSON Schema come from the settings schema and stay true."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from monitor.cli.config_doc import config_reference
from tests.support import REPO_ROOT
from tests.support.cli import modelmon

SHIPPED_CONFIGS = [
    REPO_ROOT / "config" / "modelmon.yaml",
    REPO_ROOT / "config" / "demo.yaml",
    REPO_ROOT / "deploy" / "compose" / "modelmon.yaml",
]


def test_the_reference_page_is_what_the_schema_generates() -> None:
    page = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == config_reference(), (
        "docs/configuration.md is out of date: run `modelmon config reference > "
        "docs/configuration.md` and commit it"
    )


def test_every_key_has_a_type_a_default_and_a_meaning() -> None:
    rows = [line for line in config_reference().splitlines() if line.startswith("| `")]
    assert len(rows) > 90
    for row in rows:
        key, kind, default, meaning = (c.strip() for c in row.strip("|").split(" | ", 3))
        assert kind and default and meaning, f"{key}: a cell is empty"


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    result = modelmon("config", "schema")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_shipped_config_follows_the_schema(schema: dict[str, object], path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_the_schema_refuses_what_the_loader_refuses(schema: dict[str, object]) -> None:
    model = {"name": "m", "features": {"a": "numeric"}, "reference": {"bootstrap_events": 100}}
    ok = {"state": {"checkpoint_interval": "5m"}, "models": [{**model, "label_wait": 90}]}
    jsonschema.validate(ok, schema)
    for bad in (
        {"models": [{**model, "polcy": {}}]},  # a typo
        {"models": [{**model, "label_wait": "soon"}]},  # not a duration
        {"models": [model], "http": {"port": 70000}},
        {"kafka": {}},  # no models
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
