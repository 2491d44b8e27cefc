"""``tlsecho lab``: every bad certificate, policy and fault, one port each,
with a manifest that says what a correct client must do with each.

The catalog (:func:`catalog`) is static: names, what each endpoint is, the
expected outcome. :func:`start_lab` writes a PKI and the lab certificates,
starts one :class:`~tlsecho.server.core.EchoServer` per endpoint and returns the
manifest (:func:`manifest`), the document a program reads (``--manifest``,
the ``tlsecho_lab`` pytest fixture); :func:`render` is the table a person
reads.

Expected outcomes (``expect.result``): ``echo`` (the NUL echo comes back
intact, then close_notify), ``reject`` (the client refuses the certificate;
``detail`` is OpenSSL's verify message), ``alert`` (the server sends that
fatal alert), ``error`` (the connection breaks: ``reset``, ``closed``,
``bad record mac``, ``truncated``, ``not tls``), ``cut`` (part of the echo,
then close_notify) and ``timeout`` (the server never answers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlsecho._version import __version__
from tlsecho.config import ServerConfig
from tlsecho.lab.badssl import ENDPOINTS as BADSSL
from tlsecho.lab.badssl import endpoint_config
from tlsecho.lab.certs import write_lab_certs
from tlsecho.pki.certs import CertPair, Pki, write_pki
from tlsecho.pki.kinds import CERT_KINDS, LAB_KINDS
from tlsecho.server.net import bind_all
from tlsecho.tls import INTERMEDIATE_CIPHERS
from tlsecho.wire.faults import RECORD_FAULTS, parse_fault

if TYPE_CHECKING:
    from tlsecho.server.group import ServerGroup

__all__ = ["LabEntry", "catalog", "lab_configs", "manifest", "render", "write_lab_pki"]

#: The message every lab client sends (mode nul: the server echoes it and closes).
MESSAGE = b"hello, lab"

#: Stack-neutral reason codes of the ``reject`` endpoints (``detail`` stays
#: OpenSSL's words), whether every correct client must reject (``strict``) or
#: only some stacks' policy does, and which rule that policy is. Checked
#: against the RFCs and CA/B Forum rules, OpenSSL (s_client, curl, Python,
#: node) and GnuTLS (gnutls-cli) in tests/integration/test_lab.py.
REJECTS: dict[str, tuple[str, bool, str | None]] = {
    "expired": ("expired", True, None),  # RFC 5280 6.1.3 (a)(2)
    "not-yet-valid": ("not-yet-valid", True, None),
    "wrong-host": ("hostname", True, None),  # RFC 6125 6, RFC 9110 4.3.4
    "self-signed": ("untrusted", True, None),  # RFC 5280 6.1: no path to a trust anchor
    "unknown-ca": ("untrusted", True, None),
    "incomplete-chain": (
        "untrusted",
        False,
        "a client that builds its path only from what the server sent and its trust store "
        "rejects it (OpenSSL, GnuTLS, Go); one that fetches or caches intermediates "
        "(browsers, Windows, Android) may complete the chain",
    ),
    "sha1": (
        "weak-signature",
        False,
        "SHA-1 signatures are forbidden by the CA/B Forum Baseline Requirements (7.1.3) and "
        "refused by OpenSSL 3 at security level 1 and up and by GnuTLS; a stack with an "
        "older or legacy policy may accept them",
    ),
    "rsa-1024": (
        "weak-key",
        False,
        "OpenSSL refuses RSA keys under 2048 bits only at security level 2 and up (Debian's "
        "default); GnuTLS's NORMAL priority verifies at its low profile and accepts it "
        "(NORMAL:%PROFILE_MEDIUM refuses it); some stacks have no RSA minimum",
    ),
    "no-server-eku": ("purpose", True, None),  # RFC 5280 4.2.1.12: MUST NOT be used
    "ca-leaf": (
        "purpose",
        False,
        "a CA certificate with keyUsage keyCertSign only: OpenSSL and GnuTLS check the "
        "leaf's key usage and reject it; some stacks do not (golang/go #40100)",
    ),
    "name-constraints": ("name-constraints", True, None),  # RFC 5280 4.2.1.10
}


@dataclass(frozen=True)
class LabEntry:
    """One endpoint of the lab."""

    name: str
    kind: str
    """``certificate``, ``policy`` or ``fault``."""
    what: str
    result: str
    """What a correct client gets: echo, reject, alert, error, cut or timeout."""
    detail: str
    cert: str = "server"
    """The certificate served: ``server``, a bad kind or a lab kind."""
    options: tuple[tuple[str, Any], ...] = ()
    """ServerConfig fields."""
    needs: tuple[tuple[str, Any], ...] = ()
    """What the client must offer for that outcome (``client_cert``, ``alpn``)."""

    @property
    def expect(self) -> str:
        return f"{self.result}: {self.detail}"


def _fault(name: str, spec: str, result: str, detail: str, what: str) -> LabEntry:
    fault = parse_fault(spec)
    options: tuple[tuple[str, Any], ...] = (("faults", (fault,)),)
    if fault.name in RECORD_FAULTS:  # our records: the memory-BIO engine
        options += (("engine", "membio"),)
    return LabEntry(name, "fault", what, result, detail, options=options)


_NEEDS = {
    "client-cert-required": (("client_cert", True),),
    "alpn-required": (("alpn", ("echo",)),),
}


def catalog() -> list[LabEntry]:
    """Every endpoint, in order: the control, certificates, policies, faults."""
    out = [LabEntry("ok", "certificate", "a valid certificate for the hosts", "echo", "intact")]
    kinds = {k.name: k for k in CERT_KINDS}
    for ep in BADSSL:  # badssl's certificates, then its policies
        if (k := kinds.get(ep.name)) is not None:
            out.append(LabEntry(k.name, "certificate", k.what, k.result, k.detail, k.name))
        else:
            needs = _NEEDS.get(ep.name, ())
            entry = LabEntry(ep.name, "policy", ep.what, "echo", "intact")
            out.append(dataclasses.replace(entry, options=ep.options, needs=needs))
    for k in LAB_KINDS:
        options: tuple[tuple[str, Any], ...] = ()
        if k.weak:  # OpenSSL refuses to load it at its default security level
            options = (("ciphers", INTERMEDIATE_CIPHERS + ":@SECLEVEL=0"),)
        out.append(LabEntry(k.name, "certificate", k.what, k.result, k.detail, k.name, options))
    alerts = ("handshake_failure", "protocol_version", "unrecognized_name", "internal_error")
    out += [
        _fault("stall", "stall", "timeout", "no answer", "the ClientHello is never answered"),
        _fault(
            "close-after-hello", "close-after-hello", "error", "closed", "a FIN, no ServerHello"
        ),
        _fault(
            "reset-after-hello", "reset-after-hello", "error", "reset", "a reset, no ServerHello"
        ),
        *(
            _fault(f"alert-{a.replace('_', '-')}", f"alert={a}", "alert", a, f"a fatal {a} alert")
            for a in alerts
        ),
        _fault(
            "reset-mid-handshake",
            "reset-mid-handshake",
            "error",
            "reset",
            "a reset after our first flight",
        ),
        _fault("slow-handshake", "slow-handshake=0.3", "echo", "intact", "each flight 0.3 s late"),
        _fault("slice", "slice=1", "echo", "intact", "our records in 1-byte TCP segments"),
        _fault(
            "corrupt",
            "corrupt",
            "error",
            "bad record mac",
            "our first application record corrupted",
        ),
        _fault(
            "truncate", "truncate", "error", "truncated", "the echo, then a FIN and no close_notify"
        ),
        _fault(
            "garbage",
            "garbage-after-handshake",
            "error",
            "not tls",
            "no TLS record after the handshake",
        ),
        _fault("latency", "latency=200", "echo", "intact", "each echo 200 ms late"),
        _fault("bandwidth", "bandwidth=2000", "echo", "intact", "the echo at 2000 bytes/s"),
        _fault("limit", "limit=5", "cut", "5 bytes", "5 bytes of echo, then close_notify"),
        _fault(
            "stall-after",
            "stall-after=5",
            "timeout",
            "after 5 bytes",
            "5 bytes of echo, then silence",
        ),
        _fault("reset-after", "reset-after=5", "error", "reset", "5 bytes of echo, then a reset"),
    ]
    return out


def write_lab_pki(out: Path) -> tuple[Pki, dict[str, CertPair]]:
    """The lab's certificates in ``out``: ``tlsecho cert --ca --bad`` and the lab kinds."""
    out.mkdir(parents=True, exist_ok=True)
    pki = write_pki(out, bad=True, force=True)
    return pki, write_lab_certs(out, pki)


