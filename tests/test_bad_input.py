"""Bad input: every case gives one line on stderr naming the problem, exit code 2, no traceback,
and writes no leaderboard. (Faults inside a run, which fail cells instead, are in test_cli.py
and test_merge_runs.py.)"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from harness.cli import main

BASE = ["--profile", "smoke"]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()

SCRATCH = ["--encoder", "scratch", "--task", "parity"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def assert_usage_error(argv: list[str], expected: str, out_file: Path | None = None) -> None:
    code, _, err = run_cli(argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("harness: error: "), err
    assert "Traceback" not in err
    assert expected in lines[0], lines[0]
    if out_file is not None:
        assert not out_file.exists()


RUN_CASES = [
    # unknown names
    (["--encoder", "nope"], "unknown encoder 'nope'"),
    (["--encoder", "scratch", "--adapter", "nope"], "unknown adapter 'nope'"),
    (["--encoder", "scratch", "--merge", "slerpp"], "did you mean 'slerp'"),
    (["--encoder", "scratch", "--task", "nope"], "unknown task 'nope'"),
    (["--encoder", "scratch", "--metric", "nope"], "unknown metric 'nope'"),
    ([*SCRATCH, "--train-task", "nope"], "unknown task 'nope'"),
    # bad parameters
    ([*SCRATCH, "--merge", "slerp:t=2"], "slerp"),
    ([*SCRATCH, "--merge", "slerp:t=-0.5"], "slerp"),
    ([*SCRATCH, "--merge", "slerp:t=abc"], "abc"),
    ([*SCRATCH, "--merge", "slerp:tt=0.5"], "no parameter 'tt'"),
    ([*SCRATCH, "--merge", "slerp:t"], "slerp:t"),
    ([*SCRATCH, "--merge", "slerp:between=nowhere"], "between"),
    ([*SCRATCH, "--merge", "ties:density=0"], "density"),
    ([*SCRATCH, "--merge", "dare:p=1"], "dare"),
    ([*SCRATCH, "--merge", "soup:runs=0"], "runs"),
    (["--encoder", "scratch:dim=0", "--task", "parity"], "dim"),
    (["--encoder", "scratch:heads=3", "--task", "parity"], "heads=3"),
    (["--encoder", "scratch:dim=-4", "--task", "parity"], "dim"),
    ([*SCRATCH, "--adapter", "lora:rank=0"], "rank"),
    ([*SCRATCH, "--adapter", "full:lr=-1"], "full"),
    ([*SCRATCH, "--metric", "silhouette:max_samples=1"], "max_samples"),
    ([*SCRATCH, "--metric", "probe-accuracy:test_fraction=1.5"], "test_fraction"),
    ([*SCRATCH, "--metric", "knn-accuracy:k=2.5"], "k"),
    (["--encoder", "hf", "--task", "parity"], "model="),
    (["--encoder", "hf:model=/no/such/folder", "--task", "parity"], "/no/such/folder"),
    # sizes and selections
    ([*SCRATCH, "--seeds", "0"], "--seeds"),
    ([*SCRATCH, "--seeds", "-2"], "--seeds"),
    ([*SCRATCH, "--seed", "abc"], "--seed"),
    ([*SCRATCH, "--profile", "huge"], "--profile"),
    ([], "nothing selected"),
    ([*SCRATCH, "--device", "tpu9"], "tpu9"),
    ([*SCRATCH, "--device", "cuda:7" if not _cuda() else "tpu9"], "--device"),
    ([*SCRATCH, "--plugin", "/no/such/plugin.py"], "/no/such/plugin.py"),
]


@pytest.mark.parametrize(("args", "expected"), RUN_CASES,
                         ids=[" ".join(a) or "empty" for a, _ in RUN_CASES])
def test_run_usage_errors(tmp_path: Path, args: list[str], expected: str) -> None:
    out = tmp_path / "board.md"
    assert_usage_error(["run", *args, *BASE, "--store", str(tmp_path / "S"), "--out", str(out)],
                       expected, out)


def test_plugin_with_a_syntax_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken_plugin.py"
    bad.write_text("def oops(:\n")
    assert_usage_error(["--plugin", str(bad), "plugins"], "broken_plugin")


def test_export_unknown_format(tmp_path: Path) -> None:
    assert_usage_error(["export", "--format", "xml", "--store", str(tmp_path)], "xml")


def test_leaderboard_of_no_store(tmp_path: Path) -> None:
    out = tmp_path / "board.md"
    assert_usage_error(["leaderboard", "--store", str(tmp_path / "none"), "--out", str(out)],
                       "no results store", out)


def test_store_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_usage_error(["run", *SCRATCH, *BASE, "--store", str(blocker),
                        "--out", str(tmp_path / "o.md")], str(blocker))


def test_read_only_store(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes through read-only permissions")
    store = tmp_path / "ro"
    store.mkdir()
    store.chmod(0o500)
    try:
        assert_usage_error(["run", *SCRATCH, *BASE, "--store", str(store),
                            "--out", str(tmp_path / "o.md")], "not writable")
    finally:
        store.chmod(0o700)


def test_store_of_an_incompatible_version(tmp_path: Path) -> None:
    import sqlite3

    store = tmp_path / "S"
    store.mkdir()
    with sqlite3.connect(store / "results.sqlite") as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', '999')")
    assert_usage_error(["run", *SCRATCH, *BASE, "--store", str(store),
                        "--out", str(tmp_path / "o.md")], "999")


def test_unwritable_leaderboard_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_usage_error(["run", *SCRATCH, *BASE, "--store", str(tmp_path / "S"),
                        "--out", str(blocker / "board.md")], str(blocker))
