"""The shape of the code: the core names no built-in component (outside the one report module
that says it does), imports run in one direction, modules stay small."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from harness.registry import CORE, Registry

ROOT = Path(__file__).resolve().parents[1]
#: the one module of the core that may name built-in components (it says so at its top)
NAMES_BUILTINS = ROOT / "harness" / "report" / "paper.py"
PACKAGES = {"harness": ROOT / "harness", "harness.plugins": ROOT / "plugins",
            "harness.tasks": ROOT / "tasks"}


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join((package, *rel))] = path
    # harness/plugins and harness/tasks are not folders of harness/ in the repo
    return out


def _literals(tree: ast.AST) -> list[tuple[int, str]]:
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docstrings]


def test_the_core_names_no_builtin_component(registry: Registry) -> None:
    builtins = {name for (kind, name), plugin in registry.owner.items()
                if plugin != CORE and registry.plugins[plugin].distribution == "numgeo-harness"}
    assert {"slerp", "soup", "linear", "lora", "silhouette", "davies-bouldin", "parity"} <= builtins
    found = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        if path == NAMES_BUILTINS:
            continue
        for line, text in _literals(ast.parse(path.read_text())):
            if text in builtins:
                found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not found, "the core names built-in components:\n" + "\n".join(found)
    doc = ast.get_docstring(ast.parse(NAMES_BUILTINS.read_text())) or ""
    assert "names built-in components" in " ".join(doc.split())  # and says so at its top


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``module`` imports, anywhere in it (function-level included)."""
    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                     for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    assert {"harness.execute", "harness.report.leaderboard"} <= graph["harness.cli"]
    assert "harness.store.schema" in graph["harness.store.database"]  # `from pkg import mod`
    sys.setrecursionlimit(10_000)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    # the data path reads in one direction: nothing below the CLI imports it, the store and
    # the report know no runner
    assert not any("harness.cli" in deps for m, deps in graph.items() if m != "harness.cli")
    for m, deps in graph.items():
        if m.startswith(("harness.store", "harness.report")):
            assert not deps & {"harness.run", "harness.execute", "harness.weights",
                               "harness.registry"}, (m, deps)


def test_no_module_over_300_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_lint_is_part_of_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "ruff check" in recipe and "mypy" in recipe and "pytest" in recipe
