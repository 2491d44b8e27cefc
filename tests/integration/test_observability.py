"""Prometheus metrics scraped over real HTTP, and JSON log lines."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess

from tests.helpers import TLSECHO, scrape, start_server
from tlsecho.errors import PLAIN_HTTP
from tlsecho.pki.certs import Pki


def test_metrics_and_json_logs(ca_pki: Pki) -> None:
    srv = start_server(
        "--cert",
        str(ca_pki.server.cert),
        "--key",
        str(ca_pki.server.key),
        "--metrics",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--mode",
        "line",
        "--max-line",
        "100",
        "--fingerprint",
    )
    try:
        line = srv.wait_for(r"metrics on http://")[0]
        url = line.split("metrics on ", 1)[1]  # wait_for gives a JSON record as its text
        ca = ["--cafile", str(ca_pki.ca.cert), "--mode", "line", "-q"]
        send = [*TLSECHO, "send", "--host", "127.0.0.1", "--port", str(srv.port), *ca]
        for msg in ("first\n", "second line\n"):
            assert subprocess.run([*send, msg], capture_output=True, check=False).returncode == 0
        with socket.create_connection(("127.0.0.1", srv.port)) as s:  # not TLS
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                s.recv(100)
        too_long = subprocess.run([*send, "x" * 200], capture_output=True, check=False)
        assert too_long.returncode == 1
        srv.wait_for_record(outcome="framing-error")
        m = scrape(url)
        assert m[("tlsecho_connections_total", (("outcome", "eof"),))] == 2
        assert m[("tlsecho_connections_total", (("outcome", "handshake-failed"),))] == 1
        assert m[("tlsecho_connections_total", (("outcome", "framing-error"),))] == 1
        assert m[("tlsecho_handshake_failures_total", (("reason", PLAIN_HTTP),))] == 1
        assert m[("tlsecho_framing_errors_total", ())] == 1
        tls13 = (("cipher", "TLS_AES_256_GCM_SHA384"), ("tls_version", "TLSv1.3"))
        assert m[("tlsecho_handshakes_total", tls13)] == 3
        # --fingerprint: the three ClientHellos by JA4 (one client, one JA4).
        hellos = {k: v for k, v in m.items() if k[0] == "tlsecho_client_hellos_total"}
        assert list(hellos.values()) == [3], hellos
        received = m[("tlsecho_received_bytes_total", ())]
        assert 6 + 12 + 101 <= received <= 6 + 12 + 201  # the long line: cut short
        assert m[("tlsecho_sent_bytes_total", ())] == 6 + 12
        assert m[("tlsecho_session_duration_seconds_count", ())] == 4
        assert m[("tlsecho_handshake_duration_seconds_count", ())] == 3
        assert m[("tlsecho_connections_active", ())] == 0
    finally:
        assert srv.stop() == 0
    events = [json.loads(ln) for ln in srv.lines() if ln.startswith("{")]
    assert len(events) == len(srv.lines())  # every line is one JSON object
    conns = [e for e in events if e["event"] == "connection"]
    assert len(conns) == 4
    keys = {
        "ts",
        "level",
        "logger",
        "event",
        "peer",
        "via",
        "tls_version",
        "cipher",
        "sni",
        "alpn",
        "ja4",
        "client_cert",
        "bytes_in",
        "bytes_out",
        "discarded",
        "duration_s",
        "outcome",
        "reason",
        "worker",
        "endpoint",
        "fault",
    }
    hello_keys = {
        "ja3",
        "ja3_hash",
        "ja4_r",
        "offered_versions",
        "offered_cipher_suites",
        "offered_groups",
        "offered_key_share_groups",
        "offered_signature_algorithms",
        "offered_alpn",
    }
    for e in conns:
        # What the client offered, when it sent a ClientHello (not the HTTP request).
        assert set(e) == keys | (hello_keys if e["ja4"] else set())
        assert (e["ja4"] is None) == (e["reason"] == PLAIN_HTTP)
        assert e["worker"] is None  # one process: no --workers
    assert sum(e["bytes_in"] for e in conns) == received  # the logs and metrics agree
    first = conns[0]
    assert first["outcome"] == "eof"
    assert (first["bytes_in"], first["bytes_out"], first["tls_version"]) == (6, 6, "TLSv1.3")
    assert first["sni"] is None  # an IP address is never sent as SNI


def test_metrics_port_in_use(ca_pki: Pki) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run(
            [
                *TLSECHO,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--metrics",
                f"127.0.0.1:{port}",
                "--cert",
                str(ca_pki.server.cert),
                "--key",
                str(ca_pki.server.key),
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert p.returncode == 1
    last = p.stderr.decode().splitlines()[-1]
    assert last == (
        f"tlsecho serve: error: cannot serve metrics on 127.0.0.1:{port}: address already in use"
    )


def test_grafana_dashboard_uses_real_metric_names() -> None:
    import re
    from pathlib import Path

    from tlsecho.server.metrics import Metrics

    dash = json.loads(
        (Path(__file__).resolve().parents[2] / "contrib/grafana/tlsecho-dashboard.json").read_text()
    )
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"tlsecho_[a-z_]+", e)}
    metrics = Metrics(active=lambda: 0)
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    exposed = {fam.name + sfx for fam in metrics.registry.collect() for sfx in suffixes}
    assert used, "no metric in the dashboard"
    assert used <= exposed, used - exposed
