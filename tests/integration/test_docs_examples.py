"""Issue 21: every example of the README and docs/*.md runs as written.

Each document's examples run in order in one fresh folder with a fresh home
(a later block may use the files an earlier one made, as a reader's shell
does); see tests/docs_examples.py for how a block becomes a script and for
the ``<!-- example: ... -->`` lines that name what cannot run here and why.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docs_examples import Command, Example, examples, output_pattern, script

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# What a reader's checkout has next to the folder they work in.
CHECKOUT = ("contrib", "examples")
BLOCK_TIMEOUT = 120.0

# Every page, in order, with the waits its servers and benches take: minutes.
pytestmark = pytest.mark.slow


def _openssl_35() -> bool:
    out = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout
    m = re.match(r"OpenSSL (\d+)\.(\d+)", out)
    return m is not None and (int(m.group(1)), int(m.group(2))) >= (3, 5)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "TLSECHO_"))}
    path = [str(Path(sys.executable).parent), env.get("PATH", ""), "/usr/sbin", "/sbin"]
    env.update(HOME=str(home), PATH=os.pathsep.join(path), LC_ALL="C.UTF-8")
    return env


def _run(example: Example, work: Path, logs: Path, env: dict[str, str]) -> str | None:
    """Run one example; None if it did as it says, else what went wrong."""
    logs.mkdir()
    if example.language == "python":
        # As a console block of one command, so that its before lines run too.
        (logs / "example.py").write_text(example.source)
        run = Command(f'{shlex.quote(sys.executable)} "$_L/example.py"')
        example = dataclasses.replace(example, commands=[run])
    (logs / "example.sh").write_text(script(example, _openssl_35()))
    cmd = ["bash", str(logs / "example.sh")]
    with (logs / "out.script").open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=work,
            env={**env, "_L": str(logs)},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,  # as `</dev/null`: s_client must not wait on ours
            start_new_session=True,  # its servers are ours to stop, by group
        )
    try:
        rc = proc.wait(BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"still running after {BLOCK_TIMEOUT:g} s\n{_outputs(logs)}"
    finally:
        _stop_group(proc)
    failed = (logs / "failed").read_text().split() if (logs / "failed").exists() else []
    if failed:
        n = failed[0]
        if n.isdigit():
            what = example.commands[int(n)].text
        else:  # before.N, after.N: a directive's command
            key, _, i = n.partition(".")
            what = f"({key}) {example.values(key)[int(i)]}"
        why = "exited " + failed[1] if failed[1:] != ["died"] else "stopped before it listened"
        return f"$ {what}\n{why}\n{_outputs(logs)}"
    if rc != 0:
        return f"exited {rc}\n{_outputs(logs)}"
    if not example.values("varies"):
        return _missing_output(example, logs, env["HOME"])
    return None


def _group_gone(proc: subprocess.Popen[bytes], within: float) -> bool:
    """Whether every process of the block's group has exited within ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        proc.poll()  # reap the script itself, or it stays in the group
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop whatever the block left running: its session is ours alone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        if _group_gone(proc, 5.0):
            break
    proc.wait()


def _outputs(logs: Path, tail: int = 3000) -> str:
    """What the block's commands and servers printed (each file's last
    ``tail`` characters; 0 for all of it)."""
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}"
        for p in sorted(logs.glob("[ob]*.*"))
        if p.suffix not in (".sh", ".py")
    )


def _missing_output(example: Example, logs: Path, home: str) -> str | None:
    """Each shown output line must be among what the block printed (a
    server's lines may come a moment after the command that caused them)."""
    wanted = [(line, output_pattern(line, home)) for c in example.commands for line in c.output]
    deadline = time.monotonic() + 5
    while True:
        printed = _outputs(logs, tail=0).splitlines()
        missing = [line for line, pat in wanted if not any(pat.search(p) for p in printed)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if missing:
        return "shown but not printed:\n  " + "\n  ".join(missing) + "\n" + _outputs(logs)
    return None


@pytest.mark.timeout(900)  # the README's blocks take a minute or two
@pytest.mark.parametrize("doc", [d for d in DOCS if examples(d)], ids=lambda p: p.name)
def test_examples_run_as_written(doc: Path, tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    for name in CHECKOUT:
        (work / name).symlink_to(ROOT / name)
    env = _env(home)
    failures = []
    for n, example in enumerate(examples(doc)):
        if example.skipped():
            continue  # it says why
        problem = _run(example, work, tmp_path / f"logs.{n}", env)
        if problem:
            failures.append(f"{example.name}:\n{problem}")
    assert not failures, "\n\n".join(failures)
