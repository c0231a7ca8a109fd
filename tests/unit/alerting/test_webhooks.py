"""Webhook signing, outbox durability, retries and target policy, against a real HTTP receiver.

The receiver is a ``ThreadingHTTPServer`` on 127.0.0.1 that verifies every request with the
independent ``standardwebhooks`` package and follows a per-path script of responses. Retry
schedules are scaled down to tens of milliseconds; nothing here sleeps for long.
"""

from __future__ import annotations

import base64
import email.utils
import itertools
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from standardwebhooks.webhooks import WebhookVerificationError

from monitor.alerting.delivery import send_test
from monitor.alerting.outbox import Outbox, OutboxEntry
from monitor.alerting.standard_webhooks import (
    RetryPolicy,
    WebhookEndpoint,
    build_body,
    decode_secret,
    parse_retry_after,
    sign,
    signed_headers,
    validate_webhook_url,
)
from tests.support import REPO_ROOT
from tests.support.receivers import FAST, WH_SECRET, Receiver, verifier
from tests.support.wait import wait_for

RAW_SECRET = "raw-secret-not-base64!"
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
EXAMPLE = REPO_ROOT / "deploy" / "examples" / "webhook_receiver.py"


def dead_entries(tmp_path: Path) -> list[OutboxEntry]:
    dead = sorted((tmp_path / "outbox" / "dead").glob("*.json"))
    return [OutboxEntry.from_json(p.read_bytes()) for p in dead]


# --- signing ---------------------------------------------------------------------------------


def test_sign_matches_the_standard_webhooks_test_vector() -> None:
    key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    sig = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("secret", [RAW_SECRET, WH_SECRET], ids=["raw", "whsec"])
def test_signature_verifies_with_standardwebhooks(secret: str) -> None:
    body = build_body("model.degraded", {"model": "fraud", "psi": 0.31}, time.time())
    headers = signed_headers([decode_secret(secret)], "msg_1", int(time.time()), body)
    assert headers["content-type"] == "application/json"
    assert verifier(secret).verify(body, headers)["data"] == {"model": "fraud", "psi": 0.31}


def test_rotation_signs_with_both_secrets() -> None:
    body = b'{"type":"model.test"}'
    keys = [decode_secret(WH_SECRET), decode_secret(OTHER_SECRET)]
    headers = signed_headers(keys, "msg_rot", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (WH_SECRET, OTHER_SECRET):
        verifier(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        verifier(RAW_SECRET).verify(body, headers)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=300).map(lambda b: orjson.dumps(b.hex())),
    msg_id=st.from_regex(r"msg_[A-Za-z0-9]{1,40}", fullmatch=True),
)
def test_signature_round_trip_property(body: bytes, msg_id: str) -> None:
    headers = signed_headers([decode_secret(WH_SECRET)], msg_id, int(time.time()), body)
    verifier(WH_SECRET).verify(body, headers)


def test_receiver_rejects_tampered_body_and_old_timestamp(scripted_receiver: Receiver) -> None:
    route = scripted_receiver.route("/sig")
    key = decode_secret(WH_SECRET)
    body = build_body("model.test", {"model": "m"}, time.time())
    now = int(time.time())
    with httpx.Client() as client:
        ok = client.post(
            scripted_receiver.url("/sig"),
            content=body,
            headers=signed_headers([key], "a", now, body),
        )
        tampered = client.post(
            scripted_receiver.url("/sig"),
            content=body.replace(b'"m"', b'"x"'),
            headers=signed_headers([key], "b", now, body),
        )
        old = client.post(
            scripted_receiver.url("/sig"),
            content=body,
            headers=signed_headers([key], "c", now - 600, body),
        )
    assert (ok.status_code, tampered.status_code, old.status_code) == (200, 401, 401)
    assert route.accepted == ["a"]
    assert route.rejected == ["No matching signature found", "Message timestamp too old"]


