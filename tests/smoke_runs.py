"""The smoke run the resume and store tests share: scratch + full on a few tasks, its arguments,
its summary line, and its plan."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from harness.cli import build_parser, main, request_of
from harness.plan import Plan, plan_request

SMOKE_TASKS = ["parity", "progression", "sum-parity"]  # 4 variants x 3 tasks = 12 cells
SUMMARY = re.compile(r"cells: (\d+) computed, (\d+) reused, (\d+) failed")


def run_args(tasks: list[str], store: str | Path = "S", out: str | Path = "O") -> list[str]:
    # --merge none pins the plan: a merge added later with in_all would multiply the variants.
    args = ["run", "--encoder", "scratch", "--adapter", "full", "--merge", "none"]
    for task in tasks:
        args += ["--task", task]
    return [*args, "--profile", "smoke", "--store", str(store), "--out", str(out)]


def parse_summary(stdout: str) -> dict[str, int]:
    lines = stdout.strip().splitlines()
    assert lines, "no output on stdout"
    m = SUMMARY.fullmatch(lines[-1].strip())
    assert m, f"last stdout line is not a summary: {lines[-1]!r}"
    return dict(zip(("computed", "reused", "failed"), map(int, m.groups()), strict=True))


def run_here(tasks: list[str], folder: Path) -> dict[str, int]:
    """``harness run`` in this process on ``folder/S``, leaderboard ``folder/O``."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(run_args(tasks, folder / "S", folder / "O"))
    summary = parse_summary(buf.getvalue())
    assert rc == 0, (rc, summary)
    return summary


def plan_for(registry, tasks: list[str]) -> Plan:
    return plan_request(registry, request_of(build_parser().parse_args(run_args(tasks))))
