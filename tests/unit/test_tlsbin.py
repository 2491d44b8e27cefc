"""tlsbin's sans-IO core: HTTP/1.1 (h11) and HTTP/2 (h2) sessions driven by
real client-side protocol objects, an injected clock, and the endpoints."""

from __future__ import annotations

import gc
import json
import sys
import types
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlsecho.tlsbin import Health, HttpFraming, HttpLimits
from tlsecho.tlsbin.h1 import OUTPUT_BUDGET
from tlsecho.tlsbin.h2 import CONTROL_ALLOWANCE

CTX: dict[str, Any] = {
    "peer": "192.0.2.7:5000",
    "via": None,
    "proxy_protocol": None,
    "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256", "alpn": "h2"},
    "client_hello": {"ja4": "t13d1516h2_8daaf6152771_b0da82dd1658", "ja3_hash": "abc"},
    "server": {"host": "lab", "worker": None},
}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def h1_framing(
    clock: Clock | None = None, health: Health | None = None, **limits: Any
) -> HttpFraming:
    f = HttpFraming(health or Health(), HttpLimits(**limits), clock or Clock())
    assert f.connection_made(CTX, "http/1.1") == b""
    return f


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Parse every response in ``data`` with h11's client side."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    out: list[tuple[int, dict[str, str], bytes]] = []
    status, headers, body = 0, {}, b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode(): v.decode() for k, v in event.headers}
            body = b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            out.append((status, headers, body))
            if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
                break
            client.start_next_cycle()
            client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
            client.send(h11.EndOfMessage())
        else:
            break
    return out


def get(target: str, *headers: str, method: str = "GET", body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: lab", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- HTTP/1.1 ---------------------------------------------------------------------------
def test_echo_document_says_what_arrived_in_order() -> None:
    f = h1_framing()
    out = f.receive_data(
        get(
            "/any/path?b=2&a=1&a=3",
            "X-Forwarded-For: 203.0.113.9, 198.51.100.2",
            'Forwarded: for="[2001:db8::1]:4711";proto=https;by=10.0.0.1, for=192.0.2.60',
            "x-forwarded-client-cert: By=spiffe://a/b;Hash=abcd;"
            'Subject="CN=client,O=Example";URI=spiffe://a/c;DNS=a.test;DNS=b.test',
            method="POST",
            body=b"\xff\x00binary",
        )
    )
    [(status, headers, body)] = responses(out)
    doc = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    req = doc["request"]
    assert req["method"] == "POST" and req["path"] == "/any/path"
    assert req["query"] == {"b": ["2"], "a": ["1", "3"]}
    assert [k for k, _ in req["headers"]] == [
        "Host",
        "X-Forwarded-For",
        "Forwarded",
        "x-forwarded-client-cert",
        "Content-Length",
    ]
    assert req["body_encoding"] == "base64" and req["body_bytes"] == 8
    conn = doc["connection"]
    assert conn["peer"] == "192.0.2.7:5000"
    assert conn["x_forwarded_for"] == ["203.0.113.9", "198.51.100.2"]
    assert conn["forwarded"] == [
        {"for": "[2001:db8::1]:4711", "proto": "https", "by": "10.0.0.1"},
        {"for": "192.0.2.60"},
    ]
    [xfcc] = conn["x_forwarded_client_cert"]
    assert xfcc["Subject"] == "CN=client,O=Example" and xfcc["DNS"] == "a.test,b.test"
    assert doc["tls"] == CTX["tls"] and doc["client_hello"]["ja4"].startswith("t13d")
    assert f.take_answered()[0][1] == 200 and f.take_answered() == []


def test_keep_alive_and_pipelining_answer_in_order() -> None:
    f = h1_framing()
    data = b"".join(get(f"/status/{200 + i}") for i in range(5))
    out = b""
    for i in range(0, len(data), 7):  # split anywhere
        out += f.receive_data(data[i : i + 7])
    assert [s for s, _, _ in responses(out)] == [200, 201, 202, 203, 204]
    assert not f.finished


def test_a_delayed_answer_holds_back_the_ones_behind_it() -> None:
    clock = Clock()
    f = h1_framing(clock)
    out = f.receive_data(get("/status/201") + get("/delay/2") + get("/status/202"))
    assert [s for s, _, _ in responses(out)] == [201]
    assert f.get_timer() == pytest.approx(102.0)
    clock.now = 101.0
    assert f.handle_timer(101.0) == b""
    clock.now = 102.0
    rest = f.handle_timer(102.0)
    assert rest.startswith(b"HTTP/1.1 200 OK") and b"HTTP/1.1 202 Accepted" in rest
    assert f.get_timer() is None


def test_delays_are_capped_and_headers_set_status_and_delay() -> None:
    clock = Clock()
    f = h1_framing(clock, max_delay=3.0)
    assert f.receive_data(get("/delay/60")) == b""
    assert f.get_timer() == pytest.approx(103.0)
    f.handle_timer(103.0)
    out = f.receive_data(
        get("/x", "x-set-response-status-code: 418", "x-set-response-delay-ms: 500")
    )
    assert out == b""
    assert f.get_timer() == pytest.approx(100.5)
    [(status, _, body)] = responses(f.handle_timer(100.5))
    assert status == 418 and json.loads(body)["request"]["path"] == "/x"
    [(status, _, _)] = responses(f.receive_data(get("/", "x-set-response-status-code: 99")))
    assert status == 400


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/status/200", 200),
        ("/status/599", 599),
        ("/status/600", 400),
        ("/status/abc", 400),
        ("/delay/-1", 400),
        ("/delay/nan", 400),
        ("/bytes/-5", 400),
        ("/bytes/99999999", 400),
        ("/stream/x", 400),
        ("/headers", 200),
        ("/ip", 200),
        ("/tls", 200),
        ("/hello", 200),
    ],
)
def test_endpoints_validate_their_argument(target: str, status: int) -> None:
    [(got, _, body)] = responses(h1_framing().receive_data(get(target)))
    assert got == status
    if status == 400:
        assert "error" in json.loads(body)


