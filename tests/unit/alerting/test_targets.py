"""Webhook targets: the address checked is the address connected to, IPv4 carried in IPv6 is
judged as IPv4, DNS failures are retried and counted, and URL credentials never reach a log."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from monitor.alerting.actions import build_endpoints
from monitor.alerting.delivery import send_test
from monitor.alerting.standard_webhooks import WebhookEndpoint, validate_webhook_url
from monitor.alerting.targets import TargetRefusedError, pinned_client
from monitor.settings_loader import load_settings
from tests.support.receivers import WH_SECRET, Receiver

TOKEN = "tok-5ec7e7"


class Resolver:
    """Answers from a script, one answer per call (the last repeats); counts the calls."""

    def __init__(self, *answers: list[str] | OSError) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(answer, OSError):
            raise answer
        return answer


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::a00:5", "private"),  # local-use NAT64 of 10.0.0.5
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo client 127.0.0.1
    ],
)
def test_ipv4_carried_in_ipv6_is_judged_as_that_ipv4(address: str, kind: str) -> None:
    with pytest.raises(TargetRefusedError, match=f"{kind} address"):
        validate_webhook_url(f"http://[{address}]/h", allow_private=False)
    validate_webhook_url(f"http://[{address}]/h", allow_private=True)


@pytest.mark.parametrize("address", ["64:ff9b::5db8:d70e", "2002:5db8:d70e::1"])
def test_ipv6_carrying_a_public_ipv4_is_allowed(address: str) -> None:
    validate_webhook_url(f"http://[{address}]/h", allow_private=False)


def test_the_client_connects_to_the_resolved_address_and_keeps_the_name(
    scripted_receiver: Receiver,
) -> None:
    route = scripted_receiver.route("/x")
    resolve = Resolver(["127.0.0.1"])
    url = f"http://hooks.test:{scripted_receiver.port}/x"
    endpoint = WebhookEndpoint("m", url, (SecretStr(WH_SECRET),), allow_private=True)
    assert send_test(endpoint, resolve=resolve).status_code == 200
    assert resolve.calls == ["hooks.test"]
    assert route.attempts[0][1]["host"] == f"hooks.test:{scripted_receiver.port}"


@pytest.mark.parametrize("answer", [["127.0.0.1"], ["93.184.215.14", "127.0.0.1"]])
def test_a_name_resolving_to_a_private_address_is_never_connected_to(
    scripted_receiver: Receiver, answer: list[str]
) -> None:
    """One resolution per connection, every address checked before any connect: a name that
    rebinds to 127.0.0.1 between a check and a connect has no second lookup to win."""
    route = scripted_receiver.route("/x")
    resolve = Resolver(answer, ["127.0.0.1"])
    with (
        pinned_client(allow_private=False, resolve=resolve) as client,
        pytest.raises(TargetRefusedError, match=r"loopback address 127\.0\.0\.1"),
    ):
        client.post(f"http://rebind.test:{scripted_receiver.port}/x", content=b"{}")
    assert resolve.calls == ["rebind.test"]
    assert route.attempts == []


def test_the_dispatcher_refuses_a_rebinding_name_with_one_lookup_per_attempt(
    scripted_receiver: Receiver, make_dispatcher: Any, tmp_path: Path
) -> None:
    route = scripted_receiver.route("/x")
    resolve = Resolver(["127.0.0.1"])
    url = f"http://rebind.test:{scripted_receiver.port}/x"
    endpoint = WebhookEndpoint("m", url, (SecretStr(WH_SECRET),), allow_private=False)
    m = make_dispatcher(endpoint, resolve=resolve)
    m.dispatcher.enqueue(endpoint, "model.degraded", {})
    assert m.dispatcher.flush(5.0)
    assert route.attempts == [] and resolve.calls == ["rebind.test"]
    assert m.metric("modelmon_webhook_deliveries_total", model="m", outcome="failed") == 1


def test_dns_down_is_retried_counted_and_logged_until_it_resolves(
    scripted_receiver: Receiver, make_dispatcher: Any, caplog: pytest.LogCaptureFixture
) -> None:
    route = scripted_receiver.route("/x")
    down = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    resolve = Resolver(down, down, ["127.0.0.1"])
    url = f"http://hooks.test:{scripted_receiver.port}/x"
    endpoint = WebhookEndpoint("m", url, (SecretStr(WH_SECRET),), allow_private=True)
    with caplog.at_level(logging.WARNING, logger="monitor.alerting.delivery"):
        m = make_dispatcher(endpoint, resolve=resolve)
        m.dispatcher.enqueue(endpoint, "model.degraded", {})
        assert m.dispatcher.flush(5.0)
    assert len(route.accepted) == 1
    assert m.metric("modelmon_webhook_resolve_failures_total", model="m") == 2
    assert m.metric("modelmon_webhook_attempts_total", model="m") == 1
    retries = [r.getMessage() for r in caplog.records if "cannot resolve target" in r.getMessage()]
    assert len(retries) == 2


def test_dns_down_at_start_is_a_warning_not_a_config_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", down)
    url = f"https://u:{TOKEN}@retrain.example/hooks?sig={TOKEN}"
    settings = load_settings(
        None,
        overrides={
            "models": [
                {
                    "name": "fraud",
                    "features": {"amount": "numeric"},
                    "reference": {"bootstrap_events": 100},
                    "windows": [{"name": "5m", "length": "5m", "pane": "10s"}],
                    "webhook": {"url": url, "secret": "s"},
                }
            ]
        },
    )
    with caplog.at_level(logging.WARNING):
        assert set(build_endpoints(settings, {})) == {"fraud"}
    (line,) = [r.getMessage() for r in caplog.records]
    assert "does not resolve now" in line and "https://retrain.example/hooks" in line
    assert TOKEN not in line


def test_credentials_in_the_url_reach_no_log_line(
    scripted_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    scripted_receiver.route(f"/x?token={TOKEN}", WH_SECRET, (503, {}))
    url = f"http://user:{TOKEN}@127.0.0.1:{scripted_receiver.port}/x?token={TOKEN}"
    endpoint = WebhookEndpoint("m", url, (SecretStr(WH_SECRET),), allow_private=True)
    with caplog.at_level(logging.DEBUG):
        assert send_test(endpoint).status_code == 503
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("HTTP Request: POST") for m in messages)  # httpx's own line
    assert any(m.startswith("connect_tcp") for m in messages)  # and httpcore's
    assert not [m for m in messages if TOKEN in m]


def test_a_plain_httpx_client_would_leak_what_the_filter_removes(
    scripted_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The premise: httpx logs the full URL; the filter installed by the dispatcher hides it."""
    httpx_logger = logging.getLogger("httpx")
    kept = list(httpx_logger.filters)
    httpx_logger.filters.clear()
    try:
        with caplog.at_level(logging.INFO, logger="httpx"), httpx.Client() as client:
            client.get(f"http://127.0.0.1:{scripted_receiver.port}/x?token={TOKEN}")
    finally:
        httpx_logger.filters[:] = kept
    assert any(TOKEN in r.getMessage() for r in caplog.records)
