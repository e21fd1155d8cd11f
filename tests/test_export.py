"""``harness export``: every cell with its metadata, as CSV or JSON, to stdout or a file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from harness.cli import main

RUN = ["run", "--encoder", "scratch", "--adapter", "full", "--merge", "none", "--merge",
       "slerp", "--task", "parity", "--metric", "silhouette", "--metric", "davies-bouldin",
       "--profile", "smoke"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    assert main([*RUN, "--store", str(folder / "S"), "--out", str(folder / "O.md")]) == 0
    return folder / "S"


def test_csv_to_stdout(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["export", "--store", str(store)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 3 * 2  # base, none, slerp x 1 task x 2 metrics
    assert {r["metric"] for r in rows} == {"silhouette", "davies-bouldin"}
    assert {r["merge"] for r in rows} == {"none", "slerp"}
    assert all(r["profile"] == "smoke" and r["task"] == "parity" and r["cell"] for r in rows)
    assert all(float(r["value"]) == float(r["value"]) for r in rows)


def test_json_to_a_file(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cells.json"
    assert main(["export", "--format", "json", "--store", str(store), "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    data = json.loads(out.read_text())
    assert len(data["cells"]) == 6
    assert data["runs"][0]["profile"] == "smoke" and data["runs"][0]["git_commit"]
    assert {a["kind"] for a in data["analyses"]} == {"cka", "encoded", "fit"}
    (stats,) = data["merge_stats"].values()
    assert "linear fallback" in stats


def test_export_needs_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--store", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no results store" in err[0]


def test_csv_text_cells_never_start_a_formula() -> None:
    """A text cell a spreadsheet would run as a formula gets a leading ' (the run-level check,
    a component named ``@SUM(1+1)``, is in test_security.py); numbers stay numbers."""
    from harness.report.export import text_cell

    for text in ("=1+1", "+1", "-1", "@SUM(1+1)", "\t=1", "\r=1"):
        assert text_cell(text) == "'" + text
    for value in ("silhouette", "", "a=b", -0.25, 3, None, True):
        assert text_cell(value) == value
