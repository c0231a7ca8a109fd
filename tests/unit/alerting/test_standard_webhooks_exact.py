"""The webhook protocol at its boundaries: default ports, retry limits, response classes."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from monitor.alerting.standard_webhooks import (
    USER_AGENT,
    Attempt,
    AttemptKind,
    RetryPolicy,
    WebhookEndpoint,
    build_body,
    classify_response,
    decode_secret,
    parse_retry_after,
    signed_headers,
    validate_webhook_url,
)


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("https://hooks.example/h", 443),
        ("HTTPS://Hooks.Example/h", 443),  # the scheme is case-insensitive (RFC 3986)
        ("http://hooks.example/h", 80),
        ("https://hooks.example:8443/h", 8443),
        ("http://hooks.example:81/h", 81),
    ],
)
def test_names_are_resolved_for_the_port_the_url_implies(url: str, port: int) -> None:
    asked: list[tuple[str, int]] = []

    def resolve(host: str, p: int) -> list[str]:
        asked.append((host, p))
        return ["93.184.215.14"]

    validate_webhook_url(url, allow_private=False, resolve=resolve)
    assert asked == [("hooks.example", port)]


def test_allow_private_looks_nothing_up() -> None:
    def resolve(host: str, port: int) -> list[str]:
        raise AssertionError("resolved")

    validate_webhook_url("https://hooks.example/h", allow_private=True, resolve=resolve)


def test_retry_policy_limits() -> None:
    RetryPolicy(schedule=(0.001,), max_age=0.001, jitter=0.0)
    RetryPolicy(jitter=0.999)
    with pytest.raises(
        ValueError, match=r"^retry schedule must be a non-empty list of positive delays$"
    ):
        RetryPolicy(schedule=())
    with pytest.raises(
        ValueError, match=r"^retry schedule must be a non-empty list of positive delays$"
    ):
        RetryPolicy(schedule=(5.0, 0.0))
    with pytest.raises(ValueError, match=r"^retry jitter must be in \[0, 1\)$"):
        RetryPolicy(jitter=1.0)
    with pytest.raises(ValueError, match=r"^retry jitter must be in \[0, 1\)$"):
        RetryPolicy(jitter=-0.01)
    with pytest.raises(ValueError, match=r"^retry max_age must be positive$"):
        RetryPolicy(max_age=0.0)


@pytest.mark.parametrize(
    ("status", "snippet", "kind", "detail"),
    [
        (200, "ok", AttemptKind.DELIVERED, "HTTP 200: 'ok'"),
        (204, "", AttemptKind.DELIVERED, "HTTP 204"),
        (299, "", AttemptKind.DELIVERED, "HTTP 299"),
        (
            300,
            "",
            AttemptKind.FAILED,
            "HTTP 300 (redirects are not followed; configure the final URL)",
        ),
        (
            301,
            "x",
            AttemptKind.FAILED,
            "HTTP 301: 'x' (redirects are not followed; configure the final URL)",
        ),
        (
            399,
            "",
            AttemptKind.FAILED,
            "HTTP 399 (redirects are not followed; configure the final URL)",
        ),
        (410, "bye", AttemptKind.GONE, "HTTP 410: 'bye'"),
        (429, "slow", AttemptKind.RETRY, "HTTP 429: 'slow'"),
        (503, "busy", AttemptKind.RETRY, "HTTP 503: 'busy'"),
        (400, "no", AttemptKind.FAILED, "HTTP 400: 'no'"),
        (500, "", AttemptKind.RETRY, "HTTP 500"),
        (501, "", AttemptKind.RETRY, "HTTP 501"),
    ],
)
def test_responses_are_classified_with_a_log_safe_detail(
    status: int, snippet: str, kind: AttemptKind, detail: str
) -> None:
    assert classify_response(status, None, snippet, now=0.0) == Attempt(kind, detail)


def test_a_retry_after_date_is_counted_from_now() -> None:
    date = "Thu, 01 Jan 1970 00:01:00 GMT"
    assert classify_response(503, date, "", now=30.0) == Attempt(
        AttemptKind.RETRY, "HTTP 503", 30.0
    )
    assert classify_response(429, "7", "", now=30.0).retry_after == 7.0


def test_a_retry_after_date_without_a_zone_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # a local zone must not shift it
    time.tzset()
    try:
        # RFC 5322's "-0000": UTC, no zone information (a naive datetime in Python)
        assert parse_retry_after("Thu, 01 Jan 1970 00:01:00 -0000", now=30.0) == 30.0
        assert parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=90.0) == 0.0
    finally:
        monkeypatch.undo()
        time.tzset()


def test_signed_headers_are_the_standard_webhooks_set_and_verify() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    now = int(time.time())  # the reference verifier allows 5 minutes of skew
    body = build_body("model.test", {"model": "fraud"}, now)
    headers = signed_headers([decode_secret(secret)], "mm_1", now, body)
    assert set(headers) == {
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    assert (headers["content-type"], headers["user-agent"]) == ("application/json", USER_AGENT)
    assert (headers["webhook-id"], headers["webhook-timestamp"]) == ("mm_1", str(now))
    # the reference implementation (the standardwebhooks package) accepts them
    event = Webhook(secret).verify(body, headers)
    assert (event["type"], event["data"]) == ("model.test", {"model": "fraud"})


def test_secrets_decode_with_or_without_base64_padding() -> None:
    assert decode_secret("whsec_aGVsbG8") == decode_secret("whsec_aGVsbG8=") == b"hello"
    assert decode_secret("whsec_aGk") == b"hi"  # two padding characters left out
    with pytest.raises(
        ValueError, match=r"^webhook secret starts with 'whsec_' but is not base64$"
    ):
        decode_secret("whsec_not*base64")
    with pytest.raises(ValueError, match=r"^webhook secret is empty$"):
        decode_secret("")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "webhook endpoint needs a name"),
        ({"secrets": ()}, "webhook endpoint 'fraud' needs at least one secret"),
        ({"timeout": 0.0}, "webhook endpoint 'fraud': timeout must be positive"),
    ],
)
def test_endpoint_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {
        "name": "fraud",
        "url": "https://hooks.example/h",
        "secrets": (SecretStr("whsec_aGVsbG8="),),
    }
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        WebhookEndpoint(**{**settings, **kwargs})
    assert WebhookEndpoint(**{**settings, "timeout": 0.001}).keys() == [b"hello"]
