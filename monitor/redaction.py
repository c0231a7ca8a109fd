"""Keeping credentials out of text a person will read: log lines, error messages, CLI output.

URLs may carry tokens in their userinfo (``https://user:token@host``) or query string
(``?token=...``); both are replaced by ``***`` wherever a URL appears in the text. The log
filter applies this to every record it sees, including the HTTP client's own loggers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Final

__all__ = ["CLIENT_LOGGERS", "MAX_MESSAGE", "RedactingFilter", "install", "one_line", "redact"]

#: Longest message an error prints: one screen line or two, whatever the input.
MAX_MESSAGE: Final = 400
#: Loggers of the HTTP client; a filter on a logger does not see its children's records.
CLIENT_LOGGERS: Final = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_URL_USERINFO: Final = re.compile(r"(?<=://)[^/@\s'\"]*@")
_URL_QUERY: Final = re.compile(r"(?<=[^\s'\"?])\?[^\s'\"]*")


def redact(text: str) -> str:
    """``text`` without URL userinfo or query strings, which may carry tokens.

    >>> redact("POST https://user:pw@hooks.example/x?token=abc 'HTTP/1.1 200 OK'")
    "POST https://***@hooks.example/x?*** 'HTTP/1.1 200 OK'"
    >>> redact("what? nothing")
    'what? nothing'
    """
    return _URL_QUERY.sub("?***", _URL_USERINFO.sub("***@", text)) if "://" in text else text


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line, at most ``limit`` characters.

    >>> one_line("a\\nb " + "c" * 10, limit=8)
    'a b ccc…'
    """
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and any traceback text) with :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(loggers: Iterable[str] = CLIENT_LOGGERS) -> None:
    """Add one :class:`RedactingFilter` to each named logger (idempotent)."""
    for name in loggers:
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())
