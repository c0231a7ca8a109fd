"""The HTTP endpoints: ``/metrics``, ``/healthz``, ``/readyz``, ``/api/v1/status`` and ``/``.

Every request reads the latest immutable snapshot (one reference, swapped whole by the
evaluator) and the registry, never the live state. Only ``GET`` and ``HEAD`` (``405`` with
``Allow`` otherwise; ``HEAD`` answers with the headers alone). With ``basic_auth_users`` in the
web config every path asks for credentials except ``/healthz`` and ``/readyz``, which tell
nothing but "ok" or why not, so kubelet probes need no password in a manifest. Connections,
TLS and their limits: :mod:`monitor.serve.connections`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from monitor.serve import status_page
from monitor.serve.basic_auth import CHALLENGE, BasicAuth
from monitor.serve.connections import BoundedServer, Limits
from monitor.serve.no_created import WithoutCreated
from monitor.serve.sparkline import History
from monitor.serve.web_config import WebConfig, load_web_config
from monitor.settings import HttpSettings
from monitor.snapshot import Snapshot

log = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, str]]
METHODS = ("GET", "HEAD")
#: Answer without credentials: liveness and readiness say "ok" or why not, nothing more.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class HttpServer:
    """``/metrics``, ``/healthz``, ``/readyz``, ``/api/v1/status`` and the status page.

    The web config file is read here, so a bad one stops the daemon before anything starts.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        latest: Callable[[], Snapshot | None],
        liveness: Health,
        readiness: Health,
        settings: HttpSettings,
        *,
        web: WebConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        history: History | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        #: The status page's sparkline history: the evaluator records into it too.
        self.history = history if history is not None else History()
        self._wall = wall
        self._metrics_app = make_wsgi_app(WithoutCreated(registry))
        self._latest = latest
        self._liveness = liveness
        self._readiness = readiness
        web = web if web is not None else load_web_config(settings.web_config_file)
        self.tls = web.tls is not None
        self._auth = BasicAuth(web.users) if web.users else None
        if web.users and web.tls is None:
            log.warning("basic auth without TLS: passwords cross the network in clear text")
        limits = Limits(settings.idle_timeout, settings.request_timeout, settings.max_connections)
        self._server = BoundedServer(
            self._app, settings.host, settings.port, limits, tls=web.tls, clock=clock
        )

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def auth(self) -> bool:
        """Whether basic auth is on."""
        return self._auth is not None

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def _app(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if (
            self._auth is not None
            and path not in OPEN_PATHS
            and not self._auth.check(environ.get("HTTP_AUTHORIZATION"))
        ):
            body: Iterable[bytes] = _reply(
                start,
                "401 Unauthorized",
                "text/plain",
                b"unauthorized\n",
                [("WWW-Authenticate", CHALLENGE)],
            )
        elif method not in METHODS:
            body = _reply(
                start,
                "405 Method Not Allowed",
                "text/plain",
                b"method not allowed\n",
                [("Allow", ", ".join(METHODS))],
            )
        else:
            body = self._route(path, environ, start)
        if method == "HEAD":
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return []  # the headers (Content-Length included) are already given
        return body

    def _metrics(self, environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
        # prometheus_client answers HEAD with 405 and gives no Content-Length: ask it for a GET
        # and measure the body, so a HEAD gets the same headers as a GET.
        captured: list[tuple[str, list[tuple[str, str]]]] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.append((status, headers))
            return None  # the exposition never calls write()

        body = b"".join(self._metrics_app({**environ, "REQUEST_METHOD": "GET"}, capture))
        status, headers = captured[0]
        kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start(status, [*kept, ("Content-Length", str(len(body)))])
        return [body]

    def _route(
        self, path: str, environ: dict[str, Any], start: Callable[..., Any]
    ) -> Iterable[bytes]:
        if path == "/metrics":
            return self._metrics(environ, start)
        if path in OPEN_PATHS:
            ok, why = (self._liveness if path == "/healthz" else self._readiness)()
            status = "200 OK" if ok else "503 Service Unavailable"
            return _reply(start, status, "text/plain; charset=utf-8", (why + "\n").encode())
        if path == "/api/v1/status":
            snap = self._latest()
            body = orjson.dumps(
                {"ready": self._readiness()[0], "snapshot": snap.to_json() if snap else None}
            )
            return _reply(start, "200 OK", "application/json", body)
        if path == "/":
            return _reply(start, "200 OK", "text/html; charset=utf-8", self._page())
        return _reply(start, "404 Not Found", "text/plain", b"not found\n")

    def _page(self) -> bytes:
        snap = self._latest()
        if snap is not None:
            self.history.record(snap)
        return status_page.render(snap, self.history.psi_series(), self._wall())


def _reply(
    start: Callable[..., Any],
    status: str,
    ctype: str,
    body: bytes,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), *(extra or [])]
    start(status, headers)
    return [body]
