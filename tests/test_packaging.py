"""plugins/ and tasks/ install inside harness, never as bare top-level packages."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import harness.plugins
import harness.tasks

ROOT = Path(__file__).resolve().parents[1]


def test_every_folder_is_packaged() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    listed = set(config["packages"])
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" in rel:
                continue
            name = ".".join((package, *rel))
            assert name in listed, f"{init.parent} is not in [tool.setuptools] packages"
        for py in (ROOT / folder).rglob("*.py"):
            assert (py.parent / "__init__.py").exists(), f"{py} is outside any package"


def test_installed_under_harness() -> None:
    assert Path(harness.plugins.__path__[0]).resolve() == ROOT / "plugins"
    assert Path(harness.tasks.__path__[0]).resolve() == ROOT / "tasks"


def test_no_bare_top_level_packages(tmp_path: Path) -> None:
    code = ("import importlib.util, sys\n"
            "print(importlib.util.find_spec('plugins'), importlib.util.find_spec('tasks'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "None None"


def test_bare_import_is_a_lint_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import plugins\nfrom tasks import builtin\n")
    ruff = Path(sys.executable).parent / "ruff"
    out = subprocess.run([str(ruff), "check", "--config", str(ROOT / "pyproject.toml"),
                          "--select", "TID251", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout.count("TID251") == 2
