#!/usr/bin/env python3
"""Minimal receiver for modelmon retraining webhooks (Standard Webhooks v1); stdlib only.

Run it::

    WEBHOOK_SECRET='whsec_...' python deploy/examples/webhook_receiver.py --port 8080
    python deploy/examples/webhook_receiver.py --port 8080 --secret 'whsec_...'  # visible in ps

For each POST it checks the signature against every configured secret (give two while
rotating), rejects timestamps more than 5 minutes off, acknowledges a repeated ``webhook-id``
without acting on it again (modelmon delivers at least once), and prints each new event as one
JSON line on stdout; diagnostics go to stderr. Replies: 200 accepted or duplicate, 400
malformed, 401 bad signature, 413 too large.

A real pipeline should record seen ids durably (e.g. a unique key on its job table, written
in the same transaction that schedules the retraining) and reply quickly, doing the work
asynchronously: modelmon times out after 15 s and retries.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_S = 5 * 60
MAX_BODY = 1 << 20
SEEN_IDS = 100_000


def decode_secret(secret: str) -> bytes:
    """Same rule as modelmon: ``whsec_<base64>`` is decoded, anything else is raw UTF-8."""
    if secret.startswith("whsec_"):
        raw = secret[len("whsec_") :]
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    return secret.encode("utf-8")


def verify(keys: list[bytes], msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """True if any ``v1,`` signature in ``header`` matches any key (constant-time compare)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = [hmac.new(k, signed, hashlib.sha256).digest() for k in keys]
    for item in header.split():
        version, _, sig = item.partition(",")
        if version != "v1":
            continue
        try:
            got = base64.b64decode(sig, validate=True)
        except binascii.Error:
            continue
        if any(hmac.compare_digest(got, e) for e in expected):
            return True
    return False


class Receiver(ThreadingHTTPServer):
    """HTTP server holding the keys and the recently seen ids."""

    def __init__(self, address: tuple[str, int], keys: list[bytes]) -> None:
        super().__init__(address, Handler)
        self.keys = keys
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.lock = threading.Lock()

    def first_time(self, msg_id: str) -> bool:
        """Remember ``msg_id``; False if it was seen already (bounded memory)."""
        with self.lock:
            if msg_id in self.seen:
                return False
            self.seen[msg_id] = None
            if len(self.seen) > SEEN_IDS:
                self.seen.popitem(last=False)
            return True


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self.reply(413, "body too large")
        body = self.rfile.read(length)
        msg_id = self.headers.get("webhook-id", "")
        timestamp = self.headers.get("webhook-timestamp", "")
        signature = self.headers.get("webhook-signature", "")
        if not (msg_id and timestamp.isdigit() and signature):
            return self.reply(400, "missing or malformed webhook headers")
        if abs(time.time() - int(timestamp)) > TOLERANCE_S:
            return self.reply(400, "timestamp outside tolerance")
        if not verify(self.server.keys, msg_id, timestamp, body, signature):
            return self.reply(401, "bad signature")
        try:
            event = json.loads(body)
        except ValueError:
            return self.reply(400, "body is not JSON")
        if not self.server.first_time(msg_id):
            print(f"duplicate {msg_id} acknowledged", file=sys.stderr, flush=True)
            return self.reply(200, "duplicate")
        print(json.dumps({"webhook_id": msg_id, "event": event}), flush=True)
        return self.reply(200, "accepted")

    def reply(self, status: int, message: str) -> None:
        if status >= 400:
            print(f"rejected ({status}): {message}", file=sys.stderr, flush=True)
        data = message.encode() + b"\n"
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per decision is printed above instead


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        help="signing secret; repeat while rotating (default: $WEBHOOK_SECRET, space-separated)",
    )
    args = parser.parse_args(argv)
    secrets = args.secret or os.environ.get("WEBHOOK_SECRET", "").split()
    if not secrets:
        parser.error("give --secret or set WEBHOOK_SECRET")
    try:
        keys = [decode_secret(s) for s in secrets]
    except binascii.Error:
        parser.error("a secret starting with whsec_ must be base64")
    if not all(keys):
        parser.error("empty secret")
    with Receiver((args.host, args.port), keys) as server:
        host, port = server.server_address[:2]
        print(f"listening on http://{host}:{port}/", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends it quietly
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