def test_secrets_and_endpoint_validation() -> None:
    with pytest.raises(ValueError, match="not base64") as info:
        decode_secret("whsec_%%%secretstuff")
    assert "secretstuff" not in str(info.value)
    with pytest.raises(ValueError, match="empty"):
        decode_secret("")
    with pytest.raises(ValueError, match="at least one secret"):
        WebhookEndpoint("m", "https://example.com/h", ())
    with pytest.raises(ValueError, match="scheme 'ftp'"):
        WebhookEndpoint("m", "ftp://example.com/h", (SecretStr("s"),))
    endpoint = WebhookEndpoint("m", "https://example.com/h", (SecretStr("hunter2"),))
    assert "hunter2" not in repr(endpoint)


def test_body_is_serialised_once_with_rfc3339_time() -> None:
    body = build_body("model.recovered", {"kafka": {0: [1, 2]}}, 1795000000.9)
    assert orjson.loads(body) == {
        "type": "model.recovered",
        "timestamp": "2026-11-18T11:06:40Z",
        "data": {"kafka": {"0": [1, 2]}},
    }
    with pytest.raises(ValueError, match="unknown webhook event type"):
        build_body("model.exploded", {}, 0.0)


# --- delivery and retries --------------------------------------------------------------------


def record_reschedules(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float, float]]:
    """Spy on :meth:`Outbox.reschedule`: (failed attempts so far, delay, monotonic due time)."""
    calls: list[tuple[int, float, float]] = []
    real = Outbox.reschedule

    def spy(self: Outbox, entry: OutboxEntry, delay: float) -> None:
        calls.append((entry.attempts, delay, time.monotonic() + delay))
        real(self, entry, delay)

    monkeypatch.setattr(Outbox, "reschedule", spy)
    return calls


def test_503_three_times_then_200_follows_schedule(
    scripted_receiver: Receiver, make_dispatcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rescheduled = record_reschedules(monkeypatch)
    route = scripted_receiver.route("/r", WH_SECRET, *[(503, {})] * 3)
    endpoint = scripted_receiver.endpoint("fraud", "/r")
    m = make_dispatcher(endpoint, retry=FAST, rng=random.Random(1234))
    msg_id = m.dispatcher.enqueue(endpoint, "model.degraded", {"model": "fraud"})
    assert m.dispatcher.flush(5.0)

    assert route.accepted == [msg_id]
    assert route.attempt_ids == [msg_id] * 4
    assert len({body for _, _, body in route.attempts}) == 1  # same bytes every attempt
    # The delay after the n-th failure is schedule[n-1] with its own jitter draw, in order: an
    # independent replay of the seeded jitter. FAST's steps are 2x apart and its jitter 10 %, so
    # a delay taken from a neighbouring step (the next or previous failure's) cannot match.
    draws = random.Random(1234)
    expected = [s * (1 + draws.uniform(-FAST.jitter, FAST.jitter)) for s in FAST.schedule]
    assert [n for n, _, _ in rescheduled] == [1, 2, 3]
    assert [d for _, d, _ in rescheduled] == pytest.approx(expected, rel=1e-12)
    for (_, delay, _), scheduled in zip(rescheduled, FAST.schedule, strict=True):
        assert scheduled * (1 - FAST.jitter) <= delay <= scheduled * (1 + FAST.jitter)
    # ... and each retry was sent no earlier than it was due.
    times = [t for t, _, _ in route.attempts]
    for (_, _, due), (before, sent) in zip(rescheduled, itertools.pairwise(times), strict=True):
        assert before < due <= sent
    for _, headers, _ in route.attempts:
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5

    assert m.metric("modelmon_webhook_deliveries_total", model="fraud", outcome="delivered") == 1
    assert m.metric("modelmon_webhook_deliveries_total", model="fraud", outcome="retry") == 3
    assert m.metric("modelmon_webhook_deliveries_total", model="fraud", outcome="failed") == 0
    assert m.metric("modelmon_webhook_attempts_total", model="fraud") == 4
    assert m.metric("modelmon_webhook_outbox_size") == 0
    last = m.metric("modelmon_webhook_last_success_timestamp_seconds", model="fraud")
    assert last is not None and abs(last - time.time()) < 5


def test_retry_after_is_a_lower_bound(scripted_receiver: Receiver, make_dispatcher: Any) -> None:
    route = scripted_receiver.route("/ra", WH_SECRET, (429, {"retry-after": "1"}))
    endpoint = scripted_receiver.endpoint("m", "/ra")
    m = make_dispatcher(endpoint)
    m.dispatcher.enqueue(endpoint, "model.degraded", {})
    assert m.dispatcher.flush(5.0)
    (first, _, _), (second, _, _) = route.attempts
    assert second - first >= 1.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7", now=0.0) == 7.0
    date = email.utils.formatdate(1000.0, usegmt=True)
    assert parse_retry_after(date, now=990.0) == 10.0
    assert parse_retry_after(date, now=2000.0) == 0.0
    assert parse_retry_after("-3", now=0.0) is None
    assert parse_retry_after(None, now=0.0) is None


def test_default_schedule_is_hourly_after_an_hour() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n, None) for n in range(1, 9)] == [5, 30, 120, 600, 1800, 3600, 3600, 3600]
    rng = random.Random(0)
    assert all(4.0 <= policy.delay(1, rng) <= 6.0 for _ in range(100))
    assert policy.max_age == 24 * 3600


