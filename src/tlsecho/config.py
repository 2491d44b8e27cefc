"""Frozen, validated configuration objects: one per role.

The CLI turns arguments into these; the library takes nothing else.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tlsecho.errors import ConfigError, setting
from tlsecho.wire.faults import RECORD_FAULTS, FaultSpec
from tlsecho.wire.framing import DEFAULT_MAX_LINE, MODES, Mode

__all__ = [
    "DEFAULT_PARTS",
    "ClientAuth",
    "ClientConfig",
    "Engine",
    "LoopName",
    "Profile",
    "ProxyHeaderVersion",
    "ProxyMode",
    "ServerConfig",
    "SniCert",
    "TLSVersionName",
    "default_engine",
    "parse_listen",
    "parse_sni",
]

LoopName = Literal["auto", "asyncio", "uvloop"]
TLSVersionName = Literal["1.2", "1.3"]
Profile = Literal["intermediate", "modern"]
Engine = Literal["sslsocket", "membio"]
ENGINES: tuple[Engine, ...] = ("sslsocket", "membio")


def default_engine() -> Engine:
    """``$TLSECHO_ENGINE`` when it names an engine, else ``sslsocket``."""
    name = os.environ.get("TLSECHO_ENGINE", "sslsocket")
    return "membio" if name == "membio" else "sslsocket"


ClientAuth = Literal["none", "optional", "required"]
ProxyMode = Literal["off", "v1", "v2", "any"]
ProxyHeaderVersion = Literal["v1", "v2"]

#: The original example's message, in its three parts.
DEFAULT_PARTS: tuple[bytes, ...] = (
    b"This is the message. ",
    b"It will be sent ",
    b"in parts.",
)


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _paths(obj: object, *names: str) -> None:
    """Accept ``str`` and ``os.PathLike`` wherever a path is taken: store a Path."""
    for name in names:
        value = getattr(obj, name)
        if value is None or isinstance(value, Path):
            continue
        if not isinstance(value, str | os.PathLike):
            raise ConfigError(f"{name} must be a path, not {type(value).__name__}")
        object.__setattr__(obj, name, Path(value))


def _check_port(port: int, low: int = 0) -> None:
    if not low <= port <= 65535:
        raise ConfigError(f"port must be {low}..65535, not {port}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {value}")


def _check_versions(low: TLSVersionName | None, high: TLSVersionName | None) -> None:
    for v in (low, high):
        if v is not None and v not in ("1.2", "1.3"):
            raise ConfigError(f"TLS version must be 1.2 or 1.3, not {v!r}")
    if low is not None and high is not None and float(low) > float(high):
        raise ConfigError(
            f"{setting('min_version')} {low} is above {setting('max_version')} {high}"
        )


def _check_alpn(alpn: tuple[str, ...]) -> None:
    for p in alpn:
        if not p or len(p.encode()) > 255:
            raise ConfigError(f"ALPN protocol names are 1..255 bytes, not {p!r}")


def _check_mode(mode: str, max_line: int) -> None:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if max_line < 1:
        raise ConfigError(f"{setting('max_line')} must be at least 1, not {max_line}")


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_listen(
    text: str, *, default_port: int | None = None, what: str = "--listen"
) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` to ``(host, port)``.

    Args:
        text: the address.
        default_port: allows ``HOST`` or ``[IPV6]`` alone, with this port.
        what: the option named in errors.

    Raises:
        ConfigError: not of that form, or a bad port.
    """
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"{what} {text!r}: write IPv6 as [ADDRESS]:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        if default_port is not None and _is_ipv6(text):
            return text, default_port  # an IPv6 address alone: ::1
        raise ConfigError(f"{what} {text!r}: write IPv6 as [ADDRESS]:PORT")
    else:
        host, port_text = text, None
    if not host:
        raise ConfigError(f"{what} {text!r}: the host is missing")
    if port_text is None:
        if default_port is None:
            raise ConfigError(f"{what} {text!r}: expected HOST:PORT ([ADDRESS]:PORT for IPv6)")
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{what} {text!r}: the port is not a number") from None
    _check_port(port)
    return host, port


