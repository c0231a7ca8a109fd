"""The suite's webhook receivers, with their fixtures (registered by ``tests/conftest.py``).

- ``devkit_receiver``: :class:`monitor.devkit.receiver.WebhookReceiver` on ``WH_SECRET``, the
  one plain receiver (always 200, signatures checked with the project's ``sign``).
- ``scripted_receiver``: :class:`Receiver`, for the dispatcher tests. It verifies every request
  with the independent ``standardwebhooks`` package, keeps one secret and one script of
  responses per path (statuses, ``Retry-After`` headers, hangs) and records every attempt with
  its arrival time, repeats included.
- ``make_dispatcher``: dispatchers on ``tmp_path/outbox`` (fast retries, seeded jitter).
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from monitor.alerting.delivery import WebhookDispatcher
from monitor.alerting.standard_webhooks import RetryPolicy, WebhookEndpoint
from monitor.devkit.receiver import WebhookReceiver

WH_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
FAST = RetryPolicy(schedule=(0.05, 0.1, 0.2), jitter=0.1)


def verifier(secret: str) -> Webhook:
    # standardwebhooks base64-decodes every str secret; raw secrets must be given as bytes
    return Webhook(secret if secret.startswith("whsec_") else secret.encode())


# --- the receiver ----------------------------------------------------------------------------


@dataclass
class Route:
    """One scripted path: actions are (status, headers) or ("hang", seconds); then 200s."""

    secret: str
    script: deque[tuple[Any, Any]] = field(default_factory=deque)
    accepted: list[str] = field(default_factory=list)
    attempts: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    @property
    def attempt_ids(self) -> list[str]:
        return [headers["webhook-id"] for _, headers, _ in self.attempts]


class Receiver:
    """Real HTTP receiver on 127.0.0.1; bound at construction, listening after :meth:`up`."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                route = receiver.routes[self.path]
                try:
                    verifier(route.secret).verify(body, headers)
                except WebhookVerificationError as exc:
                    route.rejected.append(str(exc))
                    return self.reply(401, {})
                route.attempts.append((arrived, headers, body))
                action = route.script.popleft() if route.script else (200, {})
                if action[0] == "hang":
                    receiver.release.wait(action[1])
                    self.close_connection = True
                    return None
                status, extra = action
                if 200 <= status < 300:
                    route.accepted.append(headers["webhook-id"])
                return self.reply(status, extra)

            def reply(self, status: int, extra: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out on a hanging request is expected here

        self.server = Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.server_bind()
        self.port = self.server.server_address[1]
        self.thread: threading.Thread | None = None

    def up(self) -> None:
        self.server.server_activate()
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join(5)
        self.server.server_close()

    def route(self, path: str, secret: str = WH_SECRET, *script: tuple[Any, Any]) -> Route:
        self.routes[path] = Route(secret, deque(script))
        return self.routes[path]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def endpoint(self, name: str, path: str, **kw: Any) -> WebhookEndpoint:
        secret = self.routes[path].secret
        kw.setdefault("allow_private", True)
        return WebhookEndpoint(name, self.url(path), (SecretStr(secret),), **kw)


@pytest.fixture
def devkit_receiver() -> Iterator[WebhookReceiver]:
    """The devkit's receiver on ``WH_SECRET``, listening."""
    r = WebhookReceiver(WH_SECRET).start()
    yield r
    r.stop()


@pytest.fixture
def scripted_receiver() -> Iterator[Receiver]:
    """A scripted receiver, listening."""
    r = Receiver()
    r.up()
    yield r
    r.close()


@dataclass
class Made:
    dispatcher: WebhookDispatcher
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
def make_dispatcher(tmp_path: Path) -> Iterator[Callable[..., Made]]:
    """Build dispatchers on ``tmp_path/outbox`` (fast retries, seeded jitter); stop them after."""
    made: list[WebhookDispatcher] = []

    def factory(*endpoints: WebhookEndpoint, start: bool = True, **kw: Any) -> Made:
        registry = CollectorRegistry()
        kw.setdefault("retry", FAST)
        kw.setdefault("rng", random.Random(1234))
        d = WebhookDispatcher(tmp_path / "outbox", registry=registry, endpoints=endpoints, **kw)
        made.append(d)
        if start:
            d.start()
        return Made(d, registry)

    yield factory
    for d in made:
        assert d.stop(5.0)
