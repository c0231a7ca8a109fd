"""The exporter-toolkit web config file (``http.web_config_file``): TLS and basic auth.

The same YAML that node_exporter's ``--web.config.file`` takes, so an operator reuses what they
know::

    tls_server_config:
      cert_file: tls/modelmon.crt      # relative paths: relative to this file, as in Go
      key_file: tls/modelmon.key
      client_ca_file: tls/ca.crt       # optional, with client_auth_type
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12               # default TLS12; max_version defaults to TLS13
    basic_auth_users:
      prometheus: $2y$10$...           # bcrypt: htpasswd -nBC 10 "" | tr -d ':\\n'

Read once at start (unlike Go's toolkit, which rereads it per request: restart to rotate).
Every problem is one :class:`~monitor.settings.ConfigError` line naming the key; a hash or a
key's content is never echoed. Keys the toolkit knows but modelmon does not implement are
refused rather than ignored, since each of them would loosen or tighten security unseen.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitor.settings import ConfigError

#: A web config is a few lines; anything bigger is a mistake (or an attack on the parser).
MAX_BYTES = 64 * 1024
HASH_HINT = "make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
_BCRYPT = re.compile(r"^\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}$")
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type"}
_TLS_KEYS |= {"min_version", "max_version"}
# Known to the toolkit, not implemented here: refused with the reason.
_UNSUPPORTED = {
    "rate_limit": "not supported by modelmon; remove it",
    "tls_server_config.cert": "inline PEM is not supported by modelmon; use cert_file",
    "tls_server_config.key": "inline PEM is not supported by modelmon; use key_file",
    "tls_server_config.client_ca": "inline PEM is not supported by modelmon; use client_ca_file",
    "tls_server_config.cipher_suites": "not supported by modelmon (OpenSSL's defaults apply)",
    "tls_server_config.curve_preferences": "not supported by modelmon; remove it",
    "tls_server_config.prefer_server_cipher_suites": "not supported by modelmon; remove it",
    "tls_server_config.client_allowed_sans": "not supported by modelmon; remove it",
    "http_server_config.headers": "not supported by modelmon; remove it",
}


_Fail = Callable[[str, str], ConfigError]  # (key, problem) -> the error to raise


@dataclass(frozen=True)
class WebConfig:
    """What the file configures: a server TLS context (or plain HTTP) and the users' hashes."""

    tls: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)


def load_web_config(path: Path | None) -> WebConfig:
    """Read and validate the web config file; ``None`` means plain HTTP without auth.

    Raises
    ------
    ConfigError
        One line naming the key and the fix.
    """
    if path is None:
        return WebConfig()
    data = _read(path)

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"http.web_config_file {path}: {key}: {problem}")

    _only(data, {"tls_server_config", "http_server_config", "basic_auth_users"}, "", fail)
    http = _mapping(data, "http_server_config", fail)
    _only(http, {"http2"}, "http_server_config.", fail)
    if not isinstance(http.get("http2", True), bool):
        raise fail("http_server_config.http2", "must be true or false")
    tls = _mapping(data, "tls_server_config", fail)
    _only(tls, _TLS_KEYS, "tls_server_config.", fail)
    context = _tls_context(tls, path.parent, fail) if tls else None
    return WebConfig(tls=context, users=_users(data, fail))


def _read(path: Path) -> dict[str, Any]:
    where = f"http.web_config_file {path}"
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror or exc}; give a readable file") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_BYTES // 1024} KiB; is it the right file?")
    try:
        loaded = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        # Position only: PyYAML's message quotes the line, which may hold a hash.
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{where}: not valid YAML{at}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{where}: the top level must be a mapping")
    return loaded


def _only(data: Mapping[str, Any], allowed: set[str], prefix: str, fail: _Fail) -> None:
    for key in data:
        name = f"{prefix}{key}"
        if name in _UNSUPPORTED:
            raise fail(name, _UNSUPPORTED[name])
        if key not in allowed:
            raise fail(str(name), f"unknown key; expected one of {', '.join(sorted(allowed))}")


def _mapping(data: Mapping[str, Any], key: str, fail: _Fail) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(key, "must be a mapping")
    return value


def _file(tls: Mapping[str, Any], key: str, base: Path, fail: _Fail) -> Path | None:
    value = tls.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise fail(f"tls_server_config.{key}", "must be a file path")
    path = base / value  # an absolute value replaces base
    if not path.is_file():
        raise fail(f"tls_server_config.{key}", f"{path} is not a readable file")
    return path


def _version(tls: Mapping[str, Any], key: str, default: str, fail: _Fail) -> ssl.TLSVersion:
    value = tls.get(key, default)
    if value not in _VERSIONS:
        raise fail(f"tls_server_config.{key}", f"must be one of {', '.join(_VERSIONS)}")
    return _VERSIONS[value]


def _tls_context(tls: Mapping[str, Any], base: Path, fail: _Fail) -> ssl.SSLContext:
    cert, key = _file(tls, "cert_file", base, fail), _file(tls, "key_file", base, fail)
    if cert is None or key is None:
        missing = "cert_file" if cert is None else "key_file"
        raise fail(f"tls_server_config.{missing}", "missing; TLS needs cert_file and key_file")
    client_ca = _file(tls, "client_ca_file", base, fail)
    auth_type = tls.get("client_auth_type") or "NoClientCert"
    if auth_type in ("RequestClientCert", "RequireAnyClientCert"):
        raise fail(
            "tls_server_config.client_auth_type",
            f"{auth_type} accepts unverified certificates and is not supported by modelmon; "
            "use RequireAndVerifyClientCert with client_ca_file",
        )
    if auth_type not in _CLIENT_AUTH:
        choices = ", ".join(_CLIENT_AUTH)
        raise fail("tls_server_config.client_auth_type", f"must be one of {choices}")
    verify = _CLIENT_AUTH[auth_type]
    if verify == ssl.CERT_NONE and client_ca is not None:
        raise fail(
            "tls_server_config.client_ca_file",
            "set without a client_auth_type; add client_auth_type: RequireAndVerifyClientCert",
        )
    if verify != ssl.CERT_NONE and client_ca is None:
        raise fail("tls_server_config.client_ca_file", f"missing; {auth_type} needs it")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _version(tls, "min_version", "TLS12", fail)
    context.maximum_version = _version(tls, "max_version", "TLS13", fail)
    if context.minimum_version > context.maximum_version:
        raise fail("tls_server_config.min_version", "is above max_version")
    try:
        # An empty password: an encrypted key fails here instead of prompting on a terminal.
        context.load_cert_chain(cert, key, password="")
    except (ssl.SSLError, OSError):
        raise fail(
            "tls_server_config.key_file",
            "cannot load the certificate and key (PEM, unencrypted, and a matching pair?)",
        ) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (ssl.SSLError, OSError):
            raise fail("tls_server_config.client_ca_file", "not a PEM CA certificate") from None
    context.verify_mode = verify
    return context


def _users(data: Mapping[str, Any], fail: _Fail) -> dict[str, bytes]:
    users = _mapping(data, "basic_auth_users", fail)
    hashes = {}
    for user, hashed in users.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise fail("basic_auth_users", "a user name is a non-empty string without ':'")
        if not isinstance(hashed, str) or not (match := _BCRYPT.match(hashed)):
            raise fail(f"basic_auth_users.{user}", f"not a bcrypt hash; {HASH_HINT}")
        if not 4 <= int(match.group(1)) <= 31:
            raise fail(f"basic_auth_users.{user}", f"bcrypt cost outside 4-31; {HASH_HINT}")
        hashes[user] = hashed.encode("ascii")
    return hashes
