"""Retraining webhooks: Standard Webhooks v1 signing, target policy and the delivery dispatcher.

This is the only module that makes outbound HTTP requests. An event is serialised once, written
to the durable outbox (:mod:`monitor.webhook_outbox`) before any attempt, and POSTed with the
same ``webhook-id`` on every attempt until a 2xx, so deliveries are at-least-once with one id
per event (receivers dedupe on it).

Delivery model: one worker thread per endpoint (endpoints are models, so a handful). A worker
delivers its endpoint's oldest pending event first and does not skip ahead while that event is
being retried, so ``model.degraded`` and ``model.recovered`` arrive in order; a slow or failing
endpoint only ever holds up its own worker.

Responses: 2xx delivered; 408/425/429/5xx, timeouts and connection errors retried with jittered
exponential backoff (``Retry-After`` honoured as a lower bound) until ``max_age`` after creation,
then moved to ``dead/`` as expired; 410 disables the endpoint and moves all its events to
``dead/``; any other status (other 4xx, and 3xx since redirects are never followed) is a
permanent failure: the receiver understood the request and refused it, and resending identical
signed bytes for 24 hours will not change that, so the event goes to ``dead/`` at once, with an
ERROR log, for an operator to fix the cause and replay (move the file back into the outbox).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import enum
import hashlib
import hmac
import ipaddress
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import SecretStr

from monitor import __version__
from monitor.webhook_outbox import Outbox, OutboxEntry

__all__ = [
    "DEFAULT_RETRY",
    "EVENT_TYPES",
    "RetryPolicy",
    "WebhookDispatcher",
    "WebhookEndpoint",
    "build_body",
    "decode_secret",
    "parse_retry_after",
    "send_test",
    "sign",
    "signed_headers",
    "validate_target",
]

EVENT_TYPES: Final = frozenset(
    {"model.degraded", "model.recovered", "model.version_changed", "model.test"}
)
SECRET_PREFIX: Final = "whsec_"
DEFAULT_TIMEOUT: Final = 15.0
DEFAULT_SCHEDULE: Final = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)  # the last one repeats
USER_AGENT: Final = f"modelmon/{__version__}"
OUTCOMES: Final = ("delivered", "retry", "failed", "disabled", "expired")
_RETRIED_STATUSES: Final = frozenset({408, 425, 429})
_EVENT_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")  # ids become file names

logger = logging.getLogger(__name__)


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


def _check_url_syntax(url: str) -> str:
    """Check scheme, host and port without any lookup; return the host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook URL scheme {parts.scheme!r} is not allowed; use http or https")
    if not parts.hostname:
        raise ValueError("webhook URL has no host")
    try:
        parts.port  # noqa: B018 - the property validates the port
    except ValueError as exc:
        raise ValueError(f"webhook URL has an invalid port: {exc}") from None
    return parts.hostname


