"""Standard Webhooks v1 protocol: secrets, signatures, bodies, targets, responses and retries.

Pure functions and value types with no I/O except the DNS lookup in :func:`validate_webhook_url`
(the target policy itself lives in :mod:`monitor.alerting.targets`):
what the dispatcher (:mod:`monitor.alerting.delivery`) signs and sends, how it reads a response and
when it tries again. Kept apart from the dispatcher so that config validation and receivers'
tests can use them without the outbox, threads or an HTTP client.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import enum
import hashlib
import hmac
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
from pydantic import SecretStr

from monitor import __version__
from monitor.alerting.targets import (
    Resolver,
    check_url_syntax,
    display_url,
    resolve_target,
    system_resolver,
)

__all__ = [
    "DEFAULT_RETRY",
    "EVENT_TYPES",
    "Attempt",
    "AttemptKind",
    "RetryPolicy",
    "WebhookEndpoint",
    "build_body",
    "classify_response",
    "decode_secret",
    "display_url",
    "parse_retry_after",
    "sign",
    "signed_headers",
    "validate_webhook_url",
]

EVENT_TYPES: Final = frozenset(
    {"model.degraded", "model.recovered", "model.version_changed", "model.test"}
)
SECRET_PREFIX: Final = "whsec_"
DEFAULT_TIMEOUT: Final = 15.0
USER_AGENT: Final = f"modelmon/{__version__}"
DEFAULT_SCHEDULE: Final = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)  # the last one repeats
_RETRIED_STATUSES: Final = frozenset({408, 425, 429})


# --- signing -------------------------------------------------------------------------------


def decode_secret(secret: str) -> bytes:
    """Return the HMAC key for a configured secret.

    ``whsec_<base64>`` is base64-decoded as Standard Webhooks specifies; anything else is used
    as its UTF-8 bytes. Error messages never contain the secret.

    >>> decode_secret("whsec_aGVsbG8=")
    b'hello'
    >>> decode_secret("hello")
    b'hello'
    """
    if secret.startswith(SECRET_PREFIX):
        raw = secret[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except binascii.Error:
            raise ValueError("webhook secret starts with 'whsec_' but is not base64") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks v1 signature: ``v1,<base64 HMAC-SHA256(secret, "id.ts." + body)>``.

    >>> key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    >>> sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
    """
    mac = hmac.new(secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def signed_headers(
    keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """All request headers for one attempt; several keys (rotation) give several signatures."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(k, msg_id, timestamp, body) for k in keys),
    }


def build_body(event_type: str, data: Mapping[str, Any], now: float) -> bytes:
    """Serialise an event once; these exact bytes are stored, signed and sent.

    >>> build_body("model.test", {"model": "fraud"}, 0.0)
    b'{"type":"model.test","timestamp":"1970-01-01T00:00:00Z","data":{"model":"fraud"}}'
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}; one of {sorted(EVENT_TYPES)}")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    event = {"type": event_type, "timestamp": stamp, "data": data}
    # NON_STR_KEYS: partition numbers may arrive as int keys; NUMPY: stats are numpy scalars
    return orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


# --- endpoints and target policy -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """Where one model's events go.

    Parameters
    ----------
    name
        The model name; also the ``model`` label of the delivery metrics.
    url
        http(s) URL, POSTed to as-is; redirects are not followed.
    secrets
        One or more signing secrets; during rotation give old and new, and each request carries
        both signatures.
    timeout
        Seconds for each of connect, write and read of one attempt.
    allow_private
        Permit loopback, private and link-local targets (see :func:`validate_webhook_url`).
    """

    name: str
    url: str
    secrets: tuple[SecretStr, ...]
    timeout: float = DEFAULT_TIMEOUT
    allow_private: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("webhook endpoint needs a name")
        if not self.secrets:
            raise ValueError(f"webhook endpoint {self.name!r} needs at least one secret")
        for secret in self.secrets:
            decode_secret(secret.get_secret_value())
        if not self.timeout > 0:
            raise ValueError(f"webhook endpoint {self.name!r}: timeout must be positive")
        check_url_syntax(self.url)

    def keys(self) -> list[bytes]:
        """The HMAC keys of :attr:`secrets`, in order."""
        return [decode_secret(s.get_secret_value()) for s in self.secrets]


def validate_webhook_url(
    url: str, allow_private: bool, resolve: Resolver = system_resolver
) -> None:
    """Refuse webhook targets that would let a config reach into the private network.

    Literal IPs are checked directly; names are resolved and every address must be public (an
    IPv4 address carried in IPv6, e.g. ``::ffff:10.0.0.1`` or ``64:ff9b::a00:1``, is judged as
    that IPv4 address). Nothing is connected to, so this is advice for config time: the
    dispatcher's client checks again on the address it connects to (see
    :mod:`monitor.alerting.targets`). With ``allow_private`` only the URL syntax is checked.

    Raises
    ------
    ValueError
        Naming the problem: scheme, missing host, bad port, or a non-public address.
    OSError
        If the name cannot be resolved (possibly transient; the dispatcher retries).

    >>> validate_webhook_url("https://93.184.215.14/hook", allow_private=False)
    >>> validate_webhook_url("http://10.1.2.3/hook", allow_private=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    monitor.alerting.targets.TargetRefusedError: webhook host '10.1.2.3' resolves to private ...
    """
    host = check_url_syntax(url)
    if allow_private:
        return
    port = urlsplit(url).port or (443 if url.lower().startswith("https") else 80)
    resolve_target(host, port, allow_private, resolve)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP date), or None.

    >>> parse_retry_after("120", now=0.0)
    120.0
    >>> parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=30.0)
    30.0
    >>> parse_retry_after("soon", now=0.0) is None
    True
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


# --- responses and retries ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff schedule: after the n-th failed attempt wait ``schedule[n-1]`` (the last entry
    repeats), scaled by a uniform factor in ``[1 - jitter, 1 + jitter]``; give up once the
    next attempt would fall more than ``max_age`` seconds after the event was created.

    >>> RetryPolicy(jitter=0.0).delay(1, random.Random(0)), RetryPolicy(jitter=0.0).delay(9, None)
    (5.0, 3600.0)
    """

    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    max_age: float = 24 * 3600.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not self.schedule or min(self.schedule) <= 0:
            raise ValueError("retry schedule must be a non-empty list of positive delays")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("retry jitter must be in [0, 1)")
        if self.max_age <= 0:
            raise ValueError("retry max_age must be positive")

    def delay(self, failures: int, rng: random.Random | None) -> float:
        """Delay after ``failures`` (>= 1) failed attempts."""
        base = self.schedule[min(max(failures, 1), len(self.schedule)) - 1]
        if rng is None or self.jitter == 0.0:
            return base
        return base * (1.0 + rng.uniform(-self.jitter, self.jitter))


DEFAULT_RETRY: Final = RetryPolicy()


class AttemptKind(enum.Enum):
    """How one delivery attempt ended."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's outcome: its kind, a log-safe detail and any ``Retry-After`` seconds."""

    kind: AttemptKind
    detail: str
    retry_after: float | None = None


def classify_response(status: int, retry_after: str | None, snippet: str, now: float) -> Attempt:
    """Interpret an HTTP response (status, ``Retry-After`` header, start of the body).

    >>> classify_response(503, "7", "", now=0.0)
    Attempt(kind=<AttemptKind.RETRY: 'retry'>, detail='HTTP 503', retry_after=7.0)
    >>> classify_response(302, None, "", now=0.0).kind
    <AttemptKind.FAILED: 'failed'>
    """
    detail = f"HTTP {status}" + (f": {snippet!r}" if snippet else "")
    if 200 <= status < 300:
        return Attempt(AttemptKind.DELIVERED, detail)
    if status == 410:
        return Attempt(AttemptKind.GONE, detail)
    if status in _RETRIED_STATUSES or status >= 500:
        after = parse_retry_after(retry_after, now)
        return Attempt(AttemptKind.RETRY, detail, after)
    if 300 <= status < 400:
        detail += " (redirects are not followed; configure the final URL)"
    return Attempt(AttemptKind.FAILED, detail)
