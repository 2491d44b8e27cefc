"""Sockets and addresses: resolve, bind every address on one port, the
file-descriptor limit. No TLS here."""

from __future__ import annotations

import contextlib
import resource
import socket
from typing import Any

from tlsecho.errors import ListenError
from tlsecho.wire.proxy_protocol import Address  # the one definition (sans-IO)

__all__ = [
    "Address",
    "bind_all",
    "default_max_connections",
    "format_address",
    "raise_fd_limit",
    "resolve",
]


def format_address(addr: Address) -> str:
    """``127.0.0.1:10000`` or ``[::1]:10000``."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def default_max_connections() -> int:
    """The file-descriptor limit, less room for listeners, logs and files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(1, soft - 64)


def raise_fd_limit() -> int:
    """Raise the soft file-descriptor limit to the hard one; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
    return soft


def resolve(host: str, port: int) -> list[tuple[int, Any]]:
    """The distinct ``(family, sockaddr)`` pairs to listen on for ``host``.

    Raises:
        ListenError: the name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(f"cannot resolve {host!r}: {exc.strerror}") from None
    seen: set[Any] = set()
    result: list[tuple[int, Any]] = []
    for family, _, _, _, sockaddr in infos:
        key = (family, sockaddr[0])
        if key not in seen:
            seen.add(key)
            result.append((family, sockaddr))
    return result


def bind_all(
    host: str, port: int, *, reuse_port: bool = False, listen: bool = True
) -> list[socket.socket]:
    """Bind every address ``host`` resolves to, all on one port.

    With ``reuse_port``, several processes bind the same port and the
    kernel spreads connections among their listening sockets (SO_REUSEPORT).

    Raises:
        ListenError: cannot resolve or bind (one line: where and why).
    """
    socks: list[socket.socket] = []
    try:
        for family, sockaddr in resolve(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(socks) > 1:
                # Port 0: every address shares the port the first one got.
                sockaddr = (sockaddr[0], socks[0].getsockname()[1], *sockaddr[2:])
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                where = format_address((sockaddr[0], sockaddr[1]))
                raise ListenError(
                    f"cannot listen on {where}: {(exc.strerror or str(exc)).lower()}"
                ) from None
            if listen:
                sock.listen(1024)
            sock.setblocking(False)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks
