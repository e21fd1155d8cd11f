"""Meta-tests: every hook is documented in CONTRIBUTING.md and exercised by the tests."""

from __future__ import annotations

import inspect
from pathlib import Path

from harness import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if name.startswith("register_")]


def test_hooks_exist() -> None:
    assert sorted(HOOKS) == ["register_adapters", "register_encoders", "register_merges",
                             "register_metrics", "register_tasks"]


def test_every_hook_documented() -> None:
    doc = (ROOT / "CONTRIBUTING.md").read_text()
    for name in HOOKS:
        assert f"{name}(register)" in doc, f"{name} missing from CONTRIBUTING.md's hook reference"


def test_every_hook_used_by_a_test_plugin() -> None:
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py")
                    if p.name != "test_docs.py")
    for name in HOOKS:
        assert f"def {name}(" in tests, f"no test plugin implements {name}"


def test_readme_quick_start() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
