"""Where a webhook may be sent: the target policy, and an HTTP client that enforces it on the
address it actually connects to.

A check by name followed by a connection by name leaves a DNS-rebinding window: the name can
resolve to a public address for the check and to ``127.0.0.1`` or a metadata service for the
connection. Here the check lives inside the connection: the client's network backend resolves
the host once per new connection, refuses it unless every address is allowed, and connects to
one of those same addresses (as an IP literal, so nothing resolves again). httpcore still sends
the URL's host in ``Host`` and uses it for TLS SNI and certificate checks, so receivers and
certificates see the name. The client never reads proxy settings from the environment (a proxy
would be connected to instead of the target) and never follows redirects.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import urlsplit

import httpcore
import httpx

__all__ = [
    "Resolver",
    "TargetRefusedError",
    "check_url_syntax",
    "display_url",
    "embedded_ipv4",
    "non_public",
    "pinned_client",
    "resolve_target",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses``; raises ``OSError`` when the name cannot be resolved.
Resolver = Callable[[str, int], list[str]]
_NAT64: Final = (
    ipaddress.ip_network("64:ff9b::/96"),  # RFC 6052 well-known prefix
    ipaddress.ip_network("64:ff9b:1::/48"),  # RFC 8215 local-use prefix (low 32 bits)
)


class TargetRefusedError(ValueError):
    """The target resolves to an address the policy refuses; the message says which."""


def check_url_syntax(url: str) -> str:
    """Check scheme, host and port without any lookup; return the host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook URL scheme {parts.scheme!r} is not allowed; use http or https")
    if not parts.hostname:
        raise ValueError("webhook URL has no host")
    try:
        parts.port  # noqa: B018 - the property validates the port
    except ValueError as exc:
        raise ValueError(f"webhook URL has an invalid port: {exc}") from None
    return parts.hostname


def display_url(url: str) -> str:
    """URL for logs and output: no userinfo or query, which may carry credentials.

    >>> display_url("https://u:tok@hooks.example:8443/x?sig=abc")
    'https://hooks.example:8443/x'
    """
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}{parts.path}"


def embedded_ipv4(addr: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, for the forms that route to it.

    IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002:aabb:ccdd::/48``, NAT64 ``64:ff9b::a.b.c.d``
    (and the local-use ``64:ff9b:1::/48``) and Teredo ``2001:0::/32`` (the client address).

    >>> str(embedded_ipv4(ipaddress.ip_address("64:ff9b::7f00:1")))
    '127.0.0.1'
    >>> str(embedded_ipv4(ipaddress.ip_address("2002:a00:1::1")))
    '10.0.0.1'
    """
    if not isinstance(addr, ipaddress.IPv6Address):
        return None
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if any(addr in net for net in _NAT64):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def non_public(addr: IPAddress) -> str | None:
    """Why ``addr`` is not a public target (None if it is); IPv4 carried in IPv6 is judged as
    the IPv4 address it reaches."""
    addr = embedded_ipv4(addr) or addr
    for kind, hit in (
        ("loopback", addr.is_loopback),
        ("unspecified", addr.is_unspecified),
        ("link-local", addr.is_link_local),
        ("private", addr.is_private),
        ("multicast", addr.is_multicast),
        ("reserved", addr.is_reserved),
        ("non-global", not addr.is_global),  # e.g. 100.64.0.0/10 carrier-grade NAT
    ):
        if hit:
            return kind
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address of ``host`` from the system resolver (raises ``OSError``)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


def resolve_target(
    host: str, port: int, allow_private: bool, resolve: Resolver = system_resolver
) -> list[IPAddress]:
    """The addresses to connect to for ``host``, every one allowed, or TargetRefusedError.

    A literal IP is not looked up. Raises ``OSError`` if the name cannot be resolved (possibly
    transient: the dispatcher retries).
    """
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        addresses = [ipaddress.ip_address(a) for a in resolve(host, port)]
        if not addresses:
            raise OSError(f"{host!r} has no addresses") from None
    if not allow_private:
        for addr in addresses:
            kind = non_public(addr)
            if kind is not None:
                raise TargetRefusedError(
                    f"webhook host {host!r} resolves to {kind} address {addr}; "
                    "set allow_private_targets: true in the webhook to permit it"
                )
    return addresses


class _PinnedBackend(httpcore.NetworkBackend):
    """Resolves and checks once per connection, then connects to a checked address."""

    def __init__(self, allow_private: bool, resolve: Resolver) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow_private = allow_private
        self._resolve = resolve

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | None = None
        for addr in resolve_target(host, port, self._allow_private, self._resolve):
            try:
                return self._inner.connect_tcp(
                    str(addr), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:  # try the next checked address
                failure = exc
        assert failure is not None  # resolve_target never returns an empty list
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise TargetRefusedError("webhooks are never sent over a unix socket")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    def __init__(self, allow_private: bool, resolve: Resolver) -> None:
        super().__init__()
        # httpx has no public hook for the network backend; its pool is the one seam.
        self._pool = httpcore.ConnectionPool(
            ssl_context=None,  # httpcore builds its default (certifi) context for https only
            network_backend=_PinnedBackend(allow_private, resolve),
        )


def pinned_client(allow_private: bool, resolve: Resolver = system_resolver) -> httpx.Client:
    """An HTTP client that connects only to addresses the target policy allows.

    Its requests raise :class:`TargetRefusedError` for a refused target and ``OSError`` (not an
    ``httpx`` error) when the name cannot be resolved.
    """
    return httpx.Client(
        transport=_PinnedTransport(allow_private, resolve), follow_redirects=False, trust_env=False
    )
