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


def test_incomplete_checks_are_warn_findings_but_not_notices(scan: ModuleType) -> None:
    findings = [
        finding("engine_problem", "WARN"),
        finding("sessionresumption_ticket", "WARN", "check failed because of connect problem"),
        finding("cipher_order", "MEDIUM"),
        finding("TLS1_3", "OK"),
    ]
    assert scan.incomplete_checks(findings) == ["sessionresumption_ticket"]


def test_a_check_that_fails_twice_fails_the_gate(
    scan: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [
        [finding("sessionresumption_ticket", "WARN", "connect problem")],
        [finding("sessionresumption_ticket", "WARN", "connect problem")],
    ]
    monkeypatch.setattr(scan, "run_testssl", lambda *a: runs.pop(0))
    ok, detail = scan.testssl(1, Path("ca"), Path("out"))
    assert not ok and "sessionresumption_ticket" in detail
    assert "scanning once more" in capsys.readouterr().out
    assert not runs


def test_a_check_that_finishes_on_the_second_run_passes(
    scan: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = [
        [finding("sessionresumption_ticket", "WARN", "connect problem")],
        [finding("sessionresumption_ticket", "INFO", "supported")],
    ]
    monkeypatch.setattr(scan, "run_testssl", lambda *a: runs.pop(0))
    ok, _ = scan.testssl(1, Path("ca"), Path("out"))
    assert ok and not runs


def test_a_clean_first_run_is_not_repeated(
    scan: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = [[finding("TLS1_3", "OK")], [finding("cipher_order", "HIGH")]]
    monkeypatch.setattr(scan, "run_testssl", lambda *a: runs.pop(0))
    ok, _ = scan.testssl(1, Path("ca"), Path("out"))
    assert ok and len(runs) == 1
