"""The HTTP endpoints' answers: readiness and liveness as they change, exact 404s, the
exposition format by ``Accept``, and scrapes served side by side (shown by a collector that
waits until every scrape is inside it, not by a stopwatch)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterable, Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.serve.http import HttpServer
from monitor.serve.web_config import WebConfig
from monitor.settings import HttpSettings


class Health:
    """A probe the test flips: (ok, why)."""

    def __init__(self, ok: bool, why: str) -> None:
        self.ok, self.why = ok, why

    def __call__(self) -> tuple[bool, str]:
        return self.ok, self.why


def get(
    server: HttpServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture
def started() -> Iterator[list[HttpServer]]:
    servers: list[HttpServer] = []
    yield servers
    for s in servers:
        s.stop()


def make(
    started: list[HttpServer],
    registry: CollectorRegistry | None = None,
    live: Health | None = None,
    ready: Health | None = None,
    max_connections: int = 8,
) -> HttpServer:
    if registry is None:
        registry = CollectorRegistry()
        Counter("modelmon_test_events", "a test counter", registry=registry).inc(3)
    server = HttpServer(
        registry,
        lambda: None,
        live or Health(True, "ok"),
        ready or Health(True, "ready"),
        HttpSettings(host="127.0.0.1", port=0, max_connections=max_connections),
        web=WebConfig(),
    )
    server.start()
    started.append(server)
    return server


def test_readyz_and_healthz_follow_their_probes_each_on_its_own(
    started: list[HttpServer],
) -> None:
    live, ready = Health(True, "ok"), Health(False, "catching up")
    server = make(started, live=live, ready=ready)
    status, headers, body = get(server, "/readyz")
    assert (status, body) == (503, b"catching up\n")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert get(server, "/healthz")[::2] == (200, b"ok\n")
    assert get(server, "/api/v1/status")[2] == b'{"ready":false,"snapshot":null}'
    ready.ok, ready.why = True, "ready"
    assert get(server, "/readyz")[::2] == (200, b"ready\n")
    assert get(server, "/api/v1/status")[2] == b'{"ready":true,"snapshot":null}'
    live.ok, live.why = False, "consume loop stalled for 120s"
    assert get(server, "/healthz")[::2] == (503, b"consume loop stalled for 120s\n")
    assert get(server, "/readyz")[::2] == (200, b"ready\n")


@pytest.mark.parametrize(
    "path", ["/nope", "/metrics/", "/healthz/", "/readyz/x", "/api/v1/status/", "/api/v1"]
)
def test_anything_but_the_exact_paths_is_404(started: list[HttpServer], path: str) -> None:
    status, headers, body = get(make(started), path)
    assert (status, body) == (404, b"not found\n")
    assert headers["Content-Type"] == "text/plain"
    assert headers["Content-Length"] == str(len(b"not found\n"))


def test_openmetrics_is_served_when_asked_for_and_the_text_format_otherwise(
    started: list[HttpServer],
) -> None:
    server = make(started)
    accept = {"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"}
    status, headers, body = get(server, "/metrics", accept)
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")
    assert b"# TYPE modelmon_test_events counter\n" in body
    assert b"modelmon_test_events_total 3.0\n" in body
    for headers_sent in ({}, {"Accept": "text/plain"}):
        status, headers, body = get(server, "/metrics", headers_sent)
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"# EOF" not in body
        assert b"# TYPE modelmon_test_events_total counter\n" in body


class Rendezvous(Collector):
    """Each scrape waits inside collect() until ``parties`` scrapes are there at once."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=20)
        self.calls = 0
        self.lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        self.barrier.wait()  # broken (-> no metric, a 500) if scrapes were served one by one
        with self.lock:
            self.calls += 1
        yield GaugeMetricFamily("modelmon_test_rendezvous", "scrapes met", value=1)


def test_concurrent_scrapes_are_served_side_by_side_each_complete(
    started: list[HttpServer],
) -> None:
    parties = 4
    registry = CollectorRegistry()
    Counter("modelmon_test_events", "a test counter", registry=registry).inc(3)
    rendezvous = Rendezvous(parties)
    registry.register(rendezvous)
    rendezvous.calls = 0  # register() may describe via collect(); only scrapes count
    server = make(started, registry=registry, max_connections=parties)
    results: list[tuple[int, dict[str, str], bytes]] = []
    lock = threading.Lock()

    def scrape() -> None:
        r = get(server, "/metrics")
        with lock:
            results.append(r)

    threads = [threading.Thread(target=scrape) for _ in range(parties)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not rendezvous.barrier.broken
    assert [r[0] for r in results] == [200] * parties
    bodies = {r[2] for r in results}
    assert len(bodies) == 1, "every scrape sees the same, complete exposition"
    (body,) = bodies
    assert b"modelmon_test_rendezvous 1.0\n" in body
    assert b"modelmon_test_events_total 3.0\n" in body
    assert rendezvous.calls == parties
