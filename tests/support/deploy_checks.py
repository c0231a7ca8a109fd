"""Helpers for tests/test_deploy.py: file locations, loaders, PromQL and dashboard walkers.

No Docker engine, Kubernetes cluster or Grafana runs in CI, so the deploy artefacts are checked
offline: against published schemas where a package ships one (compose-spec, Kubernetes), with
the real tools where they exist as binaries (promtool, hadolint, amtool), and otherwise with
the focused checks here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.support import REPO_ROOT

ROOT = REPO_ROOT
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "modelmon.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "modelmon.rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "modelmon.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "modelmon.yml"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"

# Grafana's own variables (https://grafana.com/docs/grafana/latest/dashboards/variables/).
GRAFANA_GLOBALS = frozenset(
    {
        "__interval",
        "__interval_ms",
        "__rate_interval",
        "__rate_interval_ms",
        "__range",
        "__range_s",
        "__range_ms",
        "__from",
        "__to",
        "__dashboard",
        "__org",
        "__user",
        "__name",
        "__timezone",
        "__all",
    }
)
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def k8s_objects() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for obj in load_yaml_all(path):
            yield path, obj


def require_tool(name: str, why: str) -> str:
    """Path of a tool installed by the dev extras or Debian; missing fails in CI, else skips."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        message = f"{name} is not installed ({why})"
        if os.environ.get("CI") == "true" or os.environ.get("MODELMON_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


# --- PromQL -----------------------------------------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (parsed, so labels and functions are not
    mistaken for metrics)."""
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    names.add(m.value)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace Grafana variables ($x, ${x}, ${x:fmt}, [[x]]) with concrete values."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group(0))

    return _VARIABLE.sub(repl, text)


def variables_used(text: str) -> set[str]:
    return {a or b or c for a, b, c in _VARIABLE.findall(text)}


def rules(path: Path = RULES) -> list[dict[str, Any]]:
    return [r for g in load_yaml(path)["groups"] for r in g["rules"]]


# --- Grafana ----------------------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Top-level panels, rows, and the panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield (
                    f"panel {panel['id']} ({panel.get('title')}) {target['refId']}",
                    target["expr"],
                )
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"] if isinstance(var["query"], str) else var["query"]["query"]
            yield f"variable {var['name']}", variable_selector(query)


def variable_selector(query: str) -> str:
    """The PromQL inside a Prometheus variable query (label_values, query_result, ...)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query, re.S)
    if m:
        return m.group(1)
    m = re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.S)
    if m:
        return m.group(1)
    return query


