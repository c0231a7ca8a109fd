"""What the commands share: loading a config as ``run`` does, logging, one-line errors."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from monitor.redaction import RedactingFilter
from monitor.serve.web_config import load_web_config
from monitor.settings import ConfigError, ModelSettings, Settings
from monitor.settings_loader import load_settings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class CommandError(Exception):
    """A bad input other than the config (a file, an option): one line naming it and the fix.

    ``code`` is the exit status: 2 for a bad input, 1 for a failure that may pass on a retry.
    """

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def setup_logging(level: str) -> None:
    """The daemon's log lines: time, level, logger, message, URL credentials redacted."""
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _quiet_libraries(level)


def setup_tool_logging() -> None:
    """One-shot commands: warnings only, as ``modelmon: warning: ...`` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ToolFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    _quiet_libraries("WARNING")


class _ToolFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"modelmon: {record.levelname.lower()}: {record.getMessage()}"


def _quiet_libraries(level: str) -> None:
    for handler in logging.getLogger().handlers:  # every line, whichever library logs it
        handler.addFilter(RedactingFilter())
    # kafka-python logs every reconnect attempt at WARNING/ERROR; ours say what matters.
    logging.getLogger("kafka").setLevel(logging.CRITICAL if level != "DEBUG" else logging.DEBUG)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def load(path: Path) -> Settings:
    """The config as ``run`` reads it, with the web config file it names."""
    settings = load_settings(path)
    # The web config (TLS, basic auth) is another file: validated by every command, like the
    # daemon's start does, so validate-config and check catch a missing cert or a bad hash.
    load_web_config(settings.http.web_config_file)
    return settings


def load_model(path: Path, name: str) -> tuple[Settings, ModelSettings]:
    """The config at ``path`` and its model ``name`` (``--model``); one line if there is none."""
    settings = load(path)
    try:
        return settings, settings.model(name)
    except KeyError:
        names = ", ".join(m.name for m in settings.models)
        raise ConfigError(f"--model {name}: no such model in {path} (it has: {names})") from None
