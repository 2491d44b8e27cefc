"""The package's shape: imports run one way, modules stay small, nothing
imports the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tlsecho"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = ["tlsecho", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _runtime_imports(tree: ast.AST) -> set[str]:
    """Every tlsecho module imported anywhere in ``tree`` (function-level
    imports included), except under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
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


def test_the_import_graph_has_no_cycle() -> None:
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for dep in sorted(GRAPH[node]):
            walk(dep, [*path, node])
        done.add(node)

    for name in GRAPH:
        walk(name, [])


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
        "tlsecho.framing",
        "tlsecho.proxy_protocol",
        "tlsecho.deadlines",
        "tlsecho.clienthello",
        "tlsecho.tlsnames",
        "tlsecho.tlsext",
        "tlsecho.fingerprints",
        "tlsecho.serverhello",
        "tlsecho.tlsbin",
        "tlsecho.tlsbin.h1",
        "tlsecho.tlsbin.h2",
        "tlsecho.tlsbin.routes",
        "tlsecho.tlsbin.forwarded",
        "tlsecho.tlsbin.page",
    ],
)
def test_sans_io_cores_import_no_io_module(core: str) -> None:
    tree = ast.parse(MODULES[core].read_text())
    stdlib = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    stdlib |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not stdlib & {"socket", "ssl", "asyncio", "select", "time", "selectors"}
    assert GRAPH[core] <= {
        "tlsecho.framing",
        "tlsecho.proxy_protocol",
        "tlsecho.errors",
        "tlsecho.tlsnames",
        "tlsecho.tlsext",
        "tlsecho.fingerprints",
        *(m for m in MODULES if m.startswith("tlsecho.tlsbin")),
    }


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_600_lines(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines"
