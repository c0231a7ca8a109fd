"""Basic auth: bcrypt hashes, a bounded cache of successes, nothing cached for failures."""

from __future__ import annotations

import base64

import bcrypt
import pytest

from monitor.serve import basic_auth
from monitor.serve.basic_auth import BasicAuth
from tests.support.tls import bcrypt_hash


def hashed(password: str) -> bytes:
    return bcrypt_hash(password).encode()


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The passwords bcrypt was asked to check, in order."""
    seen: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        seen.append(password)
        return real(password, hashed)

    monkeypatch.setattr(basic_auth.bcrypt, "checkpw", counting)
    return seen


def test_the_right_password_passes_anything_else_fails() -> None:
    auth = BasicAuth({"prometheus": hashed("right"), "alice": hashed("pw:with:colons")})
    assert auth.check(header("prometheus", "right"))
    assert auth.check(header("alice", "pw:with:colons"))
    assert not auth.check(header("prometheus", "wrong"))
    assert not auth.check(header("prometheus", ""))
    assert not auth.check(header("alice", "right"))  # another user's password
    assert not auth.check(header("mallory", "right"))  # unknown user
    assert not auth.check(header("prometheus", "right" + "x" * 80))  # over bcrypt's 72 bytes


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ],
)
def test_malformed_headers_fail(value: str | None) -> None:
    assert not BasicAuth({"prometheus": hashed("right")}).check(value)


def test_scheme_is_case_insensitive() -> None:
    auth = BasicAuth({"prometheus": hashed("right")})
    assert auth.check(header("prometheus", "right").replace("Basic", "basic"))


def test_a_success_is_cached_so_scrapes_skip_bcrypt(checks: list[bytes]) -> None:
    auth = BasicAuth({"prometheus": hashed("right")})
    for _ in range(5):
        assert auth.check(header("prometheus", "right"))
    assert checks == [b"right"]
    assert auth.cached == 1


def test_failures_are_never_cached(checks: list[bytes]) -> None:
    auth = BasicAuth({"prometheus": hashed("right")})
    for _ in range(3):
        assert not auth.check(header("prometheus", "wrong"))
    assert checks == [b"wrong"] * 3
    assert auth.cached == 0


def test_unknown_users_still_pay_a_bcrypt_check(checks: list[bytes]) -> None:
    auth = BasicAuth({"prometheus": hashed("right")})
    assert not auth.check(header("mallory", "guess"))
    assert checks == [b"guess"], "same work as a known user: the timing tells no user names"


def test_the_cache_is_bounded_least_recently_used_first(checks: list[bytes]) -> None:
    users = {f"u{i}": hashed(f"p{i}") for i in range(3)}
    auth = BasicAuth(users, cache_size=2)
    assert auth.check(header("u0", "p0")) and auth.check(header("u1", "p1"))
    assert auth.check(header("u0", "p0"))  # u0 used again: u1 is now the oldest
    assert auth.check(header("u2", "p2"))  # evicts u1
    assert auth.cached == 2
    checks.clear()
    assert auth.check(header("u0", "p0")) and auth.check(header("u2", "p2"))
    assert checks == []
    assert auth.check(header("u1", "p1"))
    assert checks == [b"p1"]


def test_the_cache_keeps_no_password() -> None:
    auth = BasicAuth({"prometheus": hashed("right-password")})
    assert auth.check(header("prometheus", "right-password"))
    assert all(b"right-password" not in key for key in auth._cache)