@dataclass(frozen=True)
class SniCert:
    """A certificate served to clients that ask for ``name`` (SNI)."""

    name: str
    """Server name: exact (``api.example.test``) or one-label wildcard (``*.example.test``)."""
    cert: Path
    """PEM certificate (chain)."""
    key: Path
    """PEM private key (unencrypted, or encrypted with the server's ``key_password``)."""

    def __post_init__(self) -> None:
        _paths(self, "cert", "key")


def parse_sni(text: str) -> SniCert:
    """``NAME=CERT:KEY`` to a :class:`SniCert`.

    Raises:
        ConfigError: not of that form.
    """
    name, sep, files = text.partition("=")
    cert, sep2, key = files.rpartition(":")
    if not sep or not sep2 or not name or not cert or not key:
        raise ConfigError(f"{setting('sni')} {text!r}: expected NAME=CERT:KEY")
    return SniCert(name.lower(), Path(cert), Path(key))


@dataclass(frozen=True)
class ServerConfig:
    """How ``tlsecho serve`` listens, what it presents and what it echoes."""

    host: str = "localhost"
    """Host name or address; the server listens on every address it resolves to."""
    port: int = 10000
    """TCP port; 0 picks a free one (shared by all addresses of ``host``)."""
    listen: tuple[tuple[str, int], ...] = ()
    """Explicit ``(host, port)`` endpoints; when given, ``host``/``port`` are unused."""
    mode: Mode = "nul"
    """Echo framing: ``nul`` (the original), ``line`` or ``raw``; ``hello``
    answers what the ClientHello offered; ``http`` is tlsbin, the HTTPS echo."""
    max_line: int = DEFAULT_MAX_LINE
    """Longest line in ``line`` mode, newline included."""
    max_header: int = 16 * 1024
    """Mode ``http``: bytes of request line and headers (431 beyond)."""
    max_body: int = 1024 * 1024
    """Mode ``http``: bytes of request body (413 beyond)."""
    request_timeout: float = 10.0
    """Mode ``http``: seconds from a request's first byte to its last (408 beyond)."""
    cert: Path | None = None
    """PEM certificate (chain). With ``key``; both ``None`` means the default pair."""
    key: Path | None = None
    """PEM private key for ``cert``."""
    key_password: str | None = field(default=None, repr=False)
    """Password of an encrypted ``key``."""
    profile: Profile = "intermediate"
    """Mozilla server-side TLS profile: ``intermediate`` (1.2 and 1.3) or ``modern`` (1.3)."""
    min_version: TLSVersionName | None = None
    """Lowest TLS version (default: the profile's)."""
    max_version: TLSVersionName | None = None
    """Highest TLS version (default: 1.3)."""
    ciphers: str | None = None
    """OpenSSL cipher string for TLS 1.2 (default: the profile's)."""
    alpn: tuple[str, ...] = ()
    """ALPN protocols offered, in order of preference."""
    alpn_required: bool = False
    """Refuse a client that has no ALPN protocol in common with ``alpn``."""
    keylog: Path | None = None
    """NSS key log file (default: ``$SSLKEYLOGFILE`` when set)."""
    session_tickets: int | None = 1
    """TLS 1.3 session tickets sent per handshake (None: OpenSSL's default,
    2). One, as Go's server sends: a client resumes with one ticket and gets
    a new one each time, and the second ticket cost 8 % of a new connection's
    server time (BENCHMARKS.md)."""
    client_ca: Path | None = None
    """PEM CA certificates that client certificates must chain to."""
    client_auth: ClientAuth = "none"
    """Whether a client certificate is ignored, optional or required."""
    sni: tuple[SniCert, ...] = ()
    """Certificates chosen by the client's server name."""
    proxy_protocol: ProxyMode = "off"
    """Read an HAProxy PROXY header (v1, v2 or either) before the TLS handshake."""
    allow_cn: tuple[str, ...] = ()
    """Admit a client certificate with one of these common names (any
    ``allow_*`` match admits; none given: every verified client)."""
    allow_ou: tuple[str, ...] = ()
    """... with one of these organizational units."""
    allow_dns: tuple[str, ...] = ()
    """... with one of these DNS SANs."""
    allow_uri: tuple[str, ...] = ()
    """... with one of these URI SANs, or a SPIFFE ID in one of these trust
    domains (``spiffe://example.org``)."""
    allow_spki_pin: tuple[str, ...] = ()
    """... whose public key has one of these pins (base64 SHA-256 of the SPKI)."""
    faults: tuple[FaultSpec, ...] = ()
    """Server-side faults (``--fault``, :mod:`tlsecho.wire.faults`)."""
    fingerprint: bool = False
    """Read each ClientHello before OpenSSL does: JA4 in the log line, what
    the client offered (and JA3) in the JSON log. Off by default: it costs
    5-9 % of a new connection's server time (BENCHMARKS.md)."""
    reload_interval: float | None = None
    """Poll the certificate files this often (seconds) and reload on change."""
    handshake_timeout: float = 10.0
    """Seconds a client has to send its PROXY header and complete the handshake."""
    shutdown_timeout: float = 10.0
    """Seconds the TLS close (close_notify exchange) may take before we abort."""
    idle_timeout: float | None = 300.0
    """Close a session after this many seconds with no bytes either way (None: never)."""
    max_session: float | None = None
    """Close a session this many seconds after its handshake (None: never)."""
    max_connections: int | None = None
    """Open connections at most; at the limit the server stops accepting until
    one closes (None: derived from the file-descriptor limit)."""
    drain_timeout: float = 10.0
    """On SIGTERM/SIGINT, seconds open sessions get to finish before close_notify."""
    metrics: tuple[str, int] | None = None
    """Serve Prometheus metrics over HTTP at ``(host, port)`` (``/metrics``)."""
    loop: LoopName = "auto"
    """Event loop: uvloop when installed (``auto``), or the one named."""
    engine: Engine = field(default_factory=default_engine)
    """How the bytes move: ``sslsocket`` (OpenSSL reads and writes the
    socket) or ``membio`` (TLS over memory BIOs: every byte passes through
    tlsecho, one recv and one send per wake-up). Default: ``$TLSECHO_ENGINE``
    when set, else ``sslsocket``."""

    def __post_init__(self) -> None:
        _paths(self, "cert", "key", "keylog", "client_ca")
        _check_engine(self)
        _check_port(self.port)
        for host, port in self.listen:
            if not host:
                raise ConfigError("a listen address needs a host")
            _check_port(port)
        _check_mode(self.mode, self.max_line)
        if self.max_header < 256 or self.max_body < 0:
            raise ConfigError(
                f"{setting('max_header')} must be at least 256 and {setting('max_body')} "
                f"0 or more, not {self.max_header} and {self.max_body}"
            )
        _check_positive("request timeout", self.request_timeout)
        if (self.cert is None) != (self.key is None):
            raise ConfigError(
                f"{setting('cert')} and {setting('key')} go together: give both or neither"
            )
        if self.profile not in ("intermediate", "modern"):
            raise ConfigError(
                f"{setting('profile')} must be intermediate or modern, not {self.profile!r}"
            )
        _check_versions(self.min_version, self.max_version)
        _check_alpn(self.alpn)
        if self.alpn_required and not self.alpn:
            raise ConfigError(f"{setting('alpn_required')} needs {setting('alpn')}")
        if self.session_tickets is not None and not 0 <= self.session_tickets <= 16:
            raise ConfigError(
                f"{setting('session_tickets')} must be 0..16, not {self.session_tickets}"
            )
        _check_client_auth(self)
        if self.proxy_protocol not in ("off", "v1", "v2", "any"):
            raise ConfigError(f"{setting('proxy_protocol')} must be off, v1, v2 or any")
        if self.reload_interval is not None:
            _check_positive("reload interval", self.reload_interval)
        _check_positive("handshake timeout", self.handshake_timeout)
        _check_positive("shutdown timeout", self.shutdown_timeout)
        if self.idle_timeout is not None:
            _check_positive("idle timeout", self.idle_timeout)
        if self.max_session is not None:
            _check_positive("max session", self.max_session)
        if self.max_connections is not None and self.max_connections < 1:
            raise ConfigError(
                f"{setting('max_connections')} must be at least 1, not {self.max_connections}"
            )
        if self.drain_timeout < 0:
            raise ConfigError(
                f"{setting('drain_timeout')} must be 0 or more, not {self.drain_timeout}"
            )

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """Where to listen: ``listen``, or ``(host, port)``."""
        return self.listen or ((self.host, self.port),)


