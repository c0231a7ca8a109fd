"""Invalid config values, from the file or the environment: one line naming the key, no secret.

Moved from the fault suite (they need no broker and start no daemon).
"""

from __future__ import annotations

import os
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.settings import ConfigError
from monitor.settings_loader import load_settings
from tests.support.bad_config import HOOK_SECRET, PASSWORD, assert_good_message, base_config

LETTERS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz -_", max_size=12)
TASKS = ("binary_classification", "multiclass_classification", "regression")


def not_a_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return True
    return False


# (path in the config, the key the message must name, invalid values)
INVALID: list[tuple[tuple[str | int, ...], str, st.SearchStrategy[Any]]] = [
    (
        ("http", "port"),
        "http.port",
        st.integers(max_value=-1)
        | st.integers(min_value=65536)
        | st.text(max_size=8).filter(not_a_number),
    ),
    (
        ("kafka", "max_poll_records"),
        "kafka.max_poll_records",
        st.integers(max_value=0) | st.integers(min_value=100_001),
    ),
    (("kafka", "session_timeout_ms"), "kafka.session_timeout_ms", st.integers(max_value=999)),
    (
        ("kafka", "security_protocol"),
        "kafka.security_protocol",
        LETTERS,  # lower case: never one of the protocols
    ),
    (
        ("state", "checkpoint_interval"),
        "state.checkpoint_interval",
        st.floats(max_value=-1e-3) | LETTERS | st.booleans(),
    ),
    (("evaluation", "interval"), "evaluation.interval", st.floats(max_value=0) | LETTERS),
    (("shutdown", "deadline"), "shutdown.deadline", st.floats(max_value=0) | LETTERS),
    (("log_level",), "log_level", LETTERS),
    (("models", 0, "name"), "models[0].name", st.text(alphabet=" /?*#", min_size=1)),
    (("models", 0, "task"), "models[0].task", LETTERS.filter(lambda s: s not in TASKS)),
    (("models", 0, "policy", "psi_max"), "models[0].policy.psi_max", st.floats(max_value=0)),
    (
        ("models", 0, "policy", "ks_alpha"),
        "models[0].policy.ks_alpha",
        st.floats(max_value=0) | st.floats(min_value=1),
    ),
    (
        ("models", 0, "windows"),
        "models[0].windows[0]",
        st.integers(1, 10**6)
        .filter(lambda n: n % 10)
        .map(lambda n: [{"name": "w", "length": n, "pane": 10}]),
    ),
    (("models", 0, "webhook", "url"), "models[0].webhook.url", LETTERS),
    (("models", 0, "webhook", "secret"), "models[0].webhook.secret", st.just(["x", HOOK_SECRET])),
    (("kafka", "sasl_plain_password"), "kafka.sasl_plain_password", st.just({"pw": PASSWORD})),
]


def put(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[path[-1]] = value


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(case=st.sampled_from(INVALID).flatmap(lambda c: st.tuples(st.just(c), c[2])))
def test_invalid_config_values_name_the_key_in_one_line_without_secrets(case: Any) -> None:
    (path, key, _), value = case
    data = base_config()
    put(data, path, value)
    with pytest.raises(ConfigError) as err:
        load_settings(None, overrides=data)
    assert_good_message(str(err.value), key)


# (environment variable, the key the message must name, invalid values)
INVALID_ENV = [
    ("MODELMON_HTTP__PORT", "http.port", LETTERS),
    ("MODELMON_KAFKA__MAX_POLL_RECORDS", "kafka.max_poll_records", st.integers(max_value=0)),
    ("MODELMON_EVALUATION__INTERVAL", "evaluation.interval", LETTERS),
    ("MODELMON_KAFKA__SECURITY_PROTOCOL", "kafka.security_protocol", LETTERS),
    ("MODELMON_MODELS__CHURN__POLICY__PSI_MAX", "models[0].policy.psi_max", st.integers(-9, 0)),
    ("MODELMON_MODELS__0__TASK", "models[0].task", LETTERS.filter(lambda s: s not in TASKS)),
    ("MODELMON_KAFKA__NO_SUCH_KEY", "kafka.no_such_key", st.integers()),
]


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(case=st.sampled_from(INVALID_ENV).flatmap(lambda c: st.tuples(st.just(c), c[2])))
def test_invalid_env_values_name_the_key_in_one_line_without_secrets(case: Any) -> None:
    (name, key, _), value = case
    with mock.patch.dict(os.environ, {name: str(value)}), pytest.raises(ConfigError) as err:
        load_settings(None, overrides=base_config())
    assert_good_message(str(err.value), key)
