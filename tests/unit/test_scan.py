"""The scan gate's verdict on testssl findings: server findings fail, the
scanner's own notices are printed and do not."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCAN = Path(__file__).resolve().parents[2] / "scripts" / "scan.py"


@pytest.fixture(scope="module")
def scan() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scan", SCAN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finding(id_: str, severity: str, text: str = "text") -> dict[str, str]:
    return {"id": id_, "severity": severity, "finding": text}


def test_scanner_notice_is_printed_not_failed(
    scan: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    ok, detail = scan.judge_testssl(
        [
            finding("engine_problem", "WARN", "No engine or GOST support via engine"),
            finding("cert_notAfter", "MEDIUM"),
            finding("TLS1_3", "OK"),
        ]
    )
    assert ok, detail
    assert "note: testssl engine_problem" in capsys.readouterr().out
    assert "ignored: cert_notAfter" in detail


@pytest.mark.parametrize("severity", ["MEDIUM", "HIGH", "CRITICAL", "WARN", "FATAL"])
def test_server_finding_fails(scan: ModuleType, severity: str) -> None:
    ok, detail = scan.judge_testssl(
        [finding("engine_problem", "WARN"), finding("cipher_order", severity, "no order")]
    )
    assert not ok
    assert detail == f"{severity} cipher_order: no order"


def test_scan_problem_is_not_a_notice(scan: ModuleType) -> None:
    # testssl's own scan errors are not environment notices: they fail.
    ok, _ = scan.judge_testssl([finding("scanProblem", "WARN", "scan aborted")])
    assert not ok


def test_low_and_info_pass(scan: ModuleType) -> None:
    ok, _ = scan.judge_testssl([finding("x", "LOW"), finding("y", "INFO")])
    assert ok