def _check_engine(cfg: ServerConfig) -> None:
    """--engine names one, and the record faults have the one they need."""
    if cfg.engine not in ENGINES:
        raise ConfigError(f"{setting('engine')} must be sslsocket or membio, not {cfg.engine!r}")
    record = [f.name for f in cfg.faults if f.name in RECORD_FAULTS]
    if record and cfg.engine != "membio":
        raise ConfigError(
            f"--fault {record[0]} acts on our TLS records: it needs {setting('engine')} "
            "membio (the engine where every byte passes through tlsecho)"
        )


def _check_client_auth(cfg: ServerConfig) -> None:
    """--client-auth, --client-ca and the --allow-* options agree."""
    if cfg.client_auth not in ("none", "optional", "required"):
        raise ConfigError(f"{setting('client_auth')} must be none, optional or required")
    if cfg.client_auth != "none" and cfg.client_ca is None:
        raise ConfigError(
            f"{setting('client_auth')} {cfg.client_auth} needs {setting('client_ca')} FILE"
        )
    allows = ("allow_cn", "allow_ou", "allow_dns", "allow_uri", "allow_spki_pin")
    given = [name for name in allows if getattr(cfg, name)]
    if given and cfg.client_auth == "none":
        raise ConfigError(
            f"{setting(given[0])} checks client certificates: it needs "
            f"{setting('client_auth')} required (or optional) and {setting('client_ca')}"
        )


