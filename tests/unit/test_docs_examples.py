"""The reader of examples (tests/docs_examples.py) on small documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_examples import ExampleError, examples, output_pattern, script

ROOT = Path(__file__).resolve().parents[2]


def _doc(tmp_path: Path, text: str) -> Path:
    doc = tmp_path / "d.md"
    doc.write_text(text)
    return doc


def test_commands_outputs_continuations_and_directives(tmp_path: Path) -> None:
    doc = _doc(
        tmp_path,
        "text\n\n<!-- example: fails -servername old -->\n```console\n"
        "$ tlsecho serve \\\n    --port 8443   # a comment\n"
        "$ openssl s_client -servername old\n... alert number 70\n"
        "                 # a comment line is not output\n```\n\n```json\n{}\n```\n",
    )
    (ex,) = examples(doc)
    assert ex.line == 4 and ex.language == "console"  # the fence's line
    assert [c.text for c in ex.commands] == [
        "tlsecho serve \\\n    --port 8443   # a comment",
        "openssl s_client -servername old",
    ]
    assert ex.commands[0].serves and not ex.commands[1].serves
    assert ex.commands[1].output == ["... alert number 70"]
    sh = script(ex, openssl_35=False)
    # The server goes to the background without its comment; the fail is expected.
    assert 'tlsecho serve \\\n    --port 8443 > "$_L/bg.0" 2>&1 &' in sh
    assert "_rc=$?; if [ $_rc -eq 0 ]" in sh


def test_directives_belong_to_the_block_right_below(tmp_path: Path) -> None:
    doc = _doc(tmp_path, "<!-- example: skip why -->\nprose\n```console\n$ true\n```\n")
    (ex,) = examples(doc)
    assert ex.skipped() is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<!-- example: sikp why -->\n```console\n$ true\n```\n", "unknown directive 'sikp'"),
        ("<!-- example: skip -->\n```console\n$ true\n```\n", "skip needs its text"),
        ("<!-- example: skip why -->\n```json\n{}\n```\n", "directives above a 'json' block"),
    ],
)
def test_a_wrong_directive_is_an_error(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ExampleError, match=error):
        examples(_doc(tmp_path, text))


def test_output_patterns() -> None:
    home = "/tmp/h"
    pat = output_pattern("main: created /home/me/.local/x (port 10000)", home)
    assert pat.search("main: created /tmp/h/.local/x (port 41234)")
    assert not pat.search("main: created /root/.local/x (port 41234)")
    pat = output_pattern("... SSL alert number 70", home)
    assert pat.search("4077:error:...:ssl3_read_bytes:SSL alert number 70")
    assert not pat.search("SSL alert number")
    pat = output_pattern("  11000  ok    certificate  echo: intact", home)
    assert pat.search("  11000  ok                       certificate  echo: intact")


def test_every_document_reads() -> None:
    """A mistyped directive in the README or docs fails here, not at run time."""
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert sum(len(examples(d)) for d in docs) > 40
