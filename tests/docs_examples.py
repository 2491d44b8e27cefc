"""Read the examples out of the README and docs/*.md, and turn one into a
shell script that runs it as written.

An example is a fenced ``console`` block: ``$ command`` lines (a line ending
in ``\\`` goes on), each followed by what it prints. Lines of ``<!-- example:
... -->`` just above a block say what a reader brings that the block does not
show, or why a command cannot run here; each needs its reason:

    <!-- example: skip REASON -->              the whole block is not run
    <!-- example: skip-command TEXT | REASON --> commands containing TEXT are not run
    <!-- example: before SHELL -->             run first, unseen (a server
                                                 started here runs in the background)
    <!-- example: after SHELL -->              run last, unseen (e.g. ``wait %2``
                                                 for a job the block left running)
    <!-- example: fails TEXT -->               commands containing TEXT exit non-zero
    <!-- example: varies REASON -->            the shown output is not compared
    <!-- example: openssl>=3.5 TEXT -->        run commands containing TEXT only there

A command that starts a server (``tlsecho serve``, ``lab``, ``badssl``,
``haproxy -f``, ``locust ... --worker``) runs in the background, as the reader's
second terminal would; the block waits until it listens. The shown output is
compared line by line: ``...`` stands for anything, every number for any
number, ``/home/me`` for the reader's home, runs of spaces for any space.

Python blocks run with ``python`` unless marked ``<!-- example: fragment
REASON -->`` (a piece of a program, e.g. a test calling the reader's client).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_LISTENING = Path(__file__).with_name("listening.py")
_DIRECTIVE = re.compile(r"^<!--\s*example:\s*(\S+)\s*(.*?)\s*-->$")
_FENCE = re.compile(r"^```(\w*)\s*$")
KEYS = {"skip", "skip-command", "before", "after", "fails", "varies", "openssl>=3.5", "fragment"}

# Commands that serve until stopped: the reader's other terminal.
_SERVER = re.compile(
    r"^(tlsecho (serve|lab|badssl)\b|haproxy -f\b|locust\b.*--(worker|master)\b|.*&& haproxy -f\b)"
)


class ExampleError(ValueError):
    """A directive the harness does not know, or one without its reason."""


@dataclass
class Command:
    text: str
    output: list[str] = field(default_factory=list)

    @property
    def serves(self) -> bool:
        return bool(_SERVER.match(self.text.rstrip("& ").strip()))


@dataclass
class Example:
    doc: Path
    line: int
    language: str
    commands: list[Command]
    source: str
    directives: list[tuple[str, str]]

    @property
    def name(self) -> str:
        return f"{self.doc.name}:{self.line}"

    def values(self, key: str) -> list[str]:
        return [v for k, v in self.directives if k == key]

    def skipped(self) -> str | None:
        skip = self.values("skip") or self.values("fragment")
        return skip[0] if skip else None


def examples(doc: Path) -> list[Example]:
    """Every console and python block of ``doc``, with its directives."""
    found: list[Example] = []
    lines = doc.read_text().splitlines()
    pending: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := _DIRECTIVE.match(line.strip()):
            key, value = m.group(1), m.group(2)
            if key not in KEYS:
                raise ExampleError(f"{doc.name}:{i + 1}: unknown directive {key!r}")
            if not value:
                raise ExampleError(f"{doc.name}:{i + 1}: {key} needs its text")
            pending.append((key, value))
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if line.strip():
                pending = []  # directives belong to the block right below them
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        language = fence.group(1)
        if language in ("console", "python"):
            found.append(
                Example(doc, start, language, _commands(body), "\n".join(body) + "\n", pending)
            )
        elif pending:
            raise ExampleError(f"{doc.name}:{start}: directives above a {language!r} block")
        pending = []
    return found


def _commands(body: list[str]) -> list[Command]:
    commands: list[Command] = []
    going_on = False
    for line in body:
        if going_on:
            commands[-1].text += "\n" + line
            going_on = line.endswith("\\")
        elif line.startswith("$ "):
            commands.append(Command(line[2:]))
            going_on = line.endswith("\\")
        elif commands and line.strip() and not line.lstrip().startswith("#"):
            commands[-1].output.append(line)
    return commands


def output_pattern(line: str, home: str) -> re.Pattern[str]:
    """The shown line as a pattern (see the module's docstring)."""
    parts = []
    for piece in line.strip().replace("/home/me", "\0").split("..."):
        piece = piece.strip()  # "... SSL alert" is also "...:SSL alert"
        out = []
        for token in re.split(r"(\s+|\d+|\0)", piece):
            if not token:
                continue
            if token.isspace():
                out.append(r"\s+")
            elif token.isdigit():
                out.append(r"\d[\d,.]*")
            elif token == "\0":
                out.append(re.escape(home))
            else:
                out.append(re.escape(token))
        parts.append("".join(out))
    return re.compile(".*".join(parts))


def _matching(example: Example, key: str, text: str) -> bool:
    return any(v in text for v in example.values(key))


def script(example: Example, openssl_35: bool) -> str:
    """A bash script that runs ``example``'s commands as written.

    Each command's output goes to ``out.N``, a server's to ``bg.N``; the script
    stops at the first command that exits otherwise than expected, writing
    ``N rc`` to ``failed``, and stops every server it started; all of these
    files are in ``$_L``."""
    lines = [
        "set -o pipefail",
        # TERM, not INT: a job started with & ignores SIGINT in a script.
        "_stop() { for p in $(jobs -p); do kill -TERM $p 2>/dev/null; done; wait; }",
        "trap _stop EXIT",
        # A server is up once it says so (or, for haproxy and locust, after a moment).
        # A tlsecho server says when it listens; for one that prints nothing
        # (HAProxy), a listening socket of its own says so (after the first
        # second, so that a tlsecho's metrics port does not count).
        "_ready() { for i in $(seq 100); do"
        " grep -qE 'listening on|endpoints|Starting Locust|Ready' \"$1\" 2>/dev/null && return 0;"
        " kill -0 $2 2>/dev/null || return 1;"
        f" [ $i -gt 10 ] && python {_LISTENING} $2 && return 0;"
        " sleep 0.1; done; return 0; }",
    ]
    skips = [v.split("|", 1) for v in example.values("skip-command")]
    for i, text in enumerate(example.values("before")):
        cmd = Command(text)
        lines += _run(cmd, f"before.{i}", expect_fail=False)
    for n, cmd in enumerate(example.commands):
        if any(what.strip() in cmd.text for what, _ in skips):
            continue
        if _matching(example, "openssl>=3.5", cmd.text) and not openssl_35:
            continue
        lines += _run(cmd, str(n), _matching(example, "fails", cmd.text))
    for i, text in enumerate(example.values("after")):
        lines += _run(Command(text), f"after.{i}", expect_fail=False)
    return "\n".join(lines) + "\n"


def _run(cmd: Command, tag: str, expect_fail: bool) -> list[str]:
    text = cmd.text.rstrip()
    if cmd.serves:
        # Its output goes to a file and its PID to $! (and %1): no trailing comment.
        text = re.sub(r"\s+#\s.*$", "", text).rstrip("&").rstrip()
        return [
            f'{text} > "$_L/bg.{tag}" 2>&1 &',
            f'_ready "$_L/bg.{tag}" $! || {{ echo \'{tag} died\' >> "$_L/failed"; exit 1; }}',
        ]
    check = "-eq 0" if expect_fail else "-ne 0"
    return [
        # The newline keeps a trailing '# comment' from swallowing the brace.
        f'{{ {text}\n}} > "$_L/out.{tag}" 2>&1',
        f'_rc=$?; if [ $_rc {check} ]; then echo "{tag} $_rc" >> "$_L/failed"; exit 1; fi',
    ]
