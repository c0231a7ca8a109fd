"""The web config file: node_exporter's format, one line naming the key for every mistake."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from monitor.serve.web_config import MAX_BYTES, load_web_config
from monitor.settings import ConfigError
from tests.support.tls import Pki, bcrypt_hash, make_pki, write_web_config

HASH = bcrypt_hash("s3cret-pw")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {"cert_file": str(pki.cert), "key_file": str(pki.key), **extra}


def test_no_file_means_plain_http_without_auth() -> None:
    web = load_web_config(None)
    assert web.tls is None and dict(web.users) == {}


def test_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("", encoding="utf-8")
    web = load_web_config(path)
    assert web.tls is None and dict(web.users) == {}


def test_tls_and_users_as_node_exporter_writes_them(tmp_path: Path, pki: Pki) -> None:
    htpasswd_style = "$2y$" + HASH[4:]  # htpasswd -B writes $2y$
    path = write_web_config(
        tmp_path / "web.yml",
        {
            "tls_server_config": tls(pki, min_version="TLS13"),
            "http_server_config": {"http2": False},
            "basic_auth_users": {"prometheus": HASH, "alice": htpasswd_style},
        },
    )
    web = load_web_config(path)
    assert isinstance(web.tls, ssl.SSLContext)
    assert web.tls.minimum_version == ssl.TLSVersion.TLSv1_3
    assert web.tls.maximum_version == ssl.TLSVersion.TLSv1_3
    assert web.tls.verify_mode == ssl.CERT_NONE
    assert dict(web.users) == {"prometheus": HASH.encode(), "alice": htpasswd_style.encode()}


def test_default_minimum_is_tls12(tmp_path: Path, pki: Pki) -> None:
    web = load_web_config(write_web_config(tmp_path / "w.yml", {"tls_server_config": tls(pki)}))
    assert web.tls is not None and web.tls.minimum_version == ssl.TLSVersion.TLSv1_2


def test_relative_paths_are_relative_to_the_web_config_file(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "conf" / "tls")
    path = write_web_config(
        tmp_path / "conf" / "web.yml",
        {"tls_server_config": {"cert_file": "tls/server.crt", "key_file": "tls/server.key"}},
    )
    assert pki.cert.is_file()
    assert load_web_config(path).tls is not None


def test_client_certificates_verified_against_the_client_ca(tmp_path: Path, pki: Pki) -> None:
    config = tls(pki, client_ca_file=str(pki.ca), client_auth_type="RequireAndVerifyClientCert")
    web = load_web_config(write_web_config(tmp_path / "w.yml", {"tls_server_config": config}))
    assert web.tls is not None and web.tls.verify_mode == ssl.CERT_REQUIRED


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top key", {"basic_auth": {}}, "basic_auth: unknown key"),
    ("unknown tls key", {"tls_server_config": {"certfile": "x"}}, "tls_server_config.certfile"),
    ("rate_limit", {"rate_limit": {"interval": "1s"}}, "rate_limit: not supported by modelmon"),
    (
        "cipher_suites",
        {"tls_server_config": {"cipher_suites": ["TLS_AES_128_GCM_SHA256"]}},
        "tls_server_config.cipher_suites: not supported",
    ),
    (
        "inline key",
        {"tls_server_config": {"key": "-----BEGIN"}},
        "tls_server_config.key: inline PEM",
    ),
    ("headers", {"http_server_config": {"headers": {}}}, "http_server_config.headers"),
    ("http2 not bool", {"http_server_config": {"http2": "yes"}}, "http_server_config.http2"),
    (
        "missing cert file",
        {"tls_server_config": {"cert_file": "nope.crt", "key_file": "nope.key"}},
        "tls_server_config.cert_file: ",
    ),
    ("missing key_file", {"tls_server_config": {"cert_file": "@cert"}}, ".key_file: missing"),
    ("users not a mapping", {"basic_auth_users": ["alice"]}, "basic_auth_users: must be"),
    ("bad hash", {"basic_auth_users": {"alice": "plaintext"}}, "basic_auth_users.alice: not a"),
    ("number hash", {"basic_auth_users": {"alice": 12}}, "basic_auth_users.alice: not a"),
    ("colon user", {"basic_auth_users": {"a:b": HASH}}, "basic_auth_users: a user name"),
    (
        "cost too high",
        {"basic_auth_users": {"alice": "$2b$99$" + HASH[7:]}},
        "basic_auth_users.alice: bcrypt cost",
    ),
    (
        "bad version",
        {"tls_server_config": {"cert_file": "@cert", "key_file": "@key", "min_version": "1.2"}},
        "tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13",
    ),
    (
        "min above max",
        {
            "tls_server_config": {
                "cert_file": "@cert",
                "key_file": "@key",
                "min_version": "TLS13",
                "max_version": "TLS12",
            }
        },
        "tls_server_config.min_version: is above max_version",
    ),
    (
        "key of another pair",
        {"tls_server_config": {"cert_file": "@cert", "key_file": "@client_key"}},
        "tls_server_config.key_file: cannot load",
    ),
    (
        "ca without auth type",
        {"tls_server_config": {"cert_file": "@cert", "key_file": "@key", "client_ca_file": "@ca"}},
        "tls_server_config.client_ca_file: set without a client_auth_type",
    ),
    (
        "verify without ca",
        {
            "tls_server_config": {
                "cert_file": "@cert",
                "key_file": "@key",
                "client_auth_type": "RequireAndVerifyClientCert",
            }
        },
        "tls_server_config.client_ca_file: missing",
    ),
    (
        "unverified client certs",
        {
            "tls_server_config": {
                "cert_file": "@cert",
                "key_file": "@key",
                "client_ca_file": "@ca",
                "client_auth_type": "RequireAnyClientCert",
            }
        },
        "tls_server_config.client_auth_type: RequireAnyClientCert accepts unverified",
    ),
    (
        "unknown auth type",
        {
            "tls_server_config": {
                "cert_file": "@cert",
                "key_file": "@key",
                "client_auth_type": "Mandatory",
            }
        },
        "tls_server_config.client_auth_type: must be one of",
    ),
]


def _files(value: Any, pki: Pki) -> Any:
    """Replace "@cert", "@key", "@ca", "@client_key" by the test PKI's paths."""
    if isinstance(value, dict):
        return {k: _files(v, pki) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("@"):
        return str(getattr(pki, value[1:]))
    return value


@pytest.mark.parametrize(("data", "names"), [(d, n) for _, d, n in BAD], ids=[i for i, _, _ in BAD])
def test_mistakes_fail_in_one_line_naming_the_key(
    tmp_path: Path, pki: Pki, data: dict[str, Any], names: str
) -> None:
    path = write_web_config(tmp_path / "web.yml", _files(data, pki))
    with pytest.raises(ConfigError) as err:
        load_web_config(path)
    message = str(err.value)
    assert message.startswith(f"http.web_config_file {path}: ")
    assert names in message
    assert "\n" not in message


def test_a_hash_is_never_echoed(tmp_path: Path) -> None:
    almost = HASH[:-1]  # one character short: not a bcrypt hash
    path = write_web_config(tmp_path / "web.yml", {"basic_auth_users": {"alice": almost}})
    with pytest.raises(ConfigError) as err:
        load_web_config(path)
    assert almost not in str(err.value) and "htpasswd" in str(err.value)


def test_yaml_errors_give_the_position_not_the_line(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: {HASH}\n  bob: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+") as err:
        load_web_config(path)
    assert HASH not in str(err.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"- a list\n", "the top level must be a mapping"),
        (b"\xff\xfe", "not UTF-8"),
        (b"#" * (MAX_BYTES + 1), "larger than 64 KiB"),
    ],
)
def test_files_that_are_not_a_web_config(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "web.yml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=problem):
        load_web_config(path)


def test_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file or directory; give a readable file"):
        load_web_config(tmp_path / "absent.yml")
    with pytest.raises(ConfigError, match="Is a directory"):
        load_web_config(tmp_path)
