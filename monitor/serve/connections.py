"""The HTTP connection layer: a bounded number of workers, deadlines, TLS in the worker.

``socketserver.ThreadingMixIn`` starts a thread per connection without limit and lets a client
that sends nothing (or a byte now and then) hold its thread forever. Here:

- at most ``max_connections`` connections are served at once; the accept loop takes the next
  one only when a worker slot is free, so the others wait in the kernel's listen backlog;
- every read and write times out after ``idle_timeout``;
- every connection is closed ``request_timeout`` after it was accepted, whatever it is doing
  (a slowloris trickling a byte per second included): the accept loop shuts its socket down,
  which wakes the worker blocked on it;
- the TLS handshake runs in the worker, under both limits, never in the accept loop.

HTTP parsing stays with :mod:`wsgiref` (one request per connection).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

log = logging.getLogger(__name__)

#: How often the accept loop wakes to expire deadlines while nothing happens.
TICK = 0.1
WORKER_NAME = "modelmon-http-conn"


@dataclass(frozen=True)
class Limits:
    """Per-connection limits (seconds) and how many connections are served at once."""

    idle_timeout: float = 10.0
    request_timeout: float = 30.0
    max_connections: int = 8


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every 15 s would drown the daemon's own log


class _Bound(WSGIServer):
    """Binds, listens and builds the WSGI environ; its own serve loop is never used."""

    request_queue_size = 64  # connections waiting for a free worker


class BoundedServer:
    """Serves a WSGI app on ``host:port`` within :class:`Limits`, optionally over TLS.

    Parameters
    ----------
    app
        The WSGI application.
    tls
        A server-side context, or ``None`` for plain HTTP.
    clock
        Monotonic seconds for the connection deadlines.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        host: str,
        port: int,
        limits: Limits,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = _Bound((host, port), _Quiet)
        self._server.set_app(app)
        if tls is not None:
            self._server.base_environ["HTTPS"] = "on"  # wsgi.url_scheme = https
        self._server.socket.setblocking(False)
        self._limits = limits
        self._tls = tls
        self._clock = clock
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._lock = threading.Lock()
        self._deadlines: dict[int, tuple[float, socket.socket]] = {}
        self._next_id = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="modelmon-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def active(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._deadlines)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut every open connection, close the listening socket."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with self._lock:
            for _, sock in self._deadlines.values():
                _cut(sock)
        self._server.server_close()

    # -- accept loop (thread modelmon-http) ----------------------------------------------------
    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server.socket, selectors.EVENT_READ)
            while not self._closing.is_set():
                self._expire()
                if not self._slots.acquire(timeout=TICK):
                    continue  # every worker busy: the backlog holds the next connections
                handed_off = False
                try:
                    if selector.select(TICK):
                        conn, addr = self._server.socket.accept()
                        self._spawn(conn, addr)
                        handed_off = True
                except OSError as exc:  # the client left before accept, or fd exhaustion
                    log.debug("http accept failed: %s", exc)
                finally:
                    if not handed_off:
                        self._slots.release()

    def _spawn(self, conn: socket.socket, addr: Any) -> None:
        conn.settimeout(self._limits.idle_timeout)
        ident = self._watch(conn, None)
        worker = threading.Thread(
            target=self._serve, args=(ident, conn, addr), name=WORKER_NAME, daemon=True
        )
        worker.start()

    def _expire(self) -> None:
        now = self._clock()
        with self._lock:
            for deadline, sock in self._deadlines.values():
                if now >= deadline:
                    _cut(sock)  # idempotent: a cut socket stays listed until its worker ends

    def _watch(self, sock: socket.socket, ident: int | None) -> int:
        with self._lock:
            if ident is None:
                ident, self._next_id = self._next_id, self._next_id + 1
                deadline = self._clock() + self._limits.request_timeout
            else:
                deadline = self._deadlines[ident][0]
            self._deadlines[ident] = (deadline, sock)
        return ident

    # -- one connection (a worker thread) ------------------------------------------------------
    def _serve(self, ident: int, conn: socket.socket, addr: Any) -> None:
        sock = conn
        try:
            if self._tls is not None:
                sock = self._tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                self._watch(sock, ident)  # the plain socket is detached now
                sock.do_handshake()
            self._server.finish_request(sock, addr)
        except (OSError, ValueError) as exc:  # timeouts, resets, TLS errors, a cut socket
            log.debug("http connection from %s ended: %s", addr[0] if addr else "?", exc)
        finally:
            with self._lock:
                del self._deadlines[ident]
            self._server.shutdown_request(sock)
            self._slots.release()


def _cut(sock: socket.socket) -> None:
    """Shut a socket down from another thread; the worker's blocked read returns at once.

    ``socket.socket.shutdown`` on purpose: ``SSLSocket.shutdown`` would also drop the TLS
    object under the worker's feet.
    """
    with contextlib.suppress(OSError):  # already closed or never connected
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
