"""The leaderboard's figures: written beside it, linked, byte-identical on a re-render."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from harness.cli import main
from harness.findings import Row
from harness.plots import _t_of


def test_t_of_reads_only_plain_t_sweeps() -> None:
    def row(merge: str) -> Row:
        return Row("g", "e", "lora", "parity", merge)
    assert _t_of(row("slerp"), "slerp") == 0.5
    assert _t_of(row("slerp:t=0.3"), "slerp") == 0.3
    assert _t_of(row("linear:t=0.9"), "linear") == 0.9
    assert _t_of(row("slerp:t=0.3"), "linear") is None
    assert _t_of(row("slerp:between=checkpoints"), "slerp") is None


def test_figures_are_written_linked_and_stable(tmp_path: Path) -> None:
    out = tmp_path / "board" / "README.md"
    args = ["run", "--encoder", "scratch", "--adapter", "full", "--merge", "soup", "--merge",
            "slerp:t=0.3,0.7", "--merge", "linear:t=0.5", "--task", "parity", "--task",
            "progression", "--metric", "silhouette", "--profile", "smoke",
            "--store", str(tmp_path / "S"), "--out", str(out)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args) == 0
    text = out.read_text()
    pngs = {p.name: p.read_bytes() for p in out.parent.glob("*.png")}
    assert set(pngs) == {"slerp-sweep.png", "train-eval.png", "projection.png"}
    for name, data in pngs.items():
        assert f"]({name})" in text and data.startswith(b"\x89PNG")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["leaderboard", "--store", str(tmp_path / "S"), "--out", str(out)]) == 0
    assert out.read_text() == text
    assert {p.name: p.read_bytes() for p in out.parent.glob("*.png")} == pngs


def test_training_on_a_task_not_evaluated(tmp_path: Path) -> None:
    """No on-task figure exists then: the page still renders, the claims say so."""
    out = tmp_path / "README.md"
    args = ["run", "--encoder", "scratch", "--adapter", "full", "--task", "parity",
            "--train-task", "progression", "--metric", "silhouette", "--profile", "smoke",
            "--store", str(tmp_path / "S"), "--out", str(out)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args) == 0
    text = out.read_text()
    assert "scratch + full@progression" in text and "## Reproducibility" in text
