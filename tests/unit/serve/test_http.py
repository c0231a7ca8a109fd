"""The HTTP endpoints: methods, HEAD, basic auth, TLS, and the connection limits.

Only 127.0.0.1. The limits are shown by events, not stopwatches: a silent client is closed by
the server (its read returns EOF), a slowloris is cut when the injected clock passes its
deadline, and a queued client is answered once a worker slot frees up.
"""

from __future__ import annotations

import base64
import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from monitor.serve.connections import WORKER_NAME
from monitor.serve.http import HttpServer
from monitor.serve.web_config import WebConfig, load_web_config
from monitor.settings import HttpSettings
from tests.support.tls import Pki, bcrypt_hash, make_pki, write_web_config
from tests.support.wait import wait_for

PASSWORD = "scrape-pw-123"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def serve() -> Iterator[Callable[..., HttpServer]]:
    started: list[HttpServer] = []

    def start(
        web: WebConfig | None = None, clock: Any = time.monotonic, **limits: Any
    ) -> HttpServer:
        registry = CollectorRegistry()
        Counter("modelmon_test_events", "a test counter", registry=registry).inc(3)
        server = HttpServer(
            registry,
            lambda: None,
            lambda: (True, "ok"),
            lambda: (False, "catching up"),
            HttpSettings(host="127.0.0.1", port=0, **limits),
            web=web or WebConfig(),
            clock=clock,
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def request(
    server: HttpServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    if context is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", server.port, timeout=10
        )
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10, context=context)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def raw_exchange(server: HttpServer, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes: everything it sent, body included."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# --- methods ----------------------------------------------------------------------------------


def test_get_serves_every_endpoint(serve: Callable[..., HttpServer]) -> None:
    server = serve()
    status, _, body = request(server, "GET", "/metrics")
    assert status == 200 and b"modelmon_test_events_total 3.0" in body
    assert request(server, "GET", "/healthz")[::2] == (200, b"ok\n")
    assert request(server, "GET", "/readyz")[::2] == (503, b"catching up\n")
    assert request(server, "GET", "/api/v1/status")[2] == b'{"ready":false,"snapshot":null}'
    assert request(server, "GET", "/")[0] == 200
    assert request(server, "GET", "/nope")[0] == 404


@pytest.mark.parametrize(
    ("accept", "path"),
    [
        ("text/plain", "/metrics"),
        ("application/openmetrics-text; version=1.0.0", "/metrics"),
        ("text/plain", "/metrics?name[]=modelmon_test_events_total"),
    ],
)
def test_metrics_carry_no_created_series(
    serve: Callable[..., HttpServer], accept: str, path: str
) -> None:
    status, _, body = request(serve(), "GET", path, headers={"Accept": accept})
    assert status == 200 and b"modelmon_test_events_total 3.0" in body
    # prometheus-client adds <counter>_created by default; /metrics drops them in any format
    assert b"_created" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/"])
def test_other_methods_get_405_with_allow(
    serve: Callable[..., HttpServer], method: str, path: str
) -> None:
    status, headers, body = request(serve(), method, path)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert body == b"method not allowed\n"


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/api/v1/status", "/"])
def test_head_gives_the_get_headers_without_a_body(
    serve: Callable[..., HttpServer], path: str
) -> None:
    server = serve()
    get = raw_exchange(server, f"GET {path} HTTP/1.0\r\n\r\n".encode())
    head = raw_exchange(server, f"HEAD {path} HTTP/1.0\r\n\r\n".encode())
    get_head, _, get_body = get.partition(b"\r\n\r\n")
    head_head, _, head_body = head.partition(b"\r\n\r\n")
    assert get_body and head_body == b""
    assert head_head.split(b"\r\n")[0] == get_head.split(b"\r\n")[0]  # same status line
    length = next(h for h in head_head.split(b"\r\n") if h.lower().startswith(b"content-length"))
    assert int(length.split(b":")[1]) == len(get_body)


# --- basic auth -------------------------------------------------------------------------------


@pytest.fixture
def auth_web() -> WebConfig:
    return WebConfig(users={"prometheus": bcrypt_hash(PASSWORD).encode()})


@pytest.mark.parametrize(
    "headers",
    [{}, basic("prometheus", "wrong"), basic("someone", PASSWORD), {"Authorization": "Bearer x"}],
    ids=["missing", "wrong password", "unknown user", "other scheme"],
)
@pytest.mark.parametrize("path", ["/metrics", "/api/v1/status", "/", "/nope"])
def test_without_the_right_password_401_with_a_challenge(
    serve: Callable[..., HttpServer], auth_web: WebConfig, headers: dict[str, str], path: str
) -> None:
    status, response_headers, body = request(serve(auth_web), "GET", path, headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == 'Basic realm="modelmon", charset="UTF-8"'
    assert b"modelmon" not in body and b"test_events" not in body


def test_with_the_right_password_200(serve: Callable[..., HttpServer], auth_web: WebConfig) -> None:
    server = serve(auth_web)
    status, _, body = request(server, "GET", "/metrics", basic("prometheus", PASSWORD))
    assert status == 200 and b"modelmon_test_events_total 3.0" in body
    assert request(server, "HEAD", "/metrics", basic("prometheus", PASSWORD))[0] == 200
    assert request(server, "POST", "/metrics", basic("prometheus", PASSWORD))[0] == 405
    assert request(server, "POST", "/metrics")[0] == 401, "no method is probed unauthenticated"


def test_health_probes_need_no_password(
    serve: Callable[..., HttpServer], auth_web: WebConfig
) -> None:
    server = serve(auth_web)
    assert request(server, "GET", "/healthz")[::2] == (200, b"ok\n")
    assert request(server, "GET", "/readyz")[::2] == (503, b"catching up\n")


# --- TLS --------------------------------------------------------------------------------------


def client_context(pki: Pki, cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return context


def tls_web(tmp_path: Path, pki: Pki, **tls: Any) -> WebConfig:
    config = {"cert_file": str(pki.cert), "key_file": str(pki.key), **tls}
    return load_web_config(
        write_web_config(
            tmp_path / "web.yml",
            {
                "tls_server_config": config,
                "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
            },
        )
    )


def test_tls_with_basic_auth(serve: Callable[..., HttpServer], tmp_path: Path, pki: Pki) -> None:
    server = serve(tls_web(tmp_path, pki))
    ctx = client_context(pki)
    status, _, body = request(server, "GET", "/metrics", basic("prometheus", PASSWORD), ctx)
    assert status == 200 and b"modelmon_test_events_total 3.0" in body
    assert request(server, "GET", "/metrics", basic("prometheus", "nope"), ctx)[0] == 401
    # A plain-HTTP client gets no answer from the TLS port, and the server carries on.
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        request(server, "GET", "/healthz")
    assert request(server, "GET", "/healthz", context=ctx)[0] == 200


def test_client_certificates_when_required(
    serve: Callable[..., HttpServer], tmp_path: Path, pki: Pki
) -> None:
    web = tls_web(
        tmp_path, pki, client_ca_file=str(pki.ca), client_auth_type="RequireAndVerifyClientCert"
    )
    server = serve(web)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(server, "GET", "/healthz", context=client_context(pki))
    assert request(server, "GET", "/healthz", context=client_context(pki, cert=True))[0] == 200


# --- connection limits ------------------------------------------------------------------------


def closed_by_server(s: socket.socket) -> bool:
    """The server closed the connection: a read returns EOF (or a reset), not a timeout."""
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_a_silent_client_is_closed_after_the_idle_timeout(
    serve: Callable[..., HttpServer],
) -> None:
    server = serve(idle_timeout=0.2, request_timeout=300)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        assert closed_by_server(s)
    wait_for(lambda: server._server.active == 0, 10.0, "the worker to end", every=0.01)


def test_a_silent_tls_client_is_closed_and_never_blocks_the_accept_loop(
    serve: Callable[..., HttpServer], tmp_path: Path, pki: Pki
) -> None:
    server = serve(tls_web(tmp_path, pki), idle_timeout=0.5, max_connections=2)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as silent:
        wait_for(lambda: server._server.active == 1, 10.0, "the silent client accepted", every=0.01)
        assert request(server, "GET", "/healthz", context=client_context(pki))[0] == 200
        assert closed_by_server(silent)  # its handshake never came


def test_a_slowloris_is_cut_at_the_request_deadline(serve: Callable[..., HttpServer]) -> None:
    clock = FakeClock()
    server = serve(clock=clock, idle_timeout=300, request_timeout=5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        wait_for(lambda: server._server.active == 1, 10.0, "the connection accepted", every=0.01)
        for header in (b"X-A: 1\r\n", b"X-B: 2\r\n"):  # a byte now and then: never idle
            s.sendall(header)
        assert select.select([s], [], [], 0.2)[0] == [], "still open before the deadline"
        clock.now += 5
        assert closed_by_server(s)
    wait_for(lambda: server._server.active == 0, 10.0, "the worker to end", every=0.01)


def workers() -> int:
    return sum(t.name == WORKER_NAME for t in threading.enumerate())


def test_at_most_max_connections_workers_the_rest_wait(serve: Callable[..., HttpServer]) -> None:
    server = serve(idle_timeout=300, request_timeout=300, max_connections=2)
    before = workers()
    holders = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(2)]
    wait_for(lambda: server._server.active == 2, 10.0, "both holders accepted", every=0.01)
    waiting = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(8)]
    for s in waiting:
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    try:
        ready, _, _ = select.select(waiting, [], [], 0.3)
        assert ready == [], "no answer while every worker is busy"
        assert server._server.active == 2 and workers() - before <= 2
        holders[0].close()  # a slot frees up: the waiting clients are served, two at a time
        for s in waiting:
            s.settimeout(10)
            assert s.recv(64).startswith(b"HTTP/1.0 200")
            assert workers() - before <= 2
    finally:
        for s in [*holders, *waiting]:
            s.close()
