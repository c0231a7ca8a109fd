"""Test-only TLS material, made at test time with the ``openssl`` tool (never committed).

A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate, all
signed by the CA and valid for two days; plus a web config file and bcrypt hashes at the lowest
cost (4), so tests spend no time hashing.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    tool = shutil.which("openssl")
    if tool is None:
        pytest.fail("the openssl tool is needed to make test certificates (Debian: openssl)")
    subprocess.run([tool, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _leaf(directory: Path, name: str, extensions: str) -> None:
    _openssl("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
             f"/CN=modelmon-test-{name}", cwd=directory)  # fmt: skip
    (directory / f"{name}.ext").write_text(extensions, encoding="utf-8")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
             cwd=directory)  # fmt: skip


def make_pki(directory: Path) -> Pki:
    """A CA, a server pair for 127.0.0.1 and a client pair, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=modelmon-test-ca", cwd=directory)  # fmt: skip
    _leaf(
        directory,
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    _leaf(directory, "client", "extendedKeyUsage=clientAuth\n")
    return Pki(
        ca=directory / "ca.crt",
        cert=directory / "server.crt",
        key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash at cost 4 (fast; production hashes use 10 or more)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def write_web_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
