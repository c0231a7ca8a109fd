"""A small verifying webhook receiver, for the demo and for checking a deployment by hand.

It accepts Standard Webhooks v1 deliveries on 127.0.0.1, verifies the signature and the
timestamp (±5 minutes), acknowledges a repeated ``webhook-id`` without acting on it again, and
hands each new event to a callback. With ``dedupe=False`` (for tests that count deliveries) a
repeated id is recorded and handed on like a new one, so duplicates are visible.
``deploy/examples/webhook_receiver.py`` is the standalone, dependency-free version to copy into
a retraining service.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from monitor.alerting.standard_webhooks import decode_secret, sign

TOLERANCE = 300.0


@dataclass
class Received:
    """What the receiver saw: accepted events in order, and rejected attempts by reason."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    rejected: dict[str, int] = field(default_factory=dict)


def verify(secret: str, headers: dict[str, str], body: bytes, now: float) -> str | None:
    """None when the delivery is authentic and fresh, else why not."""
    msg_id = headers.get("webhook-id", "")
    ts_text = headers.get("webhook-timestamp", "")
    if not msg_id or not ts_text.isdigit():
        return "missing headers"
    ts = int(ts_text)
    if abs(now - ts) > TOLERANCE:
        return "stale timestamp"
    expected = sign(decode_secret(secret), msg_id, ts, body)
    offered = headers.get("webhook-signature", "").split()
    if not any(hmac.compare_digest(expected, sig) for sig in offered):
        return "bad signature"
    return None


class WebhookReceiver:
    """Threaded HTTP receiver on 127.0.0.1 (port 0: any free port)."""

    def __init__(
        self,
        secret: str,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        port: int = 0,
        wall: Callable[[], float] = time.time,
        *,
        dedupe: bool = True,
    ) -> None:
        self.received = Received()
        self._dedupe = dedupe
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._handle(secret, headers, body, wall(), on_event)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(
        self,
        secret: str,
        headers: dict[str, str],
        body: bytes,
        now: float,
        on_event: Callable[[dict[str, Any]], None] | None,
    ) -> int:
        problem = verify(secret, headers, body, now)
        with self._lock:
            if problem is not None:
                self.received.rejected[problem] = self.received.rejected.get(problem, 0) + 1
                return 401
            msg_id = headers["webhook-id"]
            if self._dedupe and msg_id in self.received.ids:
                return 200  # a retry of something already handled: acknowledge, do nothing
            self.received.ids.add(msg_id)
            event = orjson.loads(body)
            event["webhook_id"] = msg_id
            self.received.events.append(event)
        if on_event is not None:
            on_event(event)
        return 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