def lab_configs(
    pki: Pki, lab: dict[str, CertPair], base: ServerConfig, first_port: int = 0
) -> list[tuple[LabEntry, ServerConfig]]:
    """One ServerConfig per endpoint, on consecutive ports from
    ``first_port`` (free ports when 0)."""
    out = []
    for i, entry in enumerate(catalog()):
        pair = pki.server
        if entry.cert in pki.bad:
            pair = pki.bad[entry.cert]
        elif entry.cert in lab:
            pair = lab[entry.cert]
        port = first_port + i if first_port else 0
        cfg = endpoint_config(base, pki, pair, dict(entry.options), port)
        out.append((entry, cfg))
    return out


#: What a client speaks to the lab's endpoints, by ``--mode``.
PROTOCOLS = {
    "nul": "mode nul: send a message ended by a NUL byte; the server echoes what came "
    "before the NUL, then close_notify",
    "http": "mode http: HTTPS (HTTP/1.1, or h2 by ALPN); every path answers with tlsbin's "
    "JSON of what arrived (its page for Accept: text/html): 'echo' is that answer",
}


def manifest(
    pki: Pki, endpoints: list[tuple[LabEntry, str, int]], mode: str = "nul"
) -> dict[str, Any]:
    """The document a program reads: what to trust, and for each endpoint
    where it listens and what a correct client must do."""
    return {
        "tlsecho": __version__,
        "ca": str(pki.ca.cert),
        "client_cert": str(pki.client.cert),
        "client_key": str(pki.client.key),
        "mode": mode,
        "protocol": PROTOCOLS[mode],
        "endpoints": [
            {
                "name": e.name,
                "kind": e.kind,
                "what": e.what,
                "host": host,
                "port": port,
                "sni": "localhost",
                "expect": _expect(e),
                "expect_text": e.expect,
                "needs": {k: list(v) if isinstance(v, tuple) else v for k, v in e.needs},
            }
            for e, host, port in endpoints
        ],
    }


