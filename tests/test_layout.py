"""The package keeps the shape docs/architecture.md describes: small modules, short functions,
typed seams, and imports that only run one way (no file or package imports back into itself)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "callbridge"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
MAX_ANY_IN_CALLS = 10


def _product_modules() -> Iterator[Path]:
    """Every module of the daemon; the simulators and the demo (``sim/``) are test machinery."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] != "sim":
            yield path


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """callbridge modules ``path`` imports anywhere, ``TYPE_CHECKING`` blocks and function bodies
    included: an import only the type checker runs still ties the two files together."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("callbridge"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("callbridge"):
            module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def _top(name: str) -> str:
    """The top-level package (or module) of a callbridge module name."""
    parts = name.split(".")
    return ".".join(parts[:2])


@pytest.mark.parametrize(
    "path", list(_product_modules()), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_module_is_small_and_its_functions_short(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long


def test_the_call_code_is_typed_at_its_seams() -> None:
    uses = 0
    for path in (PACKAGE / "calls").rglob("*.py"):
        tree = ast.parse(path.read_text())
        uses += sum(1 for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "Any")
        uses += sum(1 for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "Any")
    assert uses <= MAX_ANY_IN_CALLS


def test_no_module_imports_back_into_itself() -> None:
    graph = _graph()
    # A package's __init__ re-exporting its own modules is not a cycle of the design.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    assert _cycle(graph) is None


def test_no_package_imports_back_into_itself() -> None:
    packages: dict[str, set[str]] = {}
    for name, targets in _graph().items():
        top = _top(name)
        packages.setdefault(top, set()).update(_top(t) for t in targets if _top(t) != top)
    assert _cycle(packages) is None


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_reader_counts_type_checking_imports(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import callbridge.log\n"
        "if TYPE_CHECKING:\n"
        "    from callbridge.sim.twilio.calls import Call\n"
    )
    assert _imports(module) == {
        "callbridge.log",
        "callbridge.sim.twilio.calls",
        "callbridge.sim.twilio.calls.Call",
    }
