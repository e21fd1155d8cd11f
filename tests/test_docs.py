"""Meta-tests: every hook is documented in CONTRIBUTING.md under its real signature and exercised
by the tests; CONTRIBUTING.md's worked examples run as written."""

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


def test_every_hook_used_by_a_test_plugin() -> None:
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py")
                    if p.name != "test_docs.py")
    for name in HOOKS:
        assert f"def {name}(" in tests, f"no test plugin implements {name}"


def test_readme_quick_start() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _heading(name: str) -> str:
    """A hook's heading in CONTRIBUTING.md, from its hookspec's real signature."""
    fn = getattr(hookspecs, name)
    params = inspect.signature(fn).parameters
    args = ", ".join(f"{p}: {params[p].annotation}" for p in params)
    return f"### `{name}({args}) -> {inspect.signature(fn).return_annotation}`"


def test_hook_headings_are_the_hookspecs_signatures() -> None:
    import re

    doc = (ROOT / "CONTRIBUTING.md").read_text()
    headings = [line for line in doc.splitlines() if line.startswith("### `register_")]
    assert sorted(headings) == sorted(_heading(name) for name in HOOKS)  # every hook, exactly
    alias = re.search(r"^Register = (.+)$", (ROOT / "harness" / "hookspecs.py").read_text(),
                      re.M)
    assert alias is not None and f"`Register = {alias.group(1)}`" in doc


def _examples() -> dict[str, str]:
    """CONTRIBUTING.md's worked examples: the python blocks that start ``# examples/NAME.py``."""
    import re

    doc = (ROOT / "CONTRIBUTING.md").read_text()
    return {m.group(1): m.group(0) for m in
            re.finditer(r"(?<=```python\n)# examples/(\w+\.py)[^\n]*\n.*?(?=```)", doc, re.S)}


def test_the_worked_encoder_and_adapter_run_as_written(tmp_path: Path) -> None:
    import contextlib
    import io

    from harness.cli import main
    from harness.store import Store

    examples = _examples()
    assert sorted(examples) == ["digit_bag.py", "probe_tuned.py"]
    plugins = []
    for name, code in examples.items():
        (tmp_path / name).write_text(code)
        plugins += ["--plugin", str(tmp_path / name)]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(err):
        code = main(["run", *plugins, "--encoder", "digit-bag", "--adapter", "probe-tuned",
                     "--task", "parity", "--metric", "silhouette", "--profile", "smoke",
                     "--store", str(tmp_path / "S"), "--out", str(tmp_path / "b.md")])
    assert code == 0, err.getvalue()
    assert "0 failed" in out.getvalue()
    store = Store.open_existing(tmp_path / "S")
    try:
        values = {r["adapter"]: r["value"] for r in store.query(
            "SELECT v.adapter AS adapter, s.value AS value FROM scores s JOIN variants v "
            "ON v.key = s.variant WHERE v.merge = 'none'")}
    finally:
        store.close()
    assert set(values) == {"none", "probe-tuned"}
    assert values["probe-tuned"] > values["none"]  # the training did something, as described
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(err):
        code = main(["check", *plugins, "digit-bag", "probe-tuned"])
    assert code == 0, out.getvalue()
    assert [line.split()[0] for line in out.getvalue().splitlines()[:2]] == ["ok", "ok"]