@dataclass(frozen=True)
class ClientConfig:
    """How ``tlsecho send`` connects, what it trusts and presents."""

    host: str = "localhost"
    """Server host name or address; also the name checked in its certificate."""
    port: int = 10000
    """Server TCP port."""
    mode: Mode = "nul"
    """Echo framing the server speaks: ``nul``, ``line`` or ``raw``."""
    cafile: Path | None = None
    """PEM file of trusted certificates. ``None``: the system store plus the
    server's default certificate when this user has one."""
    insecure: bool = False
    """Skip certificate and hostname verification."""
    timeout: float = 10.0
    """Seconds the whole exchange may take."""
    server_hostname: str | None = None
    """Name sent as SNI and checked in the certificate (default: ``host``)."""
    cert: Path | None = None
    """Client certificate to present (mTLS), with ``key``."""
    key: Path | None = None
    """Private key of ``cert``."""
    min_version: TLSVersionName | None = None
    """Lowest TLS version offered (default 1.2)."""
    max_version: TLSVersionName | None = None
    """Highest TLS version offered (default 1.3)."""
    alpn: tuple[str, ...] = ()
    """ALPN protocols offered."""
    keylog: Path | None = None
    """NSS key log file (default: ``$SSLKEYLOGFILE`` when set)."""
    proxy_header: ProxyHeaderVersion | None = None
    """Send an HAProxy PROXY header of this version before the handshake."""

    def __post_init__(self) -> None:
        _paths(self, "cafile", "cert", "key", "keylog")
        _check_port(self.port, low=1)
        _check_mode(self.mode, 1)
        if self.mode == "http":
            raise ConfigError("mode http is the server's (use curl, httpx or a browser)")
        _check_positive("timeout", self.timeout)
        if (self.cert is None) != (self.key is None):
            raise ConfigError(
                f"{setting('cert')} and {setting('key')} go together: give both or neither"
            )
        _check_versions(self.min_version, self.max_version)
        _check_alpn(self.alpn)
        if self.proxy_header not in (None, "v1", "v2"):
            raise ConfigError(f"{setting('proxy_header')} must be v1 or v2")

    @property
    def verify_name(self) -> str:
        """The name the server's certificate must match: ``server_hostname`` or
        ``host`` (an IP address is checked against the certificate's IP names)."""
        return self.server_hostname or self.host

    @property
    def sni(self) -> str | None:
        """The server name sent in the ClientHello: :attr:`verify_name`, except
        that an IP address is never sent (RFC 6066 section 3)."""
        name = self.verify_name
        return None if _is_ip_address(name) else name
