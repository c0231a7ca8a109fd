"""Retraining webhooks: the durable, signed, retried delivery dispatcher.

This is the only module that makes outbound HTTP requests. An event is serialised once, written
to the durable outbox (:mod:`monitor.alerting.outbox`) before any attempt, and POSTed with the
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

import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import httpx
from prometheus_client import CollectorRegistry

from monitor import redaction
from monitor.alerting.delivery_metrics import DeliveryMetrics
from monitor.alerting.outbox import Outbox, OutboxEntry
from monitor.alerting.standard_webhooks import (
    DEFAULT_RETRY,
    Attempt,
    AttemptKind,
    RetryPolicy,
    WebhookEndpoint,
    build_body,
    classify_response,
    display_url,
    signed_headers,
    validate_webhook_url,
)
from monitor.alerting.targets import Resolver, check_url_syntax, pinned_client, system_resolver
from monitor.redaction import redact

__all__ = ["WebhookDispatcher", "send_test"]

_EVENT_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")  # ids become file names

logger = logging.getLogger(__name__)


def _post(
    client: httpx.Client,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    now: Callable[[], float],
) -> Attempt:
    try:
        with client.stream("POST", url, content=body, headers=headers, timeout=timeout) as resp:
            snippet = b""
            for chunk in resp.iter_raw():  # a little of the body for logs, never all of it
                snippet += chunk
                if len(snippet) >= 200:
                    break
            text = snippet[:200].decode("utf-8", "replace")
            return classify_response(resp.status_code, resp.headers.get("retry-after"), text, now())
    except httpx.TimeoutException as exc:
        return Attempt(AttemptKind.RETRY, f"timeout after {timeout:g}s ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return Attempt(AttemptKind.RETRY, redact(f"{type(exc).__name__}: {exc}"))


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
        One HTTP client for every endpoint, checked by :func:`validate_webhook_url` before each
        attempt (a check by name: for tests). By default each endpoint gets its own
        :func:`~monitor.alerting.targets.pinned_client`, which checks the address it connects
        to, closed at :meth:`stop`.
    resolve
        Name resolution for the default clients (tests inject one).
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
        resolve: Resolver = system_resolver,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._outbox = Outbox(Path(outbox_dir), clock=clock, wall=wall)
        self._client = client
        self._resolve = resolve
        self._clients: dict[tuple[str, bool], httpx.Client] = {}  # per endpoint and policy
        self._retry = retry
        self._wall = wall
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        self._endpoints: dict[str, WebhookEndpoint] = {}
        self._disabled: set[str] = set()
        self._threads: dict[str, threading.Thread] = {}
        self._started = self._stopping = self._closed = False
        self._metrics = DeliveryMetrics(registry, self._outbox.pending)
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
    ) -> str | None:
        """Store an event durably and schedule its delivery; return its ``webhook-id``.

        Works before :meth:`start` and after :meth:`stop` too (the event waits on disk).
        ``event_id`` lets a caller derive ids deterministically (e.g. from model, type and
        window) so that re-enqueueing the same finding is a no-op while it is pending: then
        None is returned (nothing stored; the pending bytes are what will be sent).
        Raises ``OSError`` if the event could not be stored, ``ValueError`` for a bad type.
        """
        body = build_body(event_type, data, self._wall())
        if event_id is not None and not _EVENT_ID.fullmatch(event_id):
            raise ValueError("event_id must be 1-128 characters of [A-Za-z0-9_-]")
        self.register(endpoint)
        msg_id = event_id or f"msg_{uuid.uuid4().hex}"
        stored = self._outbox.add(msg_id, endpoint.name, endpoint.url, event_type, body)
        return None if stored is None else msg_id

    def undelivered(self) -> list[OutboxEntry]:
        """Every event not yet delivered (nor given up), oldest first per endpoint."""
        return [e for name in self._outbox.endpoints() for e in self._outbox.entries(name)]

    def adopt(self, endpoint: WebhookEndpoint, msg_id: str, event_type: str, body: bytes) -> bool:
        """Take over an event another process stored (group mode's handover), with its id and
        exact body; False if it is already pending here. Raises ``OSError`` like enqueue."""
        self.register(endpoint)
        return self._outbox.add(msg_id, endpoint.name, endpoint.url, event_type, body) is not None

    def start(self) -> None:
        """Start one worker per registered endpoint (once per dispatcher)."""
        with self._lock:
            if self._started:
                raise RuntimeError("webhook dispatcher already started")
            self._started = True
            redaction.install()  # httpx logs request URLs, which may hold tokens
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
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
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
        where = f"{entry.id} ({entry.event_type}) for {name} at {display_url(endpoint.url)}"
        if disabled:  # enqueued after a 410
            logger.error("webhook %s not sent: endpoint disabled by 410; moved to dead/", where)
            self._bury(entry, "endpoint disabled (HTTP 410)", "disabled")
            return
        result = self._attempt(endpoint, entry)
        entry.attempts += 1
        if result.kind is AttemptKind.DELIVERED:
            self._outbox.complete(entry)
            self._metrics.deliveries.labels(model=name, outcome="delivered").inc()
            self._metrics.last_success.labels(model=name).set(self._wall())
            logger.info("webhook %s delivered after %d attempt(s)", where, entry.attempts)
            return
        entry.last_error = result.detail
        if result.kind is AttemptKind.FAILED:
            logger.error("webhook %s failed permanently: %s; moved to dead/", where, result.detail)
            self._bury(entry, f"permanent failure: {result.detail}", "failed")
        elif result.kind is AttemptKind.GONE:
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
                except OSError:  # not even marked: stays pending; taken again, it is buried
                    logger.exception("could not move webhook %s to dead/", victim.id)
        else:
            self._retry_later(entry, result, where)

    def _attempt(self, endpoint: WebhookEndpoint, entry: OutboxEntry) -> Attempt:
        try:
            if self._client is not None:  # a shared client checks by name first
                validate_webhook_url(endpoint.url, endpoint.allow_private, self._resolve)
            client = self._client or self._endpoint_client(endpoint)
            headers = signed_headers(endpoint.keys(), entry.id, int(self._wall()), entry.body)
            result = _post(client, endpoint.url, entry.body, headers, endpoint.timeout, self._wall)
        except ValueError as exc:  # TargetRefusedError, from the check or the connection
            return Attempt(AttemptKind.FAILED, f"target refused: {exc}")
        except OSError as exc:  # the name did not resolve: DNS down, or not yet published
            self._metrics.resolve_failures.labels(model=endpoint.name).inc()
            return Attempt(AttemptKind.RETRY, f"cannot resolve target: {exc}")
        # Counted once the target passed its check: a refused target is never attempted.
        self._metrics.attempts.labels(model=endpoint.name).inc()
        return result

    def _endpoint_client(self, endpoint: WebhookEndpoint) -> httpx.Client:
        key = (endpoint.name, endpoint.allow_private)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = pinned_client(endpoint.allow_private, self._resolve)
            return client

    def _retry_later(self, entry: OutboxEntry, result: Attempt, where: str) -> None:
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
    resolve: Resolver = system_resolver,
    wall: Callable[[], float] = time.time,
) -> httpx.Response:
    """Send one signed ``model.test`` event, once, bypassing the outbox; return the response.

    For ``modelmon webhook test``. Raises ``ValueError`` for a refused target, ``OSError`` for
    a name that does not resolve and ``httpx.HTTPError`` for transport failures.
    """
    redaction.install()
    check_url_syntax(endpoint.url)
    now = wall()
    body = build_body("model.test", {"model": endpoint.name, "message": "modelmon test"}, now)
    headers = signed_headers(endpoint.keys(), f"msg_{uuid.uuid4().hex}", int(now), body)
    if client is not None:
        validate_webhook_url(endpoint.url, endpoint.allow_private, resolve)
        return client.post(endpoint.url, content=body, headers=headers, timeout=endpoint.timeout)
    with pinned_client(endpoint.allow_private, resolve) as own:
        return own.post(endpoint.url, content=body, headers=headers, timeout=endpoint.timeout)