def test_bytes_are_seeded_and_streams_chunked() -> None:
    a = responses(h1_framing().receive_data(get("/bytes/1000?seed=7")))[0][2]
    b = responses(h1_framing().receive_data(get("/bytes/1000?seed=7")))[0][2]
    assert a == b and len(a) == 1000
    out = h1_framing().receive_data(get("/stream/3"))
    assert b"transfer-encoding: chunked" in out.lower()
    [(_, _, body)] = responses(out)
    lines = body.decode().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [0, 1, 2]
    [(_, _, body)] = responses(h1_framing(max_stream=2).receive_data(get("/stream/50")))
    assert len(body.splitlines()) == 2


def test_small_endpoints() -> None:
    f = h1_framing()
    out = f.receive_data(get("/ip", "X-Forwarded-For: 203.0.113.9") + get("/tls") + get("/hello"))
    ip, tls, hello = (json.loads(b) for _, _, b in responses(out))
    assert ip["origin"] == "192.0.2.7" and ip["x_forwarded_for"] == ["203.0.113.9"]
    assert tls["tls"]["cipher"] == "TLS_AES_128_GCM_SHA256"
    assert tls["fingerprints"]["ja4"] == CTX["client_hello"]["ja4"]
    assert hello["client_hello"] == CTX["client_hello"]


def test_head_has_no_body_but_its_length() -> None:
    out = h1_framing().receive_data(get("/bytes/100", method="HEAD"))
    assert out.endswith(b"\r\n\r\n") and b"content-length: 100" in out


def test_health_flips_by_post_and_is_shared() -> None:
    health = Health()
    f, g = h1_framing(health=health), h1_framing(health=health)
    assert responses(f.receive_data(get("/health")))[0][0] == 200
    [(status, _, body)] = responses(f.receive_data(get("/health", method="POST")))
    assert status == 200 and json.loads(body) == {"status": "failing"}
    assert responses(g.receive_data(get("/health")))[0][0] == 503
    assert responses(g.receive_data(get("/health?status=ok", method="POST")))[0][0] == 200
    assert health.ok
    assert responses(g.receive_data(get("/health", method="POST", body=b"fail")))[0][0] == 200
    assert not health.ok
    assert responses(g.receive_data(get("/health?status=maybe", method="POST")))[0][0] == 400
    assert responses(g.receive_data(get("/health", method="DELETE")))[0][0] == 405


def test_html_for_browsers_escapes_what_the_peer_sent() -> None:
    out = h1_framing().receive_data(
        get("/", "Accept: text/html,application/xhtml+xml", "X-Evil: <script>alert(1)</script>")
    )
    [(status, headers, body)] = responses(out)
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert CTX["client_hello"]["ja4"] in page and "What your browser sent" in page
    assert "http://" not in page and "https://" not in page  # no external asset


def test_malformed_request_is_a_400_and_the_end() -> None:
    f = h1_framing()
    out = f.receive_data(b"GET /\x00 nonsense\r\n\r\n")
    [(status, headers, _body)] = responses(out)
    assert status == 400 and headers["connection"] == "close"
    assert f.finished and f.failure and "bad request" in f.failure
    assert f.receive_data(get("/")) == b""
    assert f.take_answered() == [(None, 400)]