# A focused JSON Schema of the classic (schemaVersion 3x) dashboard model, written for these
# tests: the parts of Grafana's dashboard schema that this repository's dashboard uses, strict
# (additionalProperties: false) wherever Grafana's schema is, so a misspelt key fails here.
# Grafana publishes no JSON Schema file in a PyPI package (grafana-foundation-sdk ships typed
# Python models, used in the round-trip test instead).
_DATASOURCE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"type": {"type": "string"}, "uid": {"type": "string"}},
}
_GRID = {
    "type": "object",
    "additionalProperties": False,
    "required": ["h", "w", "x", "y"],
    "properties": {
        "h": {"type": "integer", "exclusiveMinimum": 0},
        "w": {"type": "integer", "exclusiveMinimum": 0, "maximum": 24},
        "x": {"type": "integer", "minimum": 0, "exclusiveMaximum": 24},
        "y": {"type": "integer", "minimum": 0},
        "static": {"type": "boolean"},
    },
}
_MAPPING_RESULT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "text": {"type": "string"},
        "color": {"type": "string"},
        "icon": {"type": "string"},
        "index": {"type": "integer"},
    },
}
_FIELD_CONFIG = {
    "type": "object",
    "additionalProperties": False,
    "required": ["defaults", "overrides"],
    "properties": {
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "displayName": {"type": "string"},
                "description": {"type": "string"},
                "unit": {"type": "string"},
                "decimals": {"type": "number"},
                "min": {"type": "number"},
                "max": {"type": "number"},
                "noValue": {"type": "string"},
                "links": {"type": "array"},
                "custom": {"type": "object"},
                "color": {
                    "type": "object",
                    "required": ["mode"],
                    "properties": {"mode": {"type": "string"}, "fixedColor": {"type": "string"}},
                },
                "thresholds": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["mode", "steps"],
                    "properties": {
                        "mode": {"enum": ["absolute", "percentage"]},
                        "steps": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["color", "value"],
                                # Grafana writes null for the base step (-Infinity)
                                "properties": {
                                    "color": {"type": "string"},
                                    "value": {"type": ["number", "null"]},
                                },
                            },
                        },
                    },
                },
                "mappings": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "options"],
                        "properties": {
                            "type": {"enum": ["value", "range", "regex", "special"]},
                            "options": {
                                "type": "object",
                                "additionalProperties": _MAPPING_RESULT,
                            },
                        },
                    },
                },
            },
        },
        "overrides": {"type": "array"},
    },
}
_TARGET = {
    "type": "object",
    "required": ["refId", "expr", "datasource"],
    "properties": {
        "refId": {"type": "string", "pattern": "^[A-Z]$"},
        "expr": {"type": "string", "minLength": 1},
        "legendFormat": {"type": "string"},
        "datasource": _DATASOURCE,
        "range": {"type": "boolean"},
        "instant": {"type": "boolean"},
        "format": {"enum": ["time_series", "table", "heatmap"]},
        "interval": {"type": "string"},
    },
}
_PANEL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "type", "title", "gridPos", "datasource", "targets", "fieldConfig"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "type": {
            "enum": ["timeseries", "stat", "heatmap", "state-timeline", "table", "gauge", "text"]
        },
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "datasource": _DATASOURCE,
        "gridPos": _GRID,
        "targets": {"type": "array", "minItems": 1, "items": _TARGET},
        "fieldConfig": _FIELD_CONFIG,
        "options": {"type": "object"},
        "transformations": {"type": "array"},
        "interval": {"type": "string"},
        "maxDataPoints": {"type": "number"},
        "pluginVersion": {"type": "string"},
        "transparent": {"type": "boolean"},
        "links": {"type": "array"},
    },
}
_ROW = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "type", "title", "collapsed", "panels", "gridPos"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "type": {"const": "row"},
        "title": {"type": "string", "minLength": 1},
        "collapsed": {"type": "boolean"},
        "gridPos": _GRID,
        "datasource": _DATASOURCE,
        "panels": {"type": "array", "items": _PANEL},
        "repeat": {"type": "string"},
    },
}
_OPTION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text", "value"],
    "properties": {
        "selected": {"type": "boolean"},
        "text": {"type": ["string", "array"], "items": {"type": "string"}},
        "value": {"type": ["string", "array"], "items": {"type": "string"}},
    },
}
_VARIABLE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "type", "current"],
    "properties": {
        "name": {"type": "string", "pattern": r"^\w+$"},
        "type": {
            "enum": ["query", "adhoc", "constant", "datasource", "interval", "textbox", "custom"]
        },
        "label": {"type": "string"},
        "description": {"type": "string"},
        "hide": {"enum": [0, 1, 2]},
        "skipUrlSync": {"type": "boolean"},
        "query": {"type": "string"},
        "datasource": _DATASOURCE,
        "current": _OPTION,
        "multi": {"type": "boolean"},
        "options": {"type": "array", "items": _OPTION},
        "refresh": {"enum": [0, 1, 2]},
        "sort": {"enum": list(range(9))},
        "includeAll": {"type": "boolean"},
        "allValue": {"type": "string"},
        "regex": {"type": "string"},
    },
}
DASHBOARD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["uid", "title", "schemaVersion", "templating", "annotations", "panels", "time"],
    "properties": {
        "id": {"type": "integer"},
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "timezone": {"type": "string"},
        "editable": {"type": "boolean"},
        "graphTooltip": {"enum": [0, 1, 2]},
        "time": {
            "type": "object",
            "additionalProperties": False,
            "required": ["from", "to"],
            "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
        },
        "fiscalYearStartMonth": {"type": "integer", "minimum": 0, "maximum": 11},
        "liveNow": {"type": "boolean"},
        "weekStart": {"type": "string"},
        "refresh": {"type": ["string", "boolean"]},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "version": {"type": "integer"},
        "links": {"type": "array"},
        "panels": {"type": "array", "items": {"anyOf": [_ROW, _PANEL]}},
        "templating": {
            "type": "object",
            "additionalProperties": False,
            "required": ["list"],
            "properties": {"list": {"type": "array", "items": _VARIABLE_SCHEMA}},
        },
        "annotations": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "datasource", "enable", "iconColor"],
                        "properties": {
                            "name": {"type": "string"},
                            "datasource": _DATASOURCE,
                            "enable": {"type": "boolean"},
                            "hide": {"type": "boolean"},
                            "iconColor": {"type": "string"},
                            "type": {"type": "string"},
                            "builtIn": {"type": "number"},
                            "expr": {"type": "string"},
                            "step": {"type": "string"},
                            "titleFormat": {"type": "string"},
                            "tagKeys": {"type": "string"},
                        },
                    },
                }
            },
        },
    },
}
