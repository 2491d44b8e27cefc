"""Helpers shared by the test suites: real ``tlsecho`` processes, real peers.

Readiness is read from the server's own log line ("listening on ..."), never
waited for with a sleep; every server binds port 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlsecho.pki.certs import Pki

TLSECHO = [sys.executable, "-m", "tlsecho"]


def as_record(line: str) -> dict[str, Any]:
    """A JSON log line as a dict ({} for a text line)."""
    if not line.startswith("{"):
        return {}
    obj: dict[str, Any] = json.loads(line)
    return obj


def as_text(line: str) -> str:
    """A log line as text: a JSON ``log`` record becomes ``logger: message``."""
    rec = as_record(line)
    if rec.get("event") == "log":
        return f"{rec['logger']}: {rec['message']}"
    return line


@dataclass
class ServerProcess:
    """A running ``tlsecho serve`` and the lines it has logged."""

    proc: subprocess.Popen[bytes]
    port: int
    _lines: list[str]
    _queue: queue.Queue[str | None]
    _ended: bool = False

    def lines(self) -> list[str]:
        self._drain(0)
        return list(self._lines)

    def _drain(self, timeout: float) -> bool:
        """Take what the pump has read; False once nothing more will come
        (or nothing came within ``timeout``)."""
        if self._ended:
            return False  # a second stop() does not wait for a second marker
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return False
        while True:
            if item is None:
                self._ended = True
                return False
            self._lines.append(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return True

    def _wait(
        self, what: str, matches: Callable[[str], bool], count: int, timeout: float
    ) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = [ln for ln in self._lines if matches(ln)]
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {count} log line(s) with {what}; got:\n" + "\n".join(self._lines)
                )
            self._drain(min(left, 0.2))

    def wait_for(self, pattern: str, timeout: float = 10.0, count: int = 1) -> list[str]:
        """Wait until ``count`` log lines match ``pattern``; return them. A JSON
        ``log`` record is matched and returned as its text (``logger: message``)."""
        rx = re.compile(pattern)
        found = self._wait(repr(pattern), lambda ln: bool(rx.search(as_text(ln))), count, timeout)
        return [as_text(ln) for ln in found]

    def records(self, event: str = "connection") -> list[dict[str, Any]]:
        """The JSON records of ``event`` logged so far (``--log-format json``):
        finished connections, or ``request`` (mode http's access lines)."""
        return [r for r in map(as_record, self.lines()) if r.get("event") == event]

    def wait_for_record(
        self, count: int = 1, timeout: float = 10.0, event: str = "connection", **want: object
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` JSON records of ``event`` have every field in
        ``want``: a string is a regular expression the whole value must match,
        anything else (a number, None) must be equal. Returns the records."""

        def matches(line: str) -> bool:
            rec = as_record(line)
            return rec.get("event") == event and all(
                re.fullmatch(v, str(rec.get(k))) if isinstance(v, str) else rec.get(k) == v
                for k, v in want.items()
            )

        found = self._wait(f"a {event} record {want}", matches, count, timeout)
        return [as_record(ln) for ln in found]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        while self._drain(5.0):  # up to the pump's end-of-stream marker
            pass
        # No server of the suite ever prints a traceback: a peer's mistake is
        # one line, and so is a bug of ours (fail closed, issue 16).
        tracebacks = [ln for ln in self._lines if "Traceback" in ln]
        assert not tracebacks, "\n".join(self._lines)
        return rc


def start_server(
    *args: str,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
    prefix: tuple[str, ...] = (),
    launcher: tuple[str, ...] = tuple(TLSECHO),
    new_session: bool = False,
) -> ServerProcess:
    """Start ``tlsecho serve`` on ``host`` port 0 and wait until it listens.

    ``prefix`` runs it under another command (``prlimit --nofile=40:40``);
    ``launcher`` is the command that is ``tlsecho`` (``python -m tlsecho``);
    ``new_session``: its own process group, as a terminal's foreground job
    (``os.killpg(proc.pid, SIGINT)`` is then what Ctrl-C does).
    """
    cmd = [*prefix, *launcher, "serve", "--host", host, "--port", "0", *args]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        start_new_session=new_session,
    )
    q: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        with proc.stderr:
            for raw in proc.stderr:
                q.put(raw.decode("utf-8", "replace").rstrip("\n"))
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    server = ServerProcess(proc, 0, [], q)
    try:
        line = server.wait_for(r"listening on ", timeout=timeout)[0]
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    if line.startswith("{"):  # --log-format json
        line = json.loads(line)["message"]
    server.port = int(line.rsplit(":", 1)[1])
    return server


def fingerprint(pem: bytes) -> str:
    """SHA-256 fingerprint of the first certificate in ``pem``, as the logs write it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(pem)
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def s_client(
    port: int,
    *args: str,
    data: bytes = b"hello\x00",
    host: str = "127.0.0.1",
    timeout: float = 20,
    ign_eof: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """``openssl s_client`` against ``host:port`` with ``data`` on stdin
    (the one helper every suite calls). ``ign_eof``: read on after stdin
    ends, until the server closes."""
    cmd = ["openssl", "s_client", "-connect", f"{host}:{port}", *(["-ign_eof"] if ign_eof else [])]
    cmd += args
    return subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, check=False)


def served_certificate(out: bytes) -> bytes:
    """The server certificate PEM that ``openssl s_client`` printed."""
    start = out.index(b"-----BEGIN CERTIFICATE-----")
    end = out.index(b"-----END CERTIFICATE-----", start) + len(b"-----END CERTIFICATE-----")
    return out[start:end] + b"\n"


def pump(
    s: ssl.SSLSocket,
    payload: bytes,
    timeout: float = 60.0,
    on_chunk: Callable[[bytes], None] | None = None,
) -> bytes:
    """Send ``payload`` while reading, in one thread (an SSLSocket is not
    safe to use from two threads at once); return what came back until the
    server closed, or hand each chunk to ``on_chunk`` instead of keeping it."""

    s.setblocking(False)
    out = bytearray()
    view = memoryview(payload)
    pos = 0
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while True:
            assert time.monotonic() < deadline, f"stuck after {pos} sent, {len(out)} back"
            events = sel.select(1.0)
            for _, mask in events:
                if mask & selectors.EVENT_WRITE and pos < len(payload):
                    with contextlib.suppress(ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        pos += s.send(view[pos : pos + 65536])
                    if pos == len(payload):
                        sel.modify(s, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    try:
                        while True:
                            chunk = s.recv(65536)
                            if not chunk:
                                return bytes(out)
                            if on_chunk is not None:
                                on_chunk(chunk)
                                continue
                            out += chunk
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        pass


def send(
    port: int,
    *args: str,
    stdin: bytes | None = None,
    host: str = "127.0.0.1",
    quiet: bool = False,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """``tlsecho send`` to ``host:port`` (with ``quiet``: ``-q`` unless ``-v`` is given)."""
    extra = ["-q"] if quiet and "-v" not in args else []
    cmd = [*TLSECHO, "send", "--host", host, "--port", str(port), *extra, *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, check=False)


def stop_cleanly(srv: ServerProcess, sig: int = signal.SIGTERM) -> str:
    """Stop the server; it must exit 0 without a traceback. Returns its log."""
    rc = srv.stop(sig)
    text = "\n".join(srv.lines())
    assert "Traceback" not in text, text
    assert rc == 0, text
    return text


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus samples at ``url``: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def tls_outcome(port: int, ca: Path, sni: str, data: bytes) -> tuple[str, bytes]:
    """How the server ended the session, seen on the socket itself (TLS
    over memory BIOs, so every recv is ours): ``reset``, ``eof`` (a FIN
    without close_notify) or ``close_notify``, with the plaintext before it.
    (Python's SSLSocket on OpenSSL 3 calls a reset an unexpected EOF, and
    node sometimes reports it as an end.)"""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = False
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname=sni)
    got, sent = b"", False
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while True:
            try:
                if not sent:
                    tls.do_handshake()
                    tls.write(data)
                    sent = True
                while chunk := tls.read(65536):
                    got += chunk
                return "close_notify", got
            except ssl.SSLWantReadError:
                pass
            try:
                if out.pending:
                    sock.sendall(out.read())
                raw = sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return "reset", got
            if not raw:
                return "eof", got
            inc.write(raw)


def pki_args(pki: Pki) -> list[str]:
    """``--cert``/``--key`` of a PKI's server certificate."""
    return ["--cert", str(pki.server.cert), "--key", str(pki.server.key)]


def socat(port: int, ca: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    """socat as a TLS client of 127.0.0.1:port, ``data`` on its stdin."""
    addr = f"OPENSSL:127.0.0.1:{port},cafile={ca},commonname=localhost"
    return subprocess.run(
        ["socat", "-t", "5", "-", addr], input=data, capture_output=True, timeout=30, check=False
    )


def tls_client(port: int, ca: Path, timeout: float = 20) -> ssl.SSLSocket:
    """Python's ssl as a client of 127.0.0.1:port, trusting ``ca``, checking
    the name ``localhost``."""
    ctx = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def echo_exactly(s: ssl.SSLSocket, data: bytes) -> bytes:
    """Send ``data`` and read until as many bytes came back (a close before
    that fails the test)."""
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(65536)
        assert chunk, "closed early"
        got += chunk
    return got


StartServer = Callable[..., ServerProcess]
"""The ``run_server`` fixture (tests/conftest.py)."""


def quiet_send(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """:func:`send`, quiet unless ``-v`` is among the arguments."""
    return send(*args, quiet=True, **kwargs)