def test_caps_on_head_body_and_time() -> None:
    f = h1_framing(max_header=1024)
    [(status, _, _)] = responses(f.receive_data(get("/", "X-Big: " + "a" * 2000)))
    assert status == 431 and f.finished
    f = h1_framing(max_body=10)
    [(status, _, _)] = responses(f.receive_data(get("/", method="POST", body=b"x" * 11)))
    assert status == 413 and f.finished
    clock = Clock()
    f = h1_framing(clock, request_timeout=5.0)
    assert f.receive_data(b"GET / HTTP/1.1\r\nHost: sl") == b""
    assert f.get_timer() == pytest.approx(105.0)
    [(status, _, _)] = responses(f.handle_timer(105.0))
    assert status == 408 and f.finished and f.failure == "request timed out"


def test_expect_100_continue_is_answered() -> None:
    f = h1_framing()
    out = f.receive_data(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    assert out.startswith(b"HTTP/1.1 100 ")
    assert b"HTTP/1.1 200 OK" in f.receive_data(b"abc")


def test_connection_close_and_eof_end_the_session() -> None:
    f = h1_framing()
    out = f.receive_data(get("/", "Connection: close") + get("/never"))
    assert len(responses(out)) == 1 and f.finished and f.terminated
    clock = Clock()
    f = h1_framing(clock)
    f.receive_data(get("/delay/1"))
    f.receive_data(b"")  # the peer closed: the held answer still goes out
    assert f.peer_closed and not f.finished
    assert f.handle_timer(101.0).startswith(b"HTTP/1.1 200")
    assert f.finished


def test_one_read_cannot_build_unbounded_output() -> None:
    f = h1_framing()
    data = get("/bytes/1048576") * 40
    out = f.receive_data(data)
    assert len(out) < OUTPUT_BUDGET + 1024 * 1024 + 4096
    assert f.backlog and f.get_timer() == pytest.approx(100.0)
    total = len(out)
    for _ in range(100):
        if not f.backlog:
            break
        total += len(f.handle_timer(100.0))
    assert total > 40 * 1024 * 1024 and not f.backlog


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_h1_survives_any_bytes(chunks: list[bytes]) -> None:
    f = h1_framing()
    for chunk in chunks:
        out = f.receive_data(chunk)
        assert isinstance(out, bytes)
    f.handle_timer(1e9)
    f.receive_data(b"")


# -- HTTP/2 -----------------------------------------------------------------------------
class H2Client:
    def __init__(self, framing: HttpFraming) -> None:
        self.f = framing
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.c.initiate_connection()
        self.c.receive_data(framing.connection_made(CTX, "h2"))
        self.status: dict[int, int] = {}
        self.bodies: dict[int, bytes] = {}
        self.ended: set[int] = set()
        self.events: list[Any] = []

    def request(self, path: str, *, method: str = "GET", body: bytes = b"", extra: Any = ()) -> int:
        sid = self.c.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "https"), (":authority", "x")]
        self.c.send_headers(sid, [*headers, *extra], end_stream=not body)
        if body:
            self.c.send_data(sid, body, end_stream=True)
        return sid

    def take(self, data: bytes) -> None:
        for event in self.c.receive_data(data):
            self.events.append(event)
            if isinstance(event, h2.events.ResponseReceived):
                self.status[event.stream_id] = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                self.bodies[event.stream_id] = self.bodies.get(event.stream_id, b"") + event.data
                self.c.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended.add(event.stream_id)

    def exchange(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            data = self.c.data_to_send()
            if not data:
                return
            self.take(self.f.receive_data(data))


def h2_client(clock: Clock | None = None, **limits: Any) -> H2Client:
    return H2Client(HttpFraming(Health(), HttpLimits(**limits), clock or Clock()))


def test_h2_many_streams_and_flow_control() -> None:
    client = h2_client()
    ids = [client.request("/bytes/200000?seed=1") for _ in range(3)]
    post = client.request("/echo", method="POST", body=b"hello")
    client.exchange()
    assert all(client.status[i] == 200 and len(client.bodies[i]) == 200000 for i in ids)
    doc = json.loads(client.bodies[post])
    assert doc["request"]["http_version"] == "2" and doc["request"]["body"] == "hello"
    assert doc["request"]["headers"][0] == [":method", "POST"]
    assert client.f.http_version == "2"


def test_h2_delays_are_per_stream() -> None:
    clock = Clock()
    client = h2_client(clock)
    slow = client.request("/delay/2")
    fast = client.request("/status/201")
    client.exchange()
    assert client.status == {fast: 201}
    assert client.f.get_timer() == pytest.approx(102.0)
    client.take(client.f.handle_timer(102.0))
    assert client.status[slow] == 200 and slow in client.ended


def test_h2_caps_are_per_stream() -> None:
    client = h2_client(max_header=512, max_body=10)
    big = client.request("/", extra=[("x-big", "a" * 1000)])
    fat = client.request("/", method="POST", body=b"y" * 100)
    fine = client.request("/status/202")
    client.exchange()
    assert client.status == {big: 431, fat: 413, fine: 202}
    assert not client.f.finished


def test_h2_request_timeout_is_a_408() -> None:
    clock = Clock()
    client = h2_client(clock, request_timeout=3.0)
    sid = client.c.get_next_available_stream_id()
    client.c.send_headers(
        sid, [(":method", "POST"), (":path", "/"), (":scheme", "https"), (":authority", "x")]
    )
    client.exchange()
    assert client.f.get_timer() == pytest.approx(103.0)
    client.take(client.f.handle_timer(103.0))
    assert client.status[sid] == 408


def test_h2_ping_flood_gets_enhance_your_calm() -> None:
    client = h2_client()
    for i in range(CONTROL_ALLOWANCE + 10):
        client.c.ping(i.to_bytes(8, "big"))
    client.exchange()
    terminated = [e for e in client.events if isinstance(e, h2.events.ConnectionTerminated)]
    assert terminated and terminated[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert client.f.finished and "flood" in (client.f.failure or "")


def test_h2_rapid_reset_gets_enhance_your_calm() -> None:
    client = h2_client()
    for _ in range(CONTROL_ALLOWANCE + 10):
        sid = client.request("/delay/5")
        client.c.reset_stream(sid)
    client.exchange()
    assert client.f.finished and "flood" in (client.f.failure or "")


def test_h2_garbage_is_a_goaway() -> None:
    f = HttpFraming(Health(), HttpLimits(), Clock())
    f.connection_made(CTX, "h2")
    out = f.receive_data(b"GET / HTTP/1.1\r\n\r\n" + b"\x00" * 64)
    assert out and f.finished and f.failure and "protocol error" in f.failure


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_h2_survives_any_bytes(chunks: list[bytes]) -> None:
    f = HttpFraming(Health(), HttpLimits(), Clock())
    f.connection_made(CTX, "h2")
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    for chunk in [preface, *chunks]:
        assert isinstance(f.receive_data(chunk), bytes)
    f.handle_timer(1e9)


def test_framing_counts_and_refuses_early_use() -> None:
    f = HttpFraming(Health())
    with pytest.raises(RuntimeError):
        f.receive_data(b"x")
    assert f.http_version is None and not f.finished and f.failure is None
    assert f.get_timer() is None and f.handle_timer(0) == b"" and f.take_answered() == []
    f.connection_made(CTX, None)
    out = f.receive_data(get("/"))
    assert f.bytes_in == len(get("/")) and f.bytes_out == len(out) and f.discarded == 0


def _deep_size(root: object) -> int:
    """Bytes held by ``root`` and everything it reaches (classes, modules and
    functions, shared by every connection, not counted)."""
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    seen: set[int] = set()
    stack: list[object] = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


@pytest.mark.slow
def test_a_long_lived_h2_connection_holds_no_more_after_100000_requests() -> None:
    """Issue 16: h2 remembered 65 536 closed streams per connection (~100
    bytes each): a soaked h2 connection grew by ~100 bytes per request.
    The client is raw frames (its window opened once, so it never has to
    read): what is measured is the server's session alone."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    window = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
    client.local_settings = h2.settings.Settings(client=True, initial_values={window: 2**31 - 1})
    client.initiate_connection()
    client.increment_flow_control_window(2**31 - 1 - 65535)
    headers = [(":method", "GET"), (":path", "/get"), (":scheme", "https"), (":authority", "x")]
    client.send_headers(1, headers, end_stream=True)
    preface = client.data_to_send()
    client.send_headers(3, headers, end_stream=True)  # from here on, the same header block
    frame = bytearray(client.data_to_send())
    framing = HttpFraming(Health(), HttpLimits(), Clock())
    framing.connection_made({}, "h2")
    framing.receive_data(preface)
    framing.take_answered()
    next_id = 3

    def answer(n: int) -> None:
        nonlocal next_id
        batch = []
        for _ in range(n):
            frame[5:9] = next_id.to_bytes(4, "big")
            batch.append(bytes(frame))
            next_id += 2
        framing.receive_data(b"".join(batch))
        assert not framing.finished, framing.failure
        assert len(framing.take_answered()) == n

    answer(99)
    after_100 = _deep_size(framing)
    for _ in range(99_900 // 50):
        answer(50)
    after_100000 = _deep_size(framing)
    assert after_100000 - after_100 < 8 * 1024, (after_100, after_100000)
