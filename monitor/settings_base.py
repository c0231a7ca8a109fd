"""What every settings section shares: durations, the section base, the config error.

A field's meaning is the docstring under it (``use_attribute_docstrings``): it becomes the
field's description in the JSON Schema and in ``docs/configuration.md``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

ENV_PREFIX = "MODELMON_"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Parse ``10s``, ``5m``, ``1h``, ``24h``, ``250ms``, ``2d`` or plain seconds into seconds.

    >>> parse_duration("5m"), parse_duration(30), parse_duration("1.5h")
    (300.0, 30.0, 5400.0)
    """
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or like 10s, 5m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"invalid duration {value!r}: use seconds or e.g. 10s, 5m, 1h, 24h")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


#: Seconds, or a string like ``250ms``, ``10s``, ``5m``, ``1h``, ``2d``; the schema says both.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _DURATION.pattern},
            ],
        }
    ),
]


class Section(BaseModel):
    """A config section: unknown keys refused, frozen, field docstrings as descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


#: The level drift tests run at when ``ks_alpha`` is unset (the drift rule is then off, but
#: ``modelmon_feature_drift_detected`` is still exported).
DEFAULT_DRIFT_ALPHA = 0.01


class ConfigError(ValueError):
    """A configuration problem, with a one-line message naming the key."""
