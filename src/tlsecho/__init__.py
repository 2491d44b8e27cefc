"""tlsecho: a TLS echo server, client and certificate tool.

The library API::

    from tlsecho import EchoServer, ServerConfig, EchoClient, ClientConfig

    async with EchoServer(ServerConfig(host="127.0.0.1", port=0)) as server:
        result = await EchoClient(ClientConfig(host="127.0.0.1", port=server.port)).send()

Names are imported on first use, so that ``import tlsecho`` does not load
``ssl`` (the command line configures OpenSSL before it does).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import TYPE_CHECKING, Any

from tlsecho._version import __version__

#: Module paths before the packages by concern (issue 22) and where each
#: lives now: ``import tlsecho.clienthello`` still gives the module (a
#: program written against the old layout runs unchanged).
MOVED = {
    "tlsecho.answer": "tlsecho.server.answer",
    "tlsecho.badssl": "tlsecho.lab.badssl",
    "tlsecho.certs": "tlsecho.pki.certs",
    "tlsecho.client_errors": "tlsecho.client.errors",
    "tlsecho.clienthello": "tlsecho.wire.clienthello",
    "tlsecho.connection": "tlsecho.server.connection",
    "tlsecho.deadlines": "tlsecho.wire.deadlines",
    "tlsecho.engines": "tlsecho.server.engines",
    "tlsecho.faults": "tlsecho.wire.faults",
    "tlsecho.fingerprints": "tlsecho.wire.fingerprints",
    "tlsecho.framing": "tlsecho.wire.framing",
    "tlsecho.golden": "tlsecho.wire.golden",
    "tlsecho.group": "tlsecho.server.group",
    "tlsecho.identity": "tlsecho.server.identity",
    "tlsecho.labcerts": "tlsecho.lab.certs",
    "tlsecho.metrics": "tlsecho.server.metrics",
    "tlsecho.net": "tlsecho.server.net",
    "tlsecho.probe": "tlsecho.client.probe",
    "tlsecho.proxy_protocol": "tlsecho.wire.proxy_protocol",
    "tlsecho.run": "tlsecho.server.run",
    "tlsecho.serverhello": "tlsecho.wire.serverhello",
    "tlsecho.tlsext": "tlsecho.wire.tlsext",
    "tlsecho.tlsnames": "tlsecho.wire.tlsnames",
    "tlsecho.workers": "tlsecho.server.workers",
}


def _moved(fullname: str) -> str | None:
    """The new path of an old one (``tlsecho.engines.base`` ->
    ``tlsecho.server.engines.base``), else None. Called for every import in
    the process: a string split and a dict lookup."""
    package, _, rest = fullname.partition(".")
    if package != "tlsecho":
        return None
    old, dot, sub = rest.partition(".")
    new = MOVED.get(f"tlsecho.{old}")
    return None if new is None else new + dot + sub


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module path to the module at its new one."""

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if _moved(fullname) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        new = _moved(spec.name)
        assert new is not None
        return importlib.import_module(new)

    def exec_module(self, module: Any) -> None:
        pass  # the module at the new path is already loaded


# First: a submodule of a moved package (tlsecho.engines.base) would
# otherwise be found again through the package's __path__ and loaded twice.
if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedFinder())

_EXPORTS = {
    "CertPair": "tlsecho.pki.certs",
    "Pki": "tlsecho.pki.certs",
    "make_self_signed": "tlsecho.pki.certs",
    "write_pair": "tlsecho.pki.certs",
    "write_pki": "tlsecho.pki.certs",
    "EchoClient": "tlsecho.client.echo",
    "EchoResult": "tlsecho.client.echo",
    "send": "tlsecho.client.echo",
    "DEFAULT_PARTS": "tlsecho.config",
    "ClientConfig": "tlsecho.config",
    "ServerConfig": "tlsecho.config",
    "SniCert": "tlsecho.config",
    "CertificateError": "tlsecho.errors",
    "ConfigError": "tlsecho.errors",
    "ConnectError": "tlsecho.errors",
    "EchoMismatchError": "tlsecho.errors",
    "ListenError": "tlsecho.errors",
    "PeerError": "tlsecho.errors",
    "TlsEchoError": "tlsecho.errors",
    "TlsHandshakeError": "tlsecho.errors",
    "LineFraming": "tlsecho.wire.framing",
    "NulFraming": "tlsecho.wire.framing",
    "RawFraming": "tlsecho.wire.framing",
    "ProbeResult": "tlsecho.client.probe",
    "probe": "tlsecho.client.probe",
    "EchoServer": "tlsecho.server.core",
    "serve": "tlsecho.server.core",
    "restrict_tls_groups": "tlsecho.groups",
}

__all__ = [
    "DEFAULT_PARTS",
    "CertPair",
    "CertificateError",
    "ClientConfig",
    "ConfigError",
    "ConnectError",
    "EchoClient",
    "EchoMismatchError",
    "EchoResult",
    "EchoServer",
    "LineFraming",
    "ListenError",
    "NulFraming",
    "PeerError",
    "Pki",
    "ProbeResult",
    "RawFraming",
    "ServerConfig",
    "SniCert",
    "TlsEchoError",
    "TlsHandshakeError",
    "__version__",
    "make_self_signed",
    "probe",
    "restrict_tls_groups",
    "send",
    "serve",
    "write_pair",
    "write_pki",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tlsecho' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from tlsecho.client.echo import EchoClient, EchoResult, send
    from tlsecho.client.probe import ProbeResult, probe
    from tlsecho.config import DEFAULT_PARTS, ClientConfig, ServerConfig, SniCert
    from tlsecho.errors import (
        CertificateError,
        ConfigError,
        ConnectError,
        EchoMismatchError,
        ListenError,
        PeerError,
        TlsEchoError,
        TlsHandshakeError,
    )
    from tlsecho.groups import restrict_tls_groups
    from tlsecho.pki.certs import CertPair, Pki, make_self_signed, write_pair, write_pki
    from tlsecho.server.core import EchoServer, serve
    from tlsecho.wire.framing import LineFraming, NulFraming, RawFraming
