"""Know your client: the server reads every ClientHello (refused ones
included) and logs what was offered with its JA3/JA4, checked with real
clients (openssl s_client with chosen suites and groups, curl, Python's ssl,
node) and against Wireshark's own JA3 of the same live handshakes."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import helpers
from tests.helpers import ServerProcess, start_server, stop_cleanly
from tlsecho.errors import PLAIN_HTTP
from tlsecho.pki.certs import CertPair
from tlsecho.wire.clienthello import parse_client_hello

PEERS = Path(__file__).parent.parent / "peers"


@pytest.fixture
def jserver(pki: CertPair, loop_name: str) -> Iterator[ServerProcess]:
    """``tlsecho serve --log-format json`` with the test pair, on each loop."""
    srv = start_server(
        *("--cert", str(pki.cert), "--key", str(pki.key), "--loop", loop_name),
        *("--log-format", "json", "--fingerprint"),
    )
    yield srv
    stop_cleanly(srv)


def s_client(port: int, *args: str, data: bytes = b"hi\x00") -> subprocess.CompletedProcess[bytes]:
    return helpers.s_client(port, "-quiet", *args, data=data, ign_eof=False)


def test_openssl_s_client_offers_what_it_was_told(jserver: ServerProcess) -> None:
    p = s_client(
        jserver.port,
        "-tls1_3",
        "-ciphersuites",
        "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
        "-groups",
        "X25519:P-384",
        "-servername",
        "example.test",
        "-alpn",
        "foo,bar",
    )
    assert p.stdout == b"hi", p.stderr
    (rec,) = jserver.wait_for_record(outcome="terminated")
    # OpenSSL 3.0 adds the renegotiation SCSV even to a TLS 1.3-only hello.
    scsv = "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"
    suites = [c for c in rec["offered_cipher_suites"] if c != scsv]
    assert suites == ["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"]
    assert rec["cipher"] == "TLS_CHACHA20_POLY1305_SHA256"
    assert rec["offered_groups"] == ["x25519", "secp384r1"]
    assert rec["offered_key_share_groups"] == ["x25519"]
    assert rec["offered_versions"] == ["TLSv1.3"]
    assert rec["offered_alpn"] == ["foo", "bar"]
    assert rec["sni"] == "example.test"
    # t13 (TLS 1.3), d (a domain in SNI), the suites' count, "fo": first ALPN value.
    count = len(rec["offered_cipher_suites"])
    assert rec["ja4"].startswith(f"t13d{count:02d}") and rec["ja4"][8:10] == "fo", rec["ja4"]
    assert rec["ja4_r"].split("_")[1] in ("1301,1303", "00ff,1301,1303")
    assert len(rec["ja3_hash"]) == 32


def test_a_refused_handshake_is_fingerprinted_too(jserver: ServerProcess) -> None:
    # A TLS 1.0-only client: the server refuses it, and still says who it was.
    s_client(jserver.port, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
    (rec,) = jserver.wait_for_record(outcome="handshake-failed")
    assert rec["ja4"].startswith("t10i"), rec
    assert rec["offered_versions"] == []  # no supported_versions before TLS 1.3
    assert rec["tls_version"] is None


def test_not_tls_has_no_fingerprint_and_changes_nothing(jserver: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", jserver.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(100)
    (rec,) = jserver.wait_for_record(outcome="handshake-failed")
    assert rec["ja4"] is None and "ja3" not in rec
    assert rec["reason"] == PLAIN_HTTP  # OpenSSL's verdict, as before


def test_curl_offers_h2_and_http11(jserver: ServerProcess, pki: CertPair) -> None:
    curl(jserver.port, pki.cert)
    (rec,) = jserver.wait_for_record(sni="localhost")
    assert rec["offered_alpn"][:2] == ["h2", "http/1.1"] or rec["offered_alpn"] == ["http/1.1"]
    assert rec["ja4"][:4] == "t13d", rec["ja4"]


def test_node_tls_client(jserver: ServerProcess, pki: CertPair) -> None:
    script = (
        "const tls=require('tls');const fs=require('fs');"
        "const s=tls.connect({port:+process.argv[1],host:'127.0.0.1',servername:'localhost',"
        "ca:fs.readFileSync(process.argv[2]),ALPNProtocols:['mqtt']},()=>{s.end('hi\\0')});"
        "s.on('data',d=>process.stdout.write(d));"
    )
    p = subprocess.run(
        ["node", "-e", script, str(jserver.port), str(pki.cert)],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert p.stdout == b"hi", p.stderr
    (rec,) = jserver.wait_for_record(outcome="terminated")
    assert rec["offered_alpn"] == ["mqtt"] and rec["ja4"][8:10] == "mt"


def curl(port: int, ca: Path) -> None:
    cmd = ["curl", "-s", "--max-time", "5", "--cacert", str(ca), "-o", os.devnull]
    subprocess.run([*cmd, f"https://localhost:{port}/"], timeout=20, check=False)


def read_available(tls: ssl.SSLObject) -> tuple[bytes, bool]:
    """What the TLS object can give now, and whether close_notify came."""
    out = b""
    try:
        while chunk := tls.read(4096):
            out += chunk
    except ssl.SSLWantReadError:
        return out, False
    return out, True


def handshake_in_pieces(
    port: int, ca: Path, pieces: list[int], pause: float
) -> tuple[bytes, bytes]:
    """A Python ssl client whose ClientHello goes out in pieces (cut at the
    given offsets, ``pause`` seconds apart); returns it and the echo."""
    ctx = ssl.create_default_context(cafile=str(ca))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cuts = [0, *pieces, len(hello)]
        for a, b in itertools.pairwise(cuts):
            sock.sendall(hello[a:b])
            time.sleep(pause)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        tls.write(b"pieces\x00")
        sock.sendall(outgoing.read())
        echo, closed = b"", False
        while not closed:  # the echo, then the server's close_notify
            data = sock.recv(65536)
            assert data, "the server closed without close_notify"
            incoming.write(data)
            chunk, closed = read_available(tls)
            echo += chunk
    return hello, echo


def test_a_client_hello_in_pieces(jserver: ServerProcess, pki: CertPair) -> None:
    # Three TCP segments (record header, part of the body, the rest): the
    # server waits for the whole ClientHello, then OpenSSL reads it all.
    hello, echo = handshake_in_pieces(jserver.port, pki.cert, [3, 200], 0.2)
    assert echo == b"pieces"
    (rec,) = jserver.wait_for_record(outcome="terminated")
    assert rec["ja4"] == parse_client_hello(hello).ja4()
    assert rec["bytes_in"] == 7 and rec["bytes_out"] == 6


def test_no_fingerprint_by_default(pki: CertPair) -> None:
    srv = start_server("--cert", str(pki.cert), "--key", str(pki.key), "--log-format", "json")
    try:
        assert s_client(srv.port).stdout == b"hi"
        (rec,) = srv.wait_for_record(outcome="terminated")
        assert rec["ja4"] is None and "offered_versions" not in rec
    finally:
        stop_cleanly(srv)


@pytest.mark.skipif(os.geteuid() != 0, reason="a live capture on lo needs root (CI runs as root)")
def test_ja3_agrees_with_wireshark_on_live_handshakes(pki: CertPair, tmp_path: Path) -> None:
    """tshark captures the same handshakes on lo and computes its own JA3
    (and JA4 where this Wireshark has it: 4.2 and later)."""
    assert shutil.which("tshark"), "tshark is installed by `make tools`"
    srv = start_server(
        *("--cert", str(pki.cert), "--key", str(pki.key), "--log-format", "json", "--fingerprint")
    )
    fields = ["-e", "tcp.srcport", "-e", "tls.handshake.ja3", "-e", "tls.handshake.ja3_full"]
    has_ja4 = (
        "tls.handshake.ja4"
        in subprocess.run(
            ["tshark", "-G", "fields"], capture_output=True, text=True, check=False
        ).stdout
    )
    if has_ja4:
        fields += ["-e", "tls.handshake.ja4"]
    errors = tmp_path / "tshark.err"
    with errors.open("w") as err:
        cap = subprocess.Popen(
            [
                *("tshark", "-i", "lo", "-l", "-n", "-f", f"tcp dst port {srv.port}"),
                *("-Y", "tls.handshake.type == 1", "-T", "fields", *fields, "-a", "duration:60"),
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    lines: list[str] = []

    def read() -> None:
        assert cap.stdout is not None
        lines.extend(iter(cap.stdout.readline, ""))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    try:
        # "Capturing on" can come before the filter catches packets: a first
        # handshake, until tshark has seen it, proves the capture is live.
        deadline = time.monotonic() + 30
        while "Capturing on" not in errors.read_text():
            assert time.monotonic() < deadline and cap.poll() is None, errors.read_text()
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        warm_ups = 0
        while not lines:
            assert time.monotonic() < deadline, errors.read_text()
            s_client(srv.port)
            warm_ups += 1
            time.sleep(0.2)
        s_client(srv.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:AES256-SHA")
        s_client(srv.port, "-groups", "P-256:X25519", "-servername", "tshark.test")
        curl(srv.port, pki.cert)
        handshake_in_pieces(srv.port, pki.cert, [100], 0.1)
        records = srv.wait_for_record(count=4 + warm_ups, ja4=r"t1.*")[warm_ups:]
        ports = {rec["peer"].rsplit(":", 1)[1] for rec in records}
        deadline = time.monotonic() + 30
        while not ports <= {line.split("\t")[0] for line in lines}:
            assert time.monotonic() < deadline and cap.poll() is None, "".join(lines)
            time.sleep(0.05)
    finally:
        cap.send_signal(signal.SIGINT)
        cap.communicate(timeout=30)
        reader.join(10)
        stop_cleanly(srv)
    # One line per ClientHello: source port, JA3, JA3 string[, JA4].
    out = "".join(lines)
    seen = {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()}
    assert len(records) == 4, out
    for rec in records:
        theirs = seen[rec["peer"].rsplit(":", 1)[1]]
        ours = [rec["ja3_hash"], rec["ja3"]] + ([rec["ja4"]] if has_ja4 else [])
        assert ours == theirs
