"""The package's shape: imports run one way, modules stay small, nothing
imports the command line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "tlsecho"
MAX_LINES = 500  # issue 22: a module a person reads through


def _module_name(path: Path) -> str:
    parts = ["tlsecho", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _runtime_imports(tree: ast.AST, type_only: bool = False) -> set[str]:
    """Every tlsecho module imported anywhere in ``tree`` (function-level
    imports included), except under ``if TYPE_CHECKING:`` unless
    ``type_only``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if not type_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.orelse:
                visit(stmt)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    # Every submodule import loads the package itself first: not an edge.
    return {m for m in found if m in MODULES and m != "tlsecho"}


GRAPH = {name: _runtime_imports(ast.parse(p.read_text())) for name, p in MODULES.items()}
TYPED_GRAPH = {
    name: _runtime_imports(ast.parse(p.read_text()), type_only=True) for name, p in MODULES.items()
}


@pytest.mark.parametrize("graph", [GRAPH, TYPED_GRAPH], ids=["run-time", "with-type-only"])
def test_the_import_graph_has_no_cycle(graph: dict[str, set[str]]) -> None:
    """No cycle, not even once ``if TYPE_CHECKING:`` imports count (the
    package's own ``__init__``, whose type-only imports name everything it
    exports, is the one module left out: nothing imports it for a name)."""
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for dep in sorted(graph[node]):
            walk(dep, [*path, node])
        done.add(node)

    for name in graph:
        walk(name, [])


WIRE_MAY_IMPORT = {"tlsecho.errors"}


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("tlsecho.wire")))
def test_wire_imports_no_io_and_nothing_above_it(name: str) -> None:
    """wire/ is sans-IO: no socket, ssl, event loop or clock, and of tlsecho
    only wire/ itself and errors (type-only imports counted)."""
    tree = ast.parse(MODULES[name].read_text())
    stdlib = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    stdlib |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not stdlib & {"socket", "ssl", "asyncio", "select", "time", "selectors"}
    above = {d for d in TYPED_GRAPH[name] if not d.startswith("tlsecho.wire")} - WIRE_MAY_IMPORT
    assert not above, f"{name} imports {sorted(above)}"


MAX_MODULES_PER_PACKAGE = 12


def test_no_package_holds_more_than_twelve_modules() -> None:
    """The top level and each package: a room, not a hall (issue 22)."""
    by_package: dict[str, list[str]] = {}
    for path in SRC.rglob("*.py"):
        if path.name != "__init__.py":
            by_package.setdefault(path.parent.relative_to(SRC).as_posix(), []).append(path.stem)
    crowded = {p: len(m) for p, m in by_package.items() if len(m) > MAX_MODULES_PER_PACKAGE}
    assert not crowded, crowded


def test_nothing_but_the_entry_point_imports_the_cli() -> None:
    importers = {
        name
        for name, deps in GRAPH.items()
        if any(d == "tlsecho.cli" or d.startswith("tlsecho.cli.") for d in deps)
        and not name.startswith("tlsecho.cli")
    }
    assert importers == {"tlsecho._launch"}


@pytest.mark.parametrize(
    "core",
    [
        "tlsecho.wire.framing",
        "tlsecho.wire.proxy_protocol",
        "tlsecho.wire.deadlines",
        "tlsecho.wire.clienthello",
        "tlsecho.wire.hello",
        "tlsecho.wire.tlsnames",
        "tlsecho.wire.tlsext",
        "tlsecho.wire.fingerprints",
        "tlsecho.wire.serverhello",
        "tlsecho.wire.faults",
        "tlsecho.tlsbin",
        "tlsecho.tlsbin.h1",
        "tlsecho.tlsbin.h2",
        "tlsecho.tlsbin.routes",
        "tlsecho.tlsbin.forwarded",
        "tlsecho.tlsbin.page",
        "tlsecho.pki.issuer",
        "tlsecho.pki.kinds",
    ],
)
def test_sans_io_cores_import_no_io_module(core: str) -> None:
    tree = ast.parse(MODULES[core].read_text())
    stdlib = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    stdlib |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not stdlib & {"socket", "ssl", "asyncio", "select", "time", "selectors"}
    assert GRAPH[core] <= {
        "tlsecho.wire.framing",
        "tlsecho.wire.proxy_protocol",
        "tlsecho.errors",
        "tlsecho.wire.tlsnames",
        "tlsecho.wire.tlsext",
        "tlsecho.wire.fingerprints",
        "tlsecho.wire.hello",
        *(m for m in MODULES if m.startswith("tlsecho.tlsbin")),
    }


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_600_lines(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines"


def _design_map() -> tuple[set[str], set[str]]:
    """The modules docs/design.md's module table names in its first column
    (``a``, ``a/b``, ``pkg/``), and with them, for a package row, every name
    in backticks of its job cell (``pkg/name``)."""
    text = (ROOT / "docs" / "design.md").read_text()
    table = text.split("## Modules", 1)[1].split("\n## ", 1)[0]
    rows: set[str] = set()
    named: set[str] = set()
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        first = re.findall(r"`([^`]+)`", cells[0])
        rows.update(first)
        named.update(first)
        for pkg in (f for f in first if f.endswith("/")):
            named.update(pkg + name for name in re.findall(r"`(\w+)`", cells[1]))
    return rows, named


def test_the_design_module_map_names_every_module() -> None:
    rows, named = _design_map()
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("").as_posix()
        package, _, leaf = rel.rpartition("/")
        if leaf == "__init__" and package:
            continue  # the package row stands for it
        if rel not in named and f"{rel.rpartition('/')[0]}/{leaf}" not in named:
            missing.append(rel)
    assert not missing, f"docs/design.md's module table does not name: {missing}"
    stale = {n for n in rows if not n.endswith("/")} - {
        p.relative_to(SRC).with_suffix("").as_posix() for p in SRC.rglob("*.py")
    }
    assert not stale, f"docs/design.md names modules that do not exist: {sorted(stale)}"


DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "RELIABILITY.md"]
DOCS += sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_docs_link_only_inside_the_repository(doc: Path) -> None:
    """Every relative link resolves to a file of the repository (a link to
    ``../shared`` works in one checkout only)."""
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            bad.append(target)
    assert not bad, f"{doc.name}: links that leave the repository or lead nowhere: {bad}"


README_LIMIT = 10 * 1024  # issue 22: a newcomer reads it in five minutes


def test_the_readme_is_short_and_leads_to_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= README_LIMIT, "the reference goes to docs/"
    assert "](docs/index.md)" in readme
    index = (ROOT / "docs" / "index.md").read_text()
    linked = set(re.findall(r"\]\(([^)#\s]+\.md)\)", index))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert not pages - linked, f"docs/index.md does not list: {sorted(pages - linked)}"


def test_the_old_module_paths_still_import() -> None:
    """A program written against the flat layout runs unchanged: every old
    path is the module at its new one (one object, not a second copy), its
    submodules too, and ``import tlsecho`` still loads no OpenSSL."""
    import subprocess
    import sys

    code = """
import importlib, sys
import tlsecho
assert "ssl" not in sys.modules
for old, new in tlsecho.MOVED.items():
    assert importlib.import_module(old) is importlib.import_module(new), old
import tlsecho.engines.base, tlsecho.server.engines.base
assert tlsecho.engines.base is tlsecho.server.engines.base
from tlsecho.lab import catalog
from tlsecho.server import EchoServer
from tlsecho.client import EchoClient
assert EchoServer is tlsecho.EchoServer and EchoClient is tlsecho.EchoClient
assert callable(catalog) and tlsecho.lab.catalog is catalog
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
