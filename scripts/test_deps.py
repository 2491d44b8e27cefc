"""Both ends of every range are true: the unit suite and a fast integration
subset against the newest versions pyproject.toml's ranges allow today and
against the lowest direct versions they allow (``make test-deps``).

Not part of ``make test``/CI: the lock (requirements/dev.lock) is what they
install, so a new upstream release cannot block a landing; this is how to
learn, on purpose, that a range has become false (raise the floor, or fix the
code, then ``make lock``).

Each resolution gets its own venv (``.venv-deps-newest``,
``.venv-deps-lowest``); the tests run in it, their ``tlsecho`` processes too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The fast integration subset: mTLS and identity, the hello report, tlsbin
#: over HTTP/1.1 and h2, the lab, and the error barrier.
SUBSET = [
    "tests/integration/test_identity.py",
    "tests/integration/test_hello_mode.py",
    "tests/integration/test_http_mode.py",
    "tests/integration/test_lab.py",
    "tests/integration/test_fail_closed.py",
]
RESOLUTIONS = {"newest": "highest", "lowest": "lowest-direct"}
#: The runtime dependencies whose versions the report names.
DIRECT = ("cryptography", "h11", "h2", "platformdirs", "prometheus-client", "rich", "uvloop")


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, text=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def prepare(uv: str, python: str, name: str, resolution: str) -> Path | str:
    """A venv with ``resolution``'s versions; its python, or why it failed."""
    venv = ROOT / f".venv-deps-{name}"
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        pins = Path(f.name)
    inputs = ["pyproject.toml", "requirements/build.in", "--extra", "test", "-o", str(pins)]
    compile_ = run(
        [uv, "pip", "compile", "--quiet", "--resolution", resolution, "--python", python, *inputs]
    )
    if compile_.returncode:
        return f"{name}: no resolution"
    fresh = not (venv / "bin" / "python").exists()
    if fresh and run([python, "-m", "venv", str(venv)]).returncode:
        return f"{name}: no venv"
    vpy = str(venv / "bin" / "python")
    editable = ["--no-deps", "--no-build-isolation", "-e", "."]
    for step in (
        [uv, "pip", "sync", "--quiet", "--python", vpy, str(pins)],
        [uv, "pip", "install", "--quiet", "--python", vpy, *editable],
    ):
        if run(step).returncode:
            return f"{name}: install failed"
    return Path(vpy)


def versions(vpy: Path) -> str:
    out = run([str(vpy), "-m", "pip", "list", "--format", "freeze"], capture_output=True).stdout
    pins = {
        name.lower().replace("_", "-"): version
        for name, _, version in (line.partition("==") for line in out.splitlines())
        if version
    }
    return ", ".join(f"{d} {pins[d]}" for d in DIRECT if d in pins)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uv", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--only", choices=sorted(RESOLUTIONS), help="one resolution")
    args = ap.parse_args(argv)
    results: list[str] = []
    failed = False
    for name, resolution in RESOLUTIONS.items():
        if args.only and name != args.only:
            continue
        vpy = prepare(args.uv, args.python, name, resolution)
        if isinstance(vpy, str):
            results.append(vpy)
            failed = True
            continue
        began = time.monotonic()
        unit = run([str(vpy), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"])
        subset = run([str(vpy), "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUBSET])
        ok = unit.returncode == 0 and subset.returncode == 0
        failed |= not ok
        took = time.monotonic() - began
        results.append(
            f"{name}: {'passed' if ok else 'FAILED'} in {took:.0f} s "
            f"(unit exit {unit.returncode}, subset exit {subset.returncode}) with {versions(vpy)}"
        )
    print("\n".join(["", "make test-deps:", *results]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
