"""Frozen, validated configuration objects: one per role.

The CLI turns arguments into these; the library takes nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tlsecho.errors import ConfigError

__all__ = ["DEFAULT_PARTS", "ClientConfig", "LoopName", "ServerConfig"]

LoopName = Literal["auto", "asyncio", "uvloop"]

#: The original example's message, in its three parts.
DEFAULT_PARTS: tuple[bytes, ...] = (
    b"This is the message. ",
    b"It will be sent ",
    b"in parts.",
)


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be 0..65535, not {port}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {value}")


@dataclass(frozen=True)
class ServerConfig:
    """How ``tlsecho serve`` listens and what it presents."""

    host: str = "localhost"
    """Host name or address; the server listens on every address it resolves to."""
    port: int = 10000
    """TCP port; 0 picks a free one (shared by all addresses of ``host``)."""
    cert: Path | None = None
    """PEM certificate (chain). With ``key``; both ``None`` means the default pair."""
    key: Path | None = None
    """PEM private key for ``cert``."""
    key_password: str | None = field(default=None, repr=False)
    """Password of an encrypted ``key``."""
    handshake_timeout: float = 10.0
    """Seconds a client has to complete the TLS handshake (absolute)."""
    shutdown_timeout: float = 10.0
    """Seconds the TLS close (close_notify exchange) may take before we abort."""
    loop: LoopName = "auto"
    """Event loop: uvloop when installed (``auto``), or the one named."""

    def __post_init__(self) -> None:
        _check_port(self.port)
        if (self.cert is None) != (self.key is None):
            raise ConfigError("--cert and --key go together: give both or neither")
        _check_positive("handshake timeout", self.handshake_timeout)
        _check_positive("shutdown timeout", self.shutdown_timeout)


@dataclass(frozen=True)
class ClientConfig:
    """How ``tlsecho send`` connects and what it trusts."""

    host: str = "localhost"
    """Server host name or address; also the name checked in its certificate."""
    port: int = 10000
    """Server TCP port."""
    cafile: Path | None = None
    """PEM file of trusted certificates. ``None``: the system store plus the
    server's default certificate when this user has one."""
    insecure: bool = False
    """Skip certificate and hostname verification."""
    timeout: float = 10.0
    """Seconds the whole exchange may take."""
    server_hostname: str | None = None
    """Name sent as SNI and checked in the certificate (default: ``host``)."""

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port must be 1..65535, not {self.port}")
        _check_positive("timeout", self.timeout)
