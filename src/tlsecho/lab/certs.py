"""The lab's certificate kinds beyond ``tlsecho cert --bad``: chains with
intermediates, weak signatures and keys, wrong usages, big ones.

Each is signed (through intermediates where it needs them) by the CA of a
:class:`~tlsecho.pki.certs.Pki`, so a client trusts one CA for the whole lab
(``tlsecho lab``). The ``.crt`` file is what the server presents: the leaf
and the intermediates it sends (none for ``incomplete-chain``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsecho.errors import CertificateError
from tlsecho.pki.certs import DEFAULT_HOSTS, CertPair, Pki
from tlsecho.pki.issuer import Issuer, PrivateKey, Usage, general_names, key_pem, pem
from tlsecho.pki.kinds import LAB_KINDS, CertKind

__all__ = ["LAB_KINDS", "LabKind", "write_lab_certs"]


#: The lab's kinds (tlsecho.pki.kinds has the whole catalogue).
LabKind = CertKind


def _cn(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _sha1_leaf(ca: CertPair, hosts: tuple[str, ...], out: Path) -> bytes:
    """A SHA-1-signed leaf, by the openssl command (cryptography no longer
    signs with SHA-1)."""
    san = ",".join(
        f"IP:{h}" if ":" in h or h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts
    )
    with tempfile.TemporaryDirectory() as tmp:
        ext = Path(tmp) / "ext.cnf"
        ext.write_text(
            f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
            "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
        )
        csr = Path(tmp) / "leaf.csr"
        run = [
            ["openssl", "req", "-new", "-key", str(out / "sha1.key"), "-subj", "/CN=localhost"],
            ["-out", str(csr)],
        ]
        # A random serial: -CAcreateserial would leave ca.srl beside the CA.
        sign = [
            *("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca.cert)),
            *("-CAkey", str(ca.key), "-set_serial", str(x509.random_serial_number())),
            *("-sha1", "-days", "365", "-extfile", str(ext), "-out", str(Path(tmp) / "leaf.crt")),
        ]
        for cmd in ([*run[0], *run[1]], sign):
            try:
                subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            except OSError as exc:
                raise CertificateError(f"cannot run openssl: {exc.strerror or exc}") from None
            except subprocess.CalledProcessError as exc:
                said = exc.stderr.decode(errors="replace").strip().splitlines()
                raise CertificateError(
                    "openssl could not make the SHA-1 certificate: "
                    + (said[-1] if said else f"exit {exc.returncode}")
                ) from None
        return (Path(tmp) / "leaf.crt").read_bytes()


def write_lab_certs(
    out: Path, pki: Pki, hosts: tuple[str, ...] = DEFAULT_HOSTS
) -> dict[str, CertPair]:
    """Write the :data:`LAB_KINDS` into ``out`` (``<kind>.crt``/``.key``),
    signed under ``pki``'s CA; by kind."""
    root = Issuer.load(pki.ca.cert, pki.ca.key)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    valid = {"not_before": start, "not_after": start + dt.timedelta(days=365)}
    names = general_names(hosts)
    made: dict[str, tuple[bytes, bytes]] = {}

    def leaf(
        issuer: Issuer,
        key: PrivateKey | None = None,
        *,
        usage: Usage = "server",
        eku: list[x509.ObjectIdentifier] | None = None,
        sans: list[x509.GeneralName] = names,
    ) -> tuple[x509.Certificate, PrivateKey]:
        k = key or ec.generate_private_key(ec.SECP256R1())
        return issuer.issue(k, _cn(hosts[0]), names=sans, usage=usage, eku=eku, **valid), k

    def intermediate(issuer: Issuer, cn: str, **kw: Any) -> Issuer:
        return issuer.intermediate(_cn(cn), **valid, **kw)

    inter = intermediate(root, "tlsecho lab intermediate")
    cert, key = leaf(inter)
    made["incomplete-chain"] = (pem(cert), key_pem(key))  # the intermediate left out
    sha1_key = ec.generate_private_key(ec.SECP256R1())
    (out / "sha1.key").write_bytes(key_pem(sha1_key))
    made["sha1"] = (_sha1_leaf(pki.ca, hosts, out), key_pem(sha1_key))
    cert, key = leaf(root, rsa.generate_private_key(public_exponent=65537, key_size=1024))
    made["rsa-1024"] = (pem(cert), key_pem(key))
    cert, key = leaf(root, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    made["no-server-eku"] = (pem(cert), key_pem(key))
    cert, key = leaf(root, usage="ca-only")
    made["ca-leaf"] = (pem(cert), key_pem(key))
    constrained = intermediate(
        root,
        "tlsecho lab constrained intermediate",
        extra=lambda b: b.add_extension(
            x509.NameConstraints(
                permitted_subtrees=[
                    x509.DNSName("permitted.invalid"),
                    x509.IPAddress(ipaddress.ip_network("192.0.2.0/24")),
                ],
                excluded_subtrees=None,
            ),
            critical=True,
        ),
    )
    cert, key = leaf(constrained)
    made["name-constraints"] = (pem(cert, constrained.cert), key_pem(key))
    many = names + [x509.DNSName(f"san{i}.lab.invalid") for i in range(1000 - len(names))]
    cert, key = leaf(root, sans=many)
    made["1000-sans"] = (pem(cert), key_pem(key))
    chain = [root]
    for i in range(8):
        chain.append(intermediate(chain[-1], f"tlsecho lab intermediate {i + 1}"))
    cert, key = leaf(chain[-1])
    made["deep-chain"] = (pem(cert, *(c.cert for c in reversed(chain[1:]))), key_pem(key))
    pairs = {}
    for kind, (cert_bytes, key_bytes) in made.items():
        pair = CertPair(out / f"{kind}.crt", out / f"{kind}.key")
        pair.key.write_bytes(key_bytes)
        pair.key.chmod(0o600)
        pair.cert.write_bytes(cert_bytes)
        pairs[kind] = pair
    return pairs