def _display_url(url: str) -> str:
    """URL for logs: no userinfo or query, which may carry credentials."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


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
        Permit loopback, private and link-local targets (see :func:`validate_target`).
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
        _check_url_syntax(self.url)


def _keys(endpoint: WebhookEndpoint) -> list[bytes]:
    return [decode_secret(s.get_secret_value()) for s in endpoint.secrets]


def _non_public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    for kind, hit in (
        ("loopback", addr.is_loopback),
        ("unspecified", addr.is_unspecified),
        ("link-local", addr.is_link_local),
        ("private", addr.is_private),
        ("multicast", addr.is_multicast),
        ("reserved", addr.is_reserved),
        ("non-global", not addr.is_global),  # e.g. 100.64.0.0/10 carrier-grade NAT
    ):
        if hit:
            return kind
    return None


def validate_target(url: str, allow_private: bool) -> None:
    """Refuse webhook targets that would let a config reach into the private network.

    Literal IPs are checked directly; names are resolved with :func:`socket.getaddrinfo` and
    every address must be public. Nothing is connected to. With ``allow_private`` only the URL
    syntax is checked (no lookup).

    Raises
    ------
    ValueError
        Naming the problem: scheme, missing host, bad port, or a non-public address.
    OSError
        If the name cannot be resolved (possibly transient; the dispatcher retries).

    >>> validate_target("https://93.184.215.14/hook", allow_private=False)
    >>> validate_target("http://10.1.2.3/hook", allow_private=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: webhook host '10.1.2.3' resolves to private address 10.1.2.3; set allow_private ...
    """
    host = _check_url_syntax(url)
    if allow_private:
        return
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        port = urlsplit(url).port or (443 if url.lower().startswith("https") else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for addr in addresses:
        kind = _non_public(addr)
        if kind is not None:
            raise ValueError(
                f"webhook host {host!r} resolves to {kind} address {addr}; "
                "set allow_private to permit it"
            )


# --- retry policy --------------------------------------------------------------------------


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


class _Kind(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class _Result:
    kind: _Kind
    detail: str
    retry_after: float | None = None


def _classify(response: httpx.Response, snippet: str, now: float) -> _Result:
    status = response.status_code
    detail = f"HTTP {status}" + (f": {snippet!r}" if snippet else "")
    if 200 <= status < 300:
        return _Result(_Kind.DELIVERED, detail)
    if status == 410:
        return _Result(_Kind.GONE, detail)
    if status in _RETRIED_STATUSES or status >= 500:
        after = parse_retry_after(response.headers.get("retry-after"), now)
        return _Result(_Kind.RETRY, detail, after)
    if 300 <= status < 400:
        detail += " (redirects are not followed; configure the final URL)"
    return _Result(_Kind.FAILED, detail)


def _post(
    client: httpx.Client,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    now: Callable[[], float],
) -> _Result:
    try:
        with client.stream("POST", url, content=body, headers=headers, timeout=timeout) as resp:
            snippet = b""
            for chunk in resp.iter_raw():  # a little of the body for logs, never all of it
                snippet += chunk
                if len(snippet) >= 200:
                    break
            return _classify(resp, snippet[:200].decode("utf-8", "replace"), now())
    except httpx.TimeoutException as exc:
        return _Result(_Kind.RETRY, f"timeout after {timeout:g}s ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return _Result(_Kind.RETRY, f"{type(exc).__name__}: {exc}")


# --- dispatcher ----------------------------------------------------------------------------


class _Metrics:
    def __init__(self, registry: CollectorRegistry, pending: Callable[[], int]) -> None:
        self.deliveries = Counter(
            "modelmon_webhook_deliveries",
            "Webhook events by outcome (retry counts failed attempts that will be retried).",
            ["model", "outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "modelmon_webhook_attempts", "Webhook delivery attempts.", ["model"], registry=registry
        )
        self.outbox_size = Gauge(
            "modelmon_webhook_outbox_size",
            "Webhook events waiting in the outbox.",
            registry=registry,
        )
        self.outbox_size.set_function(pending)
        self.last_success = Gauge(
            "modelmon_webhook_last_success_timestamp_seconds",
            "Unix time of the last delivered webhook.",
            ["model"],
            registry=registry,
        )

    def add_model(self, model: str) -> None:
        # create the zero series up front so rate() and alerts see them before the first event
        for outcome in OUTCOMES:
            self.deliveries.labels(model=model, outcome=outcome)
        self.attempts.labels(model=model)


class WebhookDispatcher:
    """Durable, signed, retried webhook delivery: one worker thread per endpoint.

    Parameters
    ----------
    outbox_dir
        Directory of the outbox (the app passes ``<state.dir>/webhooks``). Pending events
        found there are reloaded now and delivered once their endpoint is registered and the
        dispatcher started; secrets are never stored, so the endpoint must be configured again.
    registry
        Where the ``modelmon_webhook_*`` metrics are registered.
    endpoints
        Endpoints known up front.
    client
        HTTP client; by default one is created at :meth:`start` and closed at :meth:`stop`.
        Redirects must not be followed (they would bypass :func:`validate_target`).
    retry
        Backoff schedule and maximum age.
    clock, wall
        Monotonic time for scheduling; wall time for ``webhook-timestamp`` and stored times.
    rng
        Source of jitter.
    """

    def __init__(
        self,
        outbox_dir: Path | str,
        *,
        registry: CollectorRegistry,
        endpoints: Iterable[WebhookEndpoint] = (),
        client: httpx.Client | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._outbox = Outbox(Path(outbox_dir), clock=clock, wall=wall)
        self._client = client
        self._own_client = client is None
        self._retry = retry
        self._wall = wall
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        self._endpoints: dict[str, WebhookEndpoint] = {}
        self._disabled: set[str] = set()
        self._threads: dict[str, threading.Thread] = {}
        self._started = self._stopping = self._closed = False
        self._metrics = _Metrics(registry, self._outbox.pending)
        for endpoint in endpoints:
            self.register(endpoint)

    def register(self, endpoint: WebhookEndpoint) -> None:
        """Add or replace (by name) an endpoint; a new URL re-enables one disabled by 410."""
        with self._lock:
            old = self._endpoints.get(endpoint.name)
            if endpoint.name in self._disabled and old is not None and old.url != endpoint.url:
                logger.info("webhook endpoint %s re-enabled with a new URL", endpoint.name)
                self._disabled.discard(endpoint.name)
            self._endpoints[endpoint.name] = endpoint
            self._metrics.add_model(endpoint.name)
            if self._started and not self._stopping:
                self._spawn(endpoint.name)

    def enqueue(
        self,
        endpoint: WebhookEndpoint,
        event_type: str,
        data: Mapping[str, Any],
        *,
        event_id: str | None = None,
    ) -> str:
        """Store an event durably and schedule its delivery; return its ``webhook-id``.

        Works before :meth:`start` and after :meth:`stop` too (the event waits on disk).
        ``event_id`` lets a caller derive ids deterministically (e.g. from model, type and
        window) so that re-enqueueing the same finding is a no-op while it is pending.
        Raises ``OSError`` if the event could not be stored, ``ValueError`` for a bad type.
        """
        body = build_body(event_type, data, self._wall())
        if event_id is not None and not _EVENT_ID.fullmatch(event_id):
            raise ValueError("event_id must be 1-128 characters of [A-Za-z0-9_-]")
        self.register(endpoint)
        msg_id = event_id or f"msg_{uuid.uuid4().hex}"
        self._outbox.add(msg_id, endpoint.name, endpoint.url, event_type, body)
        return msg_id

    def start(self) -> None:
        """Start one worker per registered endpoint (once per dispatcher)."""
        with self._lock:
            if self._started:
                raise RuntimeError("webhook dispatcher already started")
            self._started = True
            if self._client is None:
                self._client = httpx.Client(follow_redirects=False)
            for name in self._endpoints:
                self._spawn(name)
            orphans = sorted(set(self._outbox.endpoints()) - set(self._endpoints))
        for name in orphans:
            logger.warning(
                "webhook outbox holds %d events for unconfigured endpoint %r; they wait until "
                "it is configured again",
                len(self._outbox.entries(name)),
                name,
            )

    def stop(self, deadline_s: float = 10.0) -> bool:
        """Stop the workers, leaving pending events on disk; True if all stopped in time.

        A worker in the middle of an attempt finishes it (bounded by the endpoint timeout).
        Workers still busy at the deadline keep the client and the directory lock, which the
        process exit releases.
        """
        with self._lock:
            if self._closed:
                return True
            self._stopping = True
            threads = list(self._threads.values())
        self._outbox.interrupt()
        end = time.monotonic() + deadline_s
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))
        busy = [t.name for t in threads if t.is_alive()]
        if busy:
            logger.warning("webhook workers still busy at stop deadline: %s", ", ".join(busy))
            return False
        if self._own_client and self._client is not None:
            self._client.close()
        self._outbox.close()
        self._closed = True
        return True

    def pending(self) -> int:
        """Number of events in the outbox (not counting ``dead/``)."""
        return self._outbox.pending()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` real seconds until the outbox is empty; True if it is."""
        return self._outbox.wait_empty(timeout)

    def __enter__(self) -> WebhookDispatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- workers --

    def _spawn(self, name: str) -> None:
        if name not in self._threads:
            thread = threading.Thread(
                target=self._run, args=(name,), name=f"modelmon-webhook-{name}", daemon=True
            )
            self._threads[name] = thread
            thread.start()

    def _run(self, name: str) -> None:
        while (entry := self._outbox.take(name)) is not None:
            try:
                self._handle(name, entry)
            except Exception:  # a worker must never die; the event stays pending
                logger.exception("webhook worker error on event %s; retrying later", entry.id)
                self._outbox.reschedule(entry, self._retry.schedule[0])

    def _handle(self, name: str, entry: OutboxEntry) -> None:
        with self._lock:
            endpoint = self._endpoints[name]
            disabled = name in self._disabled
        where = f"{entry.id} ({entry.event_type}) for {name} at {_display_url(endpoint.url)}"
        if disabled:  # enqueued after a 410
            logger.error("webhook %s not sent: endpoint disabled by 410; moved to dead/", where)
            self._bury(entry, "endpoint disabled (HTTP 410)", "disabled")
            return
        result = self._attempt(endpoint, entry)
        entry.attempts += 1
        if result.kind is _Kind.DELIVERED:
            self._outbox.complete(entry)
            self._metrics.deliveries.labels(model=name, outcome="delivered").inc()
            self._metrics.last_success.labels(model=name).set(self._wall())
            logger.info("webhook %s delivered after %d attempt(s)", where, entry.attempts)
            return
        entry.last_error = result.detail
        if result.kind is _Kind.FAILED:
            logger.error("webhook %s failed permanently: %s; moved to dead/", where, result.detail)
            self._bury(entry, f"permanent failure: {result.detail}", "failed")
        elif result.kind is _Kind.GONE:
            with self._lock:
                self._disabled.add(name)
            victims = self._outbox.entries(name)  # includes this one
            logger.error(
                "webhook endpoint %s disabled by %s; moved its %d pending event(s) to dead/",
                name,
                result.detail,
                len(victims),
            )
            for victim in victims:
                try:
                    self._bury(victim, f"endpoint disabled: {result.detail}", "disabled")
                except OSError:  # stays pending on disk; a restart will try it again
                    logger.exception("could not move webhook %s to dead/", victim.id)
        else:
            self._retry_later(entry, result, where)

    def _attempt(self, endpoint: WebhookEndpoint, entry: OutboxEntry) -> _Result:
        try:
            validate_target(endpoint.url, endpoint.allow_private)
        except ValueError as exc:
            return _Result(_Kind.FAILED, f"target refused: {exc}")
        except OSError as exc:
            return _Result(_Kind.RETRY, f"cannot resolve target: {exc}")
        assert self._client is not None  # set by start(), which spawns the workers
        self._metrics.attempts.labels(model=endpoint.name).inc()
        headers = signed_headers(_keys(endpoint), entry.id, int(self._wall()), entry.body)
        return _post(self._client, endpoint.url, entry.body, headers, endpoint.timeout, self._wall)

    def _retry_later(self, entry: OutboxEntry, result: _Result, where: str) -> None:
        delay = self._retry.delay(entry.attempts, self._rng)
        if result.retry_after is not None:
            delay = max(delay, result.retry_after)
        if self._wall() + delay > entry.created_at + self._retry.max_age:
            logger.error(
                "webhook %s expired after %d attempts; last error: %s; moved to dead/",
                where,
                entry.attempts,
                result.detail,
            )
            self._bury(entry, f"expired; last error: {result.detail}", "expired")
            return
        self._metrics.deliveries.labels(model=entry.endpoint, outcome="retry").inc()
        logger.warning(
            "webhook %s attempt %d failed: %s; retrying in %.2fs",
            where,
            entry.attempts,
            result.detail,
            delay,
        )
        self._outbox.reschedule(entry, delay)

    def _bury(self, entry: OutboxEntry, reason: str, outcome: str) -> None:
        self._outbox.bury(entry, reason)
        self._metrics.deliveries.labels(model=entry.endpoint, outcome=outcome).inc()


def send_test(
    endpoint: WebhookEndpoint,
    *,
    client: httpx.Client | None = None,
    wall: Callable[[], float] = time.time,
) -> httpx.Response:
    """Send one signed ``model.test`` event, once, bypassing the outbox; return the response.

    For ``modelmon webhook test``. Raises ``ValueError`` for a refused target and
    ``httpx.HTTPError`` for transport failures.
    """
    validate_target(endpoint.url, endpoint.allow_private)
    now = wall()
    body = build_body("model.test", {"model": endpoint.name, "message": "modelmon test"}, now)
    headers = signed_headers(_keys(endpoint), f"msg_{uuid.uuid4().hex}", int(now), body)
    if client is not None:
        return client.post(endpoint.url, content=body, headers=headers, timeout=endpoint.timeout)
    with httpx.Client(follow_redirects=False) as own:
        return own.post(endpoint.url, content=body, headers=headers, timeout=endpoint.timeout)
