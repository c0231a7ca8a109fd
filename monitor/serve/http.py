"""The HTTP endpoints: ``/metrics``, ``/healthz``, ``/readyz``, ``/api/v1/status`` and ``/``.

Served from a background thread; every request reads the latest immutable snapshot (one
reference, swapped whole by the evaluator) and the registry, never the live state.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from monitor.snapshot import Snapshot

Health = Callable[[], tuple[bool, str]]


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every 15 s would drown the daemon's own log


class HttpServer:
    """``/metrics``, ``/healthz``, ``/readyz``, ``/api/v1/status`` and a small status page."""

    def __init__(
        self,
        registry: CollectorRegistry,
        latest: Callable[[], Snapshot | None],
        liveness: Health,
        readiness: Health,
        host: str,
        port: int,
    ) -> None:
        self._metrics_app = make_wsgi_app(registry)
        self._latest = latest
        self._liveness = liveness
        self._readiness = readiness
        self._server = make_server(host, port, self._app, _Threading, handler_class=_Quiet)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="modelmon-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _app(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self._metrics_app(environ, start)  # type: ignore[no-any-return]
        if path in ("/healthz", "/readyz"):
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
        rows = []
        for m in snap.models if snap else ():
            state = "DEGRADED" if m.degraded else "ok"
            for w in m.windows:
                drifted = ", ".join(w.drifted()) or "none"
                perf = ", ".join(
                    f"{k} {v:.3f}" for k, v in w.performance.items() if k in _PAGE_PERF
                )
                cells = (
                    m.model,
                    state,
                    w.window,
                    str(w.predictions),
                    str(w.labels),
                    drifted,
                    perf or "-",
                )
                rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        table = "".join(rows) or "<tr><td colspan=7>no evaluation yet</td></tr>"
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "model",
                "state",
                "window",
                "predictions",
                "labels",
                "drifted features",
                "performance",
            )
        )
        return (
            "<!doctype html><meta charset=utf-8><title>modelmon</title><h1>modelmon</h1>"
            "<p><a href=/metrics>metrics</a> · <a href=/api/v1/status>status JSON</a> · "
            "<a href=/healthz>healthz</a> · <a href=/readyz>readyz</a></p>"
            f"<table border=1 cellpadding=4><tr>{head}</tr>{table}</table>"
        ).encode()


_PAGE_PERF = ("accuracy", "f1", "roc_auc", "mae", "rmse", "estimated_accuracy")


def _reply(start: Callable[..., Any], status: str, ctype: str, body: bytes) -> list[bytes]:
    start(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]
