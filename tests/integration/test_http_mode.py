"""``serve --mode http`` (tlsbin) against clients nobody here wrote: curl
(HTTP/1.1, h2, a client certificate), httpx with HTTP/2, node's https,
openssl s_client with a hand-written request, Python's ssl for pipelining
and bad input; the limits, /health by POST and SIGUSR1, the metrics."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ServerProcess, as_record, scrape, start_server, stop_cleanly
from tlsecho.errors import PLAIN_HTTP
from tlsecho.pki.certs import Pki
from tlsecho.wire.proxy_protocol import build_v2

pytestmark = pytest.mark.interop


def http_server(ca_pki: Pki, *extra: str) -> ServerProcess:
    return start_server(
        *("--cert", str(ca_pki.server.cert), "--key", str(ca_pki.server.key)),
        *("--client-ca", str(ca_pki.ca.cert), "--client-auth", "optional"),
        *("--mode", "http", "--log-format", "json", *extra),
    )


@pytest.fixture
def srv(ca_pki: Pki, loop_name: str) -> Iterator[ServerProcess]:
    server = http_server(ca_pki, "--loop", loop_name)
    yield server
    stop_cleanly(server)


def curl(
    srv: ServerProcess, ca_pki: Pki, path: str, *args: str
) -> subprocess.CompletedProcess[str]:
    url = f"https://localhost:{srv.port}{path}"
    cmd = ["curl", "-sS", "--cacert", str(ca_pki.ca.cert), *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def tls_socket(srv: ServerProcess, ca_pki: Pki, alpn: str = "http/1.1") -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
    ctx.set_alpn_protocols([alpn])
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_all(sock: ssl.SSLSocket) -> bytes:
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except (ssl.SSLError, OSError):
            break
        if not data:
            break
        out += data
    return out


@pytest.mark.parametrize("version", ["--http1.1", "--http2"])
def test_curl_gets_the_json_on_both_versions(srv: ServerProcess, ca_pki: Pki, version: str) -> None:
    p = curl(
        srv,
        ca_pki,
        "/some/path?x=1",
        version,
        *("-H", "X-Forwarded-For: 203.0.113.5", "--data-binary", "hello body"),
        *("--cert", str(ca_pki.client.cert), "--key", str(ca_pki.client.key)),
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    req, tls = doc["request"], doc["tls"]
    want = "2" if version == "--http2" else "1.1"
    assert req["http_version"] == want and req["method"] == "POST"
    assert req["path"] == "/some/path" and req["query"] == {"x": ["1"]}
    assert req["body"] == "hello body"
    assert doc["connection"]["x_forwarded_for"] == ["203.0.113.5"]
    assert doc["connection"]["peer"].startswith("127.0.0.1:")
    assert tls["alpn"] == ("h2" if want == "2" else "http/1.1") and tls["sni"] == "localhost"
    assert tls["version"] == "TLSv1.3" and tls["resumed"] is False
    cert = tls["client_certificate"]
    assert cert["verified"] is True and "CN=" in cert["subject"]
    hello = doc["client_hello"]
    assert hello["ja4"].startswith("t13d") and hello["server_name"] == "localhost"
    assert hello["alpn"][0] == ("h2" if want == "2" else "http/1.1")
    assert doc["server"]["host"] == socket.gethostname()
    # One access record, one connection record with the same JA4.
    srv.wait_for_record(
        event="request", method="POST", target=re.escape("/some/path?x=1"), http_version=want,
        status=200,
    )  # fmt: skip
    (rec,) = srv.wait_for_record(outcome="eof|terminated|error")
    assert (rec["alpn"], rec["ja4"]) == ("h2" if want == "2" else "http/1.1", hello["ja4"])
    assert rec["client_cert"]


def test_curl_reuses_one_connection_for_several_requests(srv: ServerProcess, ca_pki: Pki) -> None:
    url2 = f"https://localhost:{srv.port}/status/201"
    p = curl(srv, ca_pki, "/headers", "--http1.1", url2, "-o", "/dev/null", "-o", "/dev/null")
    assert p.returncode == 0, p.stderr
    srv.wait_for_record(event="request", target="/status/201", http_version="1.1", status=201)
    srv.wait_for_record()
    # curl asks in its order: url2 comes before the helper's own URL.
    assert [r["target"] for r in srv.records("request")] == ["/status/201", "/headers"]
    assert len(srv.records()) == 1, srv.records()  # one connection carried both


def test_httpx_http2_runs_many_streams_on_one_connection(srv: ServerProcess, ca_pki: Pki) -> None:
    async def main() -> list[httpx.Response]:
        ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
        async with httpx.AsyncClient(http2=True, verify=ctx) as client:
            base = f"https://localhost:{srv.port}"
            reqs = [client.get(f"{base}/bytes/{1000 * i}?seed={i}") for i in range(1, 9)]
            reqs.append(client.get(f"{base}/delay/0.3"))
            return await asyncio.gather(*reqs)

    responses = asyncio.run(main())
    assert all(r.http_version == "HTTP/2" and r.status_code == 200 for r in responses)
    assert [len(r.content) for r in responses[:8]] == [1000 * i for i in range(1, 9)]
    assert json.loads(responses[8].content)["request"]["path"] == "/delay/0.3"
    stop_cleanly(srv)
    assert len(srv.records()) == 1
    answered = srv.records("request")
    assert len(answered) == 9
    assert all((r["http_version"], r["status"]) == ("2", 200) for r in answered)


def test_node_https(srv: ServerProcess, ca_pki: Pki) -> None:
    script = f"""
    const https = require('https'); const fs = require('fs');
    https.get({{host: '127.0.0.1', servername: 'localhost', port: {srv.port}, path: '/ip',
               ca: fs.readFileSync({json.dumps(str(ca_pki.ca.cert))})}}, (res) => {{
      let body = ''; res.on('data', (d) => body += d);
      res.on('end', () => console.log(res.statusCode + ' ' + body));
    }}).on('error', (e) => {{ console.error(e.message); process.exit(1); }});
    """
    p = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    status, _, body = p.stdout.partition(" ")
    assert status == "200" and json.loads(body)["origin"] == "127.0.0.1"


def test_openssl_s_client_with_a_hand_written_request(srv: ServerProcess, ca_pki: Pki) -> None:
    request = b"GET /tls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    p = subprocess.run(
        [
            *("openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{srv.port}"),
            *("-CAfile", str(ca_pki.ca.cert), "-servername", "localhost", "-alpn", "http/1.1"),
        ],
        input=request,
        capture_output=True,
        timeout=30,
        check=False,
    )
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), p.stdout
    doc = json.loads(body)
    assert doc["tls"]["alpn"] == "http/1.1" and doc["fingerprints"]["ja4"].startswith("t13d")
    srv.wait_for_record(outcome="terminated")  # Connection: close ends it cleanly


def test_pipelined_requests_are_answered_in_order(srv: ServerProcess, ca_pki: Pki) -> None:
    with tls_socket(srv, ca_pki) as s:
        s.sendall(
            b"GET /delay/0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /status/202 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /status/203 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        started = time.monotonic()
        out = read_all(s)
        took = time.monotonic() - started
    statuses = re.findall(rb"^HTTP/1\.1 (\d{3}) ", out, re.M)
    assert statuses == [b"200", b"202", b"203"] and took >= 0.19


def test_malformed_request_is_a_400_and_one_line_and_others_go_on(
    srv: ServerProcess, ca_pki: Pki
) -> None:
    with tls_socket(srv, ca_pki) as canary:
        canary.sendall(b"GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert canary.recv(65536).startswith(b"HTTP/1.1 201 ")
        with tls_socket(srv, ca_pki) as bad:
            bad.sendall(b"GET / HTTP/1.1\r\nBad Header\x00: x\r\n\r\n")
            out = read_all(bad)
        assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert json.loads(out.partition(b"\r\n\r\n")[2])["status"] == 400
        (rec,) = srv.wait_for_record(
            outcome="framing-error", reason="bad request: illegal header line.*"
        )
        tag = rec["logger"]
        # One line for the bad request (beside --client-auth optional's own note).
        mine = [as_record(ln) for ln in srv.lines() if as_record(ln).get("logger") == tag]
        assert len([r for r in mine if "no client certificate" not in r.get("message", "")]) == 1
        # The canary, on the same server, is untouched.
        canary.sendall(b"GET /status/202 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert canary.recv(65536).startswith(b"HTTP/1.1 202 ")
    text = stop_cleanly(srv)
    assert "Traceback" not in text


def test_caps_body_head_and_request_timeout(ca_pki: Pki) -> None:
    srv = http_server(
        ca_pki, "--max-body", "1000", "--max-header", "2048", "--request-timeout", "0.5"
    )
    try:
        p = curl(
            srv, ca_pki, "/", "--data-binary", "x" * 5000, "-o", "/dev/null", "-w", "%{http_code}"
        )
        assert p.stdout == "413"
        big = "X-Big: " + "a" * 4000
        p = curl(srv, ca_pki, "/", "-H", big, "-o", "/dev/null", "-w", "%{http_code}")
        assert p.stdout == "431"
        with tls_socket(srv, ca_pki) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never ends its head
            started = time.monotonic()
            out = read_all(slow)
            took = time.monotonic() - started
        assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert 0.4 <= took < 3.0
        srv.wait_for_record(reason="request timed out")
    finally:
        stop_cleanly(srv)


def test_health_flips_by_post_and_by_sigusr1(srv: ServerProcess, ca_pki: Pki) -> None:
    def status() -> str:
        return curl(srv, ca_pki, "/health", "-o", "/dev/null", "-w", "%{http_code}").stdout

    assert status() == "200"
    flip = curl(srv, ca_pki, "/health?status=fail", "-X", "POST")
    assert json.loads(flip.stdout) == {"status": "failing"}
    assert status() == "503"
    srv.proc.send_signal(signal.SIGUSR1)
    srv.wait_for(r"main: health: ok")
    assert status() == "200"


def test_metrics_count_requests_by_status(ca_pki: Pki) -> None:
    srv = http_server(ca_pki, "--metrics", "127.0.0.1:0")
    try:
        line = srv.wait_for(r"metrics on http://")[0]
        url = line.split("metrics on ")[1].split()[0]
        for path in ("/status/404", "/status/404", "/"):
            curl(srv, ca_pki, path, "--http2", "-o", "/dev/null")
        srv.wait_for_record(event="request", target="/", http_version="2", status=200)
        samples = scrape(url)
        key = ("tlsecho_http_requests_total", (("http_version", "2"), ("status", "404")))
        assert samples[key] == 2
    finally:
        stop_cleanly(srv)


def test_proxy_v2_header_and_its_tlvs_show_next_to_the_peer(ca_pki: Pki) -> None:
    srv = http_server(ca_pki, "--proxy-protocol", "v2")
    try:
        ssl_tlv = bytes([0x01]) + (0).to_bytes(4, "big")
        ssl_tlv += bytes([0x21]) + len(b"TLSv1.3").to_bytes(2, "big") + b"TLSv1.3"
        header = build_v2(
            ("198.51.100.7", 40000),
            ("203.0.113.1", 443),
            tlvs=((0x02, b"front.example"), (0x20, ssl_tlv)),
        )
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        raw.sendall(header)
        ctx = ssl.create_default_context(cafile=str(ca_pki.ca.cert))
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            doc: dict[str, Any] = json.loads(read_all(s).partition(b"\r\n\r\n")[2])
        conn = doc["connection"]
        assert conn["peer"] == "198.51.100.7:40000" and conn["via"].startswith("127.0.0.1:")
        proxy = conn["proxy_protocol"]
        assert proxy["version"] == 2 and proxy["destination"] == "203.0.113.1:443"
        authority, tls = proxy["tlvs"]
        assert authority == {"type": 2, "name": "authority", "value": "front.example"}
        assert tls["name"] == "ssl" and tls["client"] == ["ssl"] and tls["verified"] is True
        assert tls["version"] == "TLSv1.3"
    finally:
        stop_cleanly(srv)


def _h2_frames(kind: str) -> bytes:
    """A flood of one kind of HTTP/2 frame, after the client preface."""
    from hyperframe.frame import (
        ContinuationFrame,
        HeadersFrame,
        PingFrame,
        RstStreamFrame,
        SettingsFrame,
    )

    out = [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", SettingsFrame(0).serialize()]
    if kind == "ping":
        out += [PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize() for i in range(3000)]
    elif kind == "settings":
        out += [SettingsFrame(0, settings={4: 65535}).serialize() for _ in range(3000)]
    elif kind == "rst_stream":  # "rapid reset": open a stream, cancel it, again
        import hpack

        block = hpack.Encoder().encode(
            [(":method", "GET"), (":path", "/delay/5"), (":scheme", "https"), (":authority", "x")]
        )
        for sid in range(1, 6000, 2):
            headers = HeadersFrame(sid, data=block)
            headers.flags.add("END_HEADERS")
            headers.flags.add("END_STREAM")
            out += [headers.serialize(), RstStreamFrame(sid, error_code=8).serialize()]
    else:  # continuation: one header block that never ends
        out.append(HeadersFrame(1, data=b"\x82").serialize())
        out += [ContinuationFrame(1, data=b"\x00\x01a\x01b").serialize() for _ in range(200)]
    return b"".join(out)


@pytest.mark.parametrize("kind", ["ping", "settings", "rst_stream", "continuation"])
def test_h2_floods_get_goaway_and_the_canary_goes_on(
    srv: ServerProcess, ca_pki: Pki, kind: str
) -> None:
    from hyperframe.frame import Frame, GoAwayFrame

    with tls_socket(srv, ca_pki, "h2") as canary:
        with tls_socket(srv, ca_pki, "h2") as s:
            assert s.selected_alpn_protocol() == "h2"
            s.sendall(_h2_frames(kind))
            out = read_all(s)
        # The last frame the server sent is a GOAWAY, with a reason.
        goaways = []
        pos = 0
        while pos + 9 <= len(out):
            frame, length = Frame.parse_frame_header(memoryview(out[pos : pos + 9]))
            frame.parse_body(memoryview(out[pos + 9 : pos + 9 + length]))
            if isinstance(frame, GoAwayFrame):
                goaways.append(frame.error_code)
            pos += 9 + length
        assert goaways and goaways[-1] in (1, 11), goaways  # PROTOCOL_ERROR, ENHANCE_YOUR_CALM
        srv.wait_for_record(outcome="framing-error", reason="HTTP/2 (flood|protocol error).*")
        # A second client on the same server, before and after: untouched.
        canary.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    p = curl(srv, ca_pki, "/status/201", "--http2", "-o", "/dev/null", "-w", "%{http_code}")
    assert p.stdout == "201"


def bench(srv: ServerProcess, ca_pki: Pki, *args: str) -> tuple[int, dict[str, Any]]:
    from tests.helpers import TLSECHO

    p = subprocess.run(
        [
            *TLSECHO,
            *("bench", f"localhost:{srv.port}", "--cafile", str(ca_pki.ca.cert)),
            *("--scenario", "http", "--json", "-", *args),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return p.returncode, json.loads(p.stdout)


@pytest.mark.parametrize("alpn", [(), ("--alpn", "h2")])
def test_bench_http_checks_every_response(
    srv: ServerProcess, ca_pki: Pki, alpn: tuple[str, ...]
) -> None:
    rc, r = bench(srv, ca_pki, "-c", "3", "-n", "300", "-s", "2000", *alpn)
    assert rc == 0, r
    assert r["operations"] == 300 and r["errors"] == {} and r["mismatched_bytes"] == 0
    assert r["bytes_verified"] == 300 * 2000
    assert r["mode"] == ("http/2" if alpn else "http/1.1") and r["path"] == "/bytes/2000?seed=1"
    version = "2" if alpn else "1.1"
    srv.wait_for_record(
        event="request", target=re.escape("/bytes/2000?seed=1"), http_version=version,
        status=200, count=300,
    )  # fmt: skip
    # Keep-alive: three connections carried the 300 requests.
    stop_cleanly(srv)
    assert len(srv.records()) == 3


def test_bench_http_reports_bad_status_and_different_answers(
    srv: ServerProcess, ca_pki: Pki
) -> None:
    rc, r = bench(srv, ca_pki, "-c", "1", "-n", "5", "--path", "/status/503")
    assert rc != 0 and r["errors"] == {"HTTP status 503": 1}
    # Each connection's answer names its own peer port: not the first one's.
    rc, r = bench(srv, ca_pki, "-c", "2", "-n", "20", "--path", "/ip")
    assert rc != 0 and r["mismatched_bytes"] > 0


def test_bench_http_opens_a_new_connection_after_connection_close(
    ca_pki: Pki, tmp_path: Path
) -> None:
    """A server that closes after each answer (hypercorn does after 1000):
    the client reconnects, as HTTP clients do, and nothing is an error."""
    script = tmp_path / "close_each.js"
    script.write_text(
        """
        const https = require('https'); const fs = require('fs');
        const [cert, key] = process.argv.slice(2);
        const srv = https.createServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key)},
          (req, res) => { res.writeHead(200, {'Content-Length': 2, 'Connection': 'close'});
                          res.end('ok'); });
        srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
        """
    )
    with subprocess.Popen(
        ["node", str(script), str(ca_pki.server.cert), str(ca_pki.server.key)],
        stdout=subprocess.PIPE,
        text=True,
    ) as node:
        try:
            assert node.stdout is not None
            port = int(node.stdout.readline())
            fake = ServerProcess(node, port, [], None)  # type: ignore[arg-type]
            rc, r = bench(fake, ca_pki, "-c", "2", "-n", "20", "--path", "/x")
            assert rc == 0, r
            assert r["operations"] == 20 and r["bytes_verified"] == 40 and r["errors"] == {}
        finally:
            node.terminate()


def test_plain_http_to_the_tls_port_is_a_400(srv: ServerProcess) -> None:
    """Issue 17: curl http:// at an https port got nothing; nginx answers
    400 "plain HTTP request sent to HTTPS port". The log says so too."""
    c = subprocess.run(
        ["curl", "-sS", "-m", "5", "-i", f"http://127.0.0.1:{srv.port}/get"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert c.returncode == 0, c.stderr
    out = c.stdout.decode()
    assert out.startswith("HTTP/1.1 400 Bad Request")
    assert "plain HTTP request sent to an HTTPS port" in out
    srv.wait_for_record(outcome="handshake-failed", reason=PLAIN_HTTP)
