"""The tables a person reads print peer-controlled text as it is: rich
would turn ':CD:' in a fingerprint into an emoji and '[b]' into markup."""

from __future__ import annotations

import pytest

from tlsecho.cli.probe import _print_probe
from tlsecho.cli.send import print_answer
from tlsecho.client.probe import ProbeResult
from tlsecho.pki.certs import CertificateInfo

FINGERPRINT = "CA:54:51:E9:88:43:71:FA:98:34:3C:F8:F0:9B:C2:80:66:CD:3B:54:35:62:15:6E:70:13:4C:1F:7D:BB:75:B2"  # noqa: E501


def test_probe_table(capsys: pytest.CaptureFixture[str]) -> None:
    cert = CertificateInfo(
        subject="CN=[bold]evil[/bold]",
        issuer="CN=ca",
        serial="1",
        sans=["a.test"],
        not_before="2026-01-01T00:00:00",
        not_after="2027-01-01T00:00:00",
        days_left=30,
        key="ECDSA P-256",
        signature_algorithm="ecdsa-with-SHA256",
        sha256=FINGERPRINT,
    )
    _print_probe(ProbeResult("localhost", 1, "localhost", verified=True, chain=[cert]))
    out = capsys.readouterr().out
    assert ":CD:" in out and "[bold]evil[/bold]" in out


def test_hello_answer_table(capsys: pytest.CaptureFixture[str]) -> None:
    print_answer(
        {
            "peer": "127.0.0.1:1",
            "negotiated": {"client_certificate": {"subject": "CN=[i]x[/i]"}},
            "client_hello": {"server_name": ":cd:[b]", "ja3": ":ok:"},
        }
    )
    out = capsys.readouterr().out
    assert "CN=[i]x[/i]" in out and ":cd:[b]" in out and ":ok:" in out


def test_bench_says_why_more_connections_were_made_than_counted() -> None:
    """Issue 17: "2,113 connections" and "of 2,114 connections made" in one table."""
    import io

    from tlsecho.bench.report import render

    r = {
        "scenario": "connect", "connections": 2, "mode": "nul", "size": 64, "processes": 1,
        "seconds": 5.0, "rate": None, "operations": 2113, "operations_per_second": 422.6,
        "bytes_verified": 135232, "megabytes_per_second": 0.03, "mismatched_bytes": 0,
        "errors": {}, "resumed": 1690, "connections_made": 2114,
    }  # fmt: skip
    out = io.StringIO()
    render(r, out)
    text = " ".join(out.getvalue().replace("│", " ").split())
    assert "2,113 connections" in text
    assert "of 2,114 connections made (1 cut off by the end of the run, not" in text
