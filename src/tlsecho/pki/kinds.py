"""Every broken or odd certificate tlsecho makes, in one catalogue:
``tlsecho cert --bad`` makes the first kinds (``lab=False``), ``tlsecho
lab`` serves them all; ``tlsecho badssl``, the lab's manifest and the
pytest fixtures read what a correct client does with each from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BAD_KINDS", "CERT_KINDS", "LAB_KINDS", "CertKind"]


@dataclass(frozen=True)
class CertKind:
    """One kind of certificate and what a correct peer does with it."""

    name: str
    """File stem (``expired`` -> ``expired.crt``) and endpoint name."""
    what: str
    """What it is."""
    result: Literal["reject", "echo"]
    """What a correct peer does: ``reject`` it or accept it (``echo``)."""
    detail: str
    """OpenSSL's words for it (``certificate has expired``)."""
    side: Literal["server", "client"] = "server"
    """Which side presents it."""
    lab: bool = False
    """Made by the lab only (chains, weak signatures, odd usages), not by ``--bad``."""
    weak: bool = False
    """The server must lower OpenSSL's security level to load it (SHA-1, RSA-1024)."""

    @property
    def expect(self) -> str:
        """One line: ``reject: certificate has expired``; for a client
        certificate, what the server does."""
        return f"{self.result}: {self.detail}" if self.side == "server" else self.detail


CERT_KINDS: tuple[CertKind, ...] = (
    CertKind(
        "expired", "server certificate, expired yesterday", "reject", "certificate has expired"
    ),
    CertKind(
        "not-yet-valid",
        "server certificate, valid from 30 days on",
        "reject",
        "certificate is not yet valid",
    ),
    CertKind(
        "wrong-host",
        "server certificate for wrong.host.invalid only",
        "reject",
        "hostname mismatch",
    ),
    CertKind(
        "self-signed",
        "self-signed server certificate for the hosts",
        "reject",
        "self-signed certificate",
    ),
    CertKind(
        "unknown-ca",
        "server certificate signed by a CA nobody trusts",
        "reject",
        "unable to get local issuer certificate",
    ),
    CertKind(
        "client-expired",
        "client certificate, expired yesterday",
        "reject",
        "server rejects it (mTLS)",
        side="client",
    ),
    CertKind(
        "client-unknown-ca",
        "client certificate signed by a CA nobody trusts",
        "reject",
        "server rejects it (mTLS)",
        side="client",
    ),
    CertKind(
        "incomplete-chain",
        "leaf signed by an intermediate the server does not send",
        "reject",
        "unable to get local issuer certificate",
        lab=True,
    ),
    CertKind(
        "sha1",
        "leaf signed with SHA-1",
        "reject",
        "CA signature digest algorithm too weak",
        lab=True,
        weak=True,
    ),
    CertKind(
        "rsa-1024",
        "leaf with a 1024-bit RSA key",
        "reject",
        "EE certificate key too weak",
        lab=True,
        weak=True,
    ),
    CertKind(
        "no-server-eku",
        "leaf whose extended key usage is clientAuth only",
        "reject",
        "unsuitable certificate purpose",
        lab=True,
    ),
    CertKind(
        "ca-leaf",
        "a CA certificate (CA:TRUE, keyCertSign only) as the server's",
        "reject",
        "unsuitable certificate purpose",
        lab=True,
    ),
    CertKind(
        "name-constraints",
        "leaf for the hosts under an intermediate permitted only .permitted.invalid",
        "reject",
        "permitted subtree violation",
        lab=True,
    ),
    CertKind(
        "1000-sans",
        "leaf with 1000 subject alternative names: accept it",
        "echo",
        "intact",
        lab=True,
    ),
    CertKind(
        "deep-chain",
        "leaf under 8 intermediates (10 certificates with the root): accept it",
        "echo",
        "intact",
        lab=True,
    ),
)
#: What ``tlsecho cert --bad`` makes.
BAD_KINDS = tuple(k for k in CERT_KINDS if not k.lab)
#: What only the lab makes (tlsecho.lab.certs).
LAB_KINDS = tuple(k for k in CERT_KINDS if k.lab)