def test_410_disables_endpoint_and_dead_letters_its_events(
    scripted_receiver: Receiver,
    make_dispatcher: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = scripted_receiver.route("/gone", WH_SECRET, (410, {}))
    scripted_receiver.route("/new")
    endpoint = scripted_receiver.endpoint("churn", "/gone")
    m = make_dispatcher(endpoint, start=False)
    ids = [m.dispatcher.enqueue(endpoint, "model.degraded", {"n": i}) for i in range(3)]
    assert m.metric("modelmon_webhook_outbox_size") == 3
    m.dispatcher.start()
    assert m.dispatcher.flush(5.0)
    later = m.dispatcher.enqueue(endpoint, "model.recovered", {})
    assert m.dispatcher.flush(5.0)

    assert route.attempt_ids == [ids[0]]  # one request, then nothing more to a gone endpoint
    dead = dead_entries(tmp_path)
    assert [e.id for e in dead] == [*ids, later]
    assert all("disabled" in (e.dead_reason or "") for e in dead)
    assert m.metric("modelmon_webhook_deliveries_total", model="churn", outcome="disabled") == 4
    assert m.metric("modelmon_webhook_attempts_total", model="churn") == 1
    assert any(
        r.levelno == logging.ERROR and "disabled by HTTP 410" in r.message for r in caplog.records
    )

    moved = scripted_receiver.endpoint("churn", "/new")  # a new URL re-enables it
    fresh = m.dispatcher.enqueue(moved, "model.test", {})
    assert m.dispatcher.flush(5.0)
    assert scripted_receiver.routes["/new"].accepted == [fresh]


def test_other_4xx_is_permanent_and_the_queue_moves_on(
    scripted_receiver: Receiver,
    make_dispatcher: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = scripted_receiver.route("/bad", WH_SECRET, (400, {}))
    endpoint = scripted_receiver.endpoint("m", "/bad")
    m = make_dispatcher(endpoint, start=False)
    first = m.dispatcher.enqueue(endpoint, "model.degraded", {})
    second = m.dispatcher.enqueue(endpoint, "model.recovered", {})
    m.dispatcher.start()
    assert m.dispatcher.flush(5.0)
    assert route.attempt_ids == [first, second]
    assert route.accepted == [second]
    (dead,) = dead_entries(tmp_path)
    assert dead.id == first and dead.attempts == 1 and "HTTP 400" in (dead.dead_reason or "")
    assert m.metric("modelmon_webhook_deliveries_total", model="m", outcome="failed") == 1
    assert any("failed permanently" in r.message for r in caplog.records if r.levelno >= 40)


def test_a_hanging_endpoint_does_not_block_another(
    scripted_receiver: Receiver, make_dispatcher: Any
) -> None:
    slow_route = scripted_receiver.route("/slow", WH_SECRET, ("hang", 5.0))
    fast_route = scripted_receiver.route("/fast", RAW_SECRET)
    slow = scripted_receiver.endpoint("slow", "/slow", timeout=1.0)
    fast = scripted_receiver.endpoint("fast", "/fast")
    m = make_dispatcher(slow, fast, start=False)
    s_ids = [m.dispatcher.enqueue(slow, "model.degraded", {"i": i}) for i in range(2)]
    f_ids = [m.dispatcher.enqueue(fast, "model.degraded", {"i": i}) for i in range(3)]
    m.dispatcher.start()
    wait_for(lambda: len(fast_route.accepted) == 3, every=0.01)
    assert slow_route.attempt_ids == [s_ids[0]]  # all while the slow one is still hanging
    assert fast_route.accepted == f_ids
    assert slow_route.accepted == []
    assert m.dispatcher.flush(5.0)
    assert slow_route.attempt_ids == [s_ids[0], s_ids[0], s_ids[1]]  # FIFO held behind the head
    assert slow_route.accepted == s_ids
    assert m.metric("modelmon_webhook_deliveries_total", model="slow", outcome="retry") == 1


def test_events_expire_into_dead_after_max_age(
    scripted_receiver: Receiver, make_dispatcher: Any, tmp_path: Path
) -> None:
    route = scripted_receiver.route("/down", WH_SECRET, *[(503, {})] * 100)
    endpoint = scripted_receiver.endpoint("m", "/down")
    # Wall time advances 0.1 s with each attempt the receiver records (before it answers), so
    # expiry does not depend on how fast this machine is: after attempt n the next would be due
    # at 0.1 n + 0.05, past max_age 0.33 from the third attempt on.
    started = time.time()
    m = make_dispatcher(
        endpoint,
        retry=RetryPolicy(schedule=(0.05,), max_age=0.33, jitter=0.0),
        wall=lambda: started + 0.1 * len(route.attempts),
    )
    msg_id = m.dispatcher.enqueue(endpoint, "model.degraded", {})
    assert m.dispatcher.flush(5.0)
    (dead,) = dead_entries(tmp_path)
    assert dead.id == msg_id and "expired" in (dead.dead_reason or "")
    assert len(route.attempts) == 3
    assert m.metric("modelmon_webhook_deliveries_total", model="m", outcome="expired") == 1


def test_target_policy_is_enforced_at_delivery(
    scripted_receiver: Receiver, make_dispatcher: Any, tmp_path: Path
) -> None:
    route = scripted_receiver.route("/private")
    endpoint = scripted_receiver.endpoint("m", "/private", allow_private=False)
    m = make_dispatcher(endpoint)
    m.dispatcher.enqueue(endpoint, "model.degraded", {})
    assert m.dispatcher.flush(5.0)
    assert route.attempts == []
    (dead,) = dead_entries(tmp_path)
    assert "loopback" in (dead.dead_reason or "")
    assert m.metric("modelmon_webhook_attempts_total", model="m") == 0


def test_send_test_is_one_signed_attempt_without_outbox(scripted_receiver: Receiver) -> None:
    route = scripted_receiver.route("/test", RAW_SECRET, (503, {}))
    response = send_test(scripted_receiver.endpoint("m", "/test"))
    assert response.status_code == 503
    assert len(route.attempts) == 1
    assert orjson.loads(route.attempts[0][2])["type"] == "model.test"


# --- durability ------------------------------------------------------------------------------


def test_restart_resumes_pending_deliveries_in_order(tmp_path: Path, make_dispatcher: Any) -> None:
    scripted_receiver = Receiver()  # bound but not listening: connections are refused
    try:
        route = scripted_receiver.route("/later")
        endpoint = scripted_receiver.endpoint("fraud", "/later")
        first = make_dispatcher(endpoint)
        ids = [first.dispatcher.enqueue(endpoint, "model.degraded", {"i": i}) for i in range(2)]
        wait_for(
            lambda: (
                (
                    first.metric(
                        "modelmon_webhook_deliveries_total", model="fraud", outcome="retry"
                    )
                    or 0
                )
                >= 2
            ),
            every=0.01,
        )
        assert first.dispatcher.stop(5.0)
        stored = sorted((tmp_path / "outbox").glob("*.json"))
        entries = [OutboxEntry.from_json(p.read_bytes()) for p in stored]
        assert [e.id for e in entries] == ids
        assert entries[0].attempts >= 2 and entries[0].url == endpoint.url
        assert "ConnectError" in (entries[0].last_error or "")
        assert WH_SECRET not in "".join(p.read_text() for p in stored)

        scripted_receiver.up()
        second = make_dispatcher(endpoint, start=False)
        assert second.dispatcher.pending() == 2
        assert second.metric("modelmon_webhook_outbox_size") == 2
        second.dispatcher.start()
        assert second.dispatcher.flush(5.0)
        assert route.accepted == ids
        assert list((tmp_path / "outbox").glob("*.json")) == []
    finally:
        scripted_receiver.close()


def test_an_outbox_directory_has_one_owner(make_dispatcher: Any) -> None:
    make_dispatcher(start=False)
    with pytest.raises(RuntimeError, match="in use"):
        make_dispatcher(start=False)


def test_entry_older_than_max_age_is_tried_once_after_restart(
    scripted_receiver: Receiver, make_dispatcher: Any, tmp_path: Path
) -> None:
    route = scripted_receiver.route("/x", WH_SECRET, (503, {}))
    endpoint = scripted_receiver.endpoint("m", "/x")
    first = make_dispatcher(endpoint, start=False)
    msg_id = first.dispatcher.enqueue(endpoint, "model.degraded", {})
    assert first.dispatcher.stop()
    (path,) = (tmp_path / "outbox").glob("*.json")
    record = orjson.loads(path.read_bytes())
    record["created_at"] -= 25 * 3600  # the daemon was down for a day
    path.write_bytes(orjson.dumps(record))
    second = make_dispatcher(endpoint, retry=RetryPolicy())
    assert second.dispatcher.flush(5.0)
    assert route.attempt_ids == [msg_id]
    assert "expired" in (dead_entries(tmp_path)[0].dead_reason or "")


def test_writes_are_atomic(
    tmp_path: Path, make_dispatcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = WebhookEndpoint("m", "https://example.com/h", (SecretStr("s"),))
    m = make_dispatcher(start=False)
    outbox = tmp_path / "outbox"
    stop = threading.Event()
    problems: list[str] = []

    def observe() -> None:
        while not stop.is_set():
            for path in outbox.glob("[0-9]*.json"):
                try:
                    OutboxEntry.from_json(path.read_bytes())
                except FileNotFoundError:
                    pass
                except ValueError as exc:
                    problems.append(f"{path.name}: {exc}")

    watcher = threading.Thread(target=observe)
    watcher.start()
    try:
        for i in range(150):
            m.dispatcher.enqueue(endpoint, "model.degraded", {"i": i, "pad": "x" * 2000})
    finally:
        stop.set()
        watcher.join()
    assert problems == []

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        m.dispatcher.enqueue(endpoint, "model.degraded", {})
    monkeypatch.undo()
    assert m.dispatcher.pending() == 150
    assert len(list(outbox.glob("*.json"))) == 150
    assert [p.name for p in outbox.iterdir() if p.name.startswith(".tmp-")] == []


def test_corrupt_and_stale_files_are_moved_aside(
    scripted_receiver: Receiver,
    make_dispatcher: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = scripted_receiver.route("/c")
    endpoint = scripted_receiver.endpoint("m", "/c")
    first = make_dispatcher(start=False)
    good = first.dispatcher.enqueue(endpoint, "model.degraded", {})
    assert first.dispatcher.stop()
    outbox = tmp_path / "outbox"
    (outbox / "000000000007-msg_bad.json").write_bytes(b'{"format": 1, "id": "msg_bad", "se')
    (outbox / "000000000008-msg_typo.json").write_bytes(b'{"format": 1, "id": 8}')
    (outbox / ".tmp-000000000009-msg_x.json").write_bytes(b"{")

    second = make_dispatcher(endpoint)
    assert second.dispatcher.flush(5.0)
    assert route.accepted == [good]
    corrupt = sorted(p.name for p in (outbox / "dead").iterdir())
    assert corrupt == ["000000000007-msg_bad.json.corrupt", "000000000008-msg_typo.json.corrupt"]
    assert not (outbox / ".tmp-000000000009-msg_x.json").exists()
    assert sum("corrupt webhook outbox entry" in r.message for r in caplog.records) == 2


def test_event_id_makes_enqueue_idempotent_while_pending(make_dispatcher: Any) -> None:
    endpoint = WebhookEndpoint("m", "https://example.com/h", (SecretStr("s"),))
    m = make_dispatcher(start=False)
    assert (
        m.dispatcher.enqueue(endpoint, "model.degraded", {}, event_id="fraud-1h-42")
        == "fraud-1h-42"
    )
    m.dispatcher.enqueue(endpoint, "model.degraded", {}, event_id="fraud-1h-42")
    assert m.dispatcher.pending() == 1
    with pytest.raises(ValueError, match="event_id"):
        m.dispatcher.enqueue(endpoint, "model.degraded", {}, event_id="../etc/passwd")


# --- target validation -----------------------------------------------------------------------


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no lookup expected")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8080/h", "loopback"),
        ("http://10.2.3.4/h", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://0.0.0.0/h", "unspecified"),
        ("http://[::1]/h", "loopback"),
        ("http://[::ffff:127.0.0.1]/h", "loopback"),
        ("http://100.64.1.1/h", "non-global"),
    ],
)
def test_non_public_literals_need_allow_private(url: str, problem: str, no_dns: None) -> None:
    with pytest.raises(ValueError, match=problem):
        validate_webhook_url(url, allow_private=False)
    validate_webhook_url(url, allow_private=True)


def test_localhost_is_refused_without_allow_private() -> None:
    with pytest.raises(ValueError, match="loopback"):
        validate_webhook_url("http://localhost:9000/h", allow_private=False)
    validate_webhook_url("http://localhost:9000/h", allow_private=True)


def test_scheme_and_public_targets(no_dns: None) -> None:
    for url in ("ftp://example.com/h", "file:///etc/passwd", "gopher://1.1.1.1/"):
        with pytest.raises(ValueError, match="scheme"):
            validate_webhook_url(url, allow_private=True)
    with pytest.raises(ValueError, match="no host"):
        validate_webhook_url("https:///h", allow_private=True)
    validate_webhook_url("https://93.184.215.14/hook", allow_private=False)
    validate_webhook_url("https://[2606:4700:4700::1111]/hook", allow_private=False)


def test_names_are_checked_by_every_resolved_address(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"ok.example": ["93.184.215.14"], "mixed.example": ["93.184.215.14", "10.0.0.5"]}

    def fake_getaddrinfo(host: str, port: int, **kw: object) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    validate_webhook_url("https://ok.example/h", allow_private=False)
    with pytest.raises(
        ValueError, match=r"'mixed.example' resolves to private address 10\.0\.0\.5"
    ):
        validate_webhook_url("https://mixed.example/h", allow_private=False)


# --- the example receiver --------------------------------------------------------------------


def test_example_receiver_verifies_dedupes_and_prints(make_dispatcher: Any) -> None:
    command = [sys.executable, "-u", str(EXAMPLE), "--host", "127.0.0.1", "--port", "0"]
    with subprocess.Popen(
        [*command, "--secret", WH_SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            url = proc.stderr.readline().split()[-1]
            assert url.startswith("http://127.0.0.1:")
            endpoint = WebhookEndpoint("fraud", url, (SecretStr(WH_SECRET),), allow_private=True)
            m = make_dispatcher(endpoint)
            msg_id = m.dispatcher.enqueue(endpoint, "model.degraded", {"model": "fraud"})
            assert m.dispatcher.flush(5.0)
            body = build_body("model.degraded", {"model": "fraud"}, time.time())
            key = decode_secret(WH_SECRET)
            with httpx.Client() as client:
                again = client.post(
                    url, content=body, headers=signed_headers([key], msg_id, int(time.time()), body)
                )
                forged = client.post(
                    url,
                    content=body,
                    headers=signed_headers([b"wrong"], "x", int(time.time()), body),
                )
            assert (again.status_code, forged.status_code) == (200, 401)
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=5)
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == [
        {
            "webhook_id": msg_id,
            "event": {
                "type": "model.degraded",
                "timestamp": lines[0]["event"]["timestamp"],
                "data": {"model": "fraud"},
            },
        }
    ]
    assert "duplicate" in err and "bad signature" in err