def _expect(e: LabEntry) -> dict[str, Any]:
    """The manifest's ``expect``: a ``reject`` also says its stack-neutral
    ``reason``, whether every correct client must reject (``strict``) and,
    when not, the ``policy`` that makes some reject it."""
    out: dict[str, Any] = {"result": e.result, "detail": e.detail}
    if e.result == "reject":
        reason, strict, policy = REJECTS[e.name]
        out |= {"reason": reason, "strict": strict}
        if policy is not None:
            out["policy"] = policy
    return out


def render(doc: dict[str, Any]) -> str:
    """The table a person reads."""
    eps = doc["endpoints"]
    width = max(len(e["name"]) for e in eps)
    lines = [
        f"tlsecho lab: {len(eps)} endpoints; trust {doc['ca']}",
        f"  {doc.get('protocol', PROTOCOLS['nul'])}",
        f"  {'port':>5}  {'endpoint':<{width}}  {'kind':<11}  a correct client must get",
    ]
    for e in eps:
        needs = e["needs"]
        extra = ""
        if needs.get("client_cert"):
            extra = "  (present client.crt)"
        elif needs.get("alpn"):
            extra = f"  (offer ALPN {','.join(needs['alpn'])})"
        if e["expect"].get("strict") is False:
            extra += "  (a policy: some correct stacks accept it)"
        lines.append(
            f"  {e['port']:>5}  {e['name']:<{width}}  {e['kind']:<11}  {e['expect_text']}{extra}"
        )
    lines.append(f"client certificate: {doc['client_cert']} (key {doc['client_key']})")
    return "\n".join(lines)


async def start_lab(
    out: Path, host: str = "127.0.0.1", first_port: int = 0, base: ServerConfig | None = None
) -> tuple[ServerGroup, dict[str, Any]]:
    """Write the lab's certificates into ``out``, start every endpoint (on
    the running loop; all or none) and return them and the manifest."""
    from tlsecho.server.core import EchoServer
    from tlsecho.server.group import ServerGroup

    if first_port:
        # Every port is free before anything is written: a second lab on the
        # same ports must fail without replacing the running lab's CA (its
        # clients would stop trusting it; issue 17). A race with another
        # program in between is still possible, not a second lab's mistake.
        for i in range(len(catalog())):
            for probe in bind_all(host, first_port + i, listen=False):
                probe.close()
    pki, lab = write_lab_pki(out)
    base = base or ServerConfig()
    base = dataclasses.replace(base, host=host)
    configs = lab_configs(pki, lab, base, first_port)
    # Each connection's line says which endpoint it hit.
    group = ServerGroup(EchoServer(cfg, name=entry.name) for entry, cfg in configs)
    await group.start()
    placed = [
        (entry, str(srv.addresses[0][0]), int(srv.addresses[0][1]))
        for (entry, _), srv in zip(configs, group.servers, strict=True)
    ]
    return group, manifest(pki, placed, base.mode)
