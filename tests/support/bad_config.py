"""A valid config holding both kinds of secret, and what a message about a bad one must be:
shared by the config-validation tests (unit) and the CLI's exit-2 fault test."""

from __future__ import annotations

from typing import Any

from tests.support.fault_oracle import MODEL

PASSWORD = "kafka-pw-5e1f0c9d"
HOOK_SECRET = "hook-secret-77ad31b2"


def base_config(bootstrap: str = "127.0.0.1:9") -> dict[str, Any]:
    """A valid config (no file, no I/O) holding both kinds of secret."""
    return {
        "kafka": {"bootstrap_servers": bootstrap, "sasl_plain_password": PASSWORD},
        "http": {"host": "127.0.0.1", "port": 0},
        "models": [
            {
                "name": MODEL,
                "reference": {"bootstrap_events": 200},
                "features": {"x": "numeric"},
                "webhook": {"url": "http://127.0.0.1:9/hook", "secret": HOOK_SECRET},
            }
        ],
    }


def assert_good_message(message: str, key: str) -> None:
    assert "\n" not in message, message
    assert key in message, (key, message)
    assert PASSWORD not in message and HOOK_SECRET not in message, message
