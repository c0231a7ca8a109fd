"""``modelmon config schema`` and ``modelmon config reference``: the settings schema, printed."""

from __future__ import annotations

import argparse
import json

from monitor.cli.config_doc import config_json_schema, config_reference


def cmd_config_schema(_args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_config_reference(_args: argparse.Namespace) -> int:
    print(config_reference(), end="")
    return 0
