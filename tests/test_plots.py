"""The leaderboard's figures: written beside it, linked, byte-identical on a re-render."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from harness.cli import main
from harness.params import params_of
from harness.plan import roles_of
from harness.plugins.adapters import Full
from harness.plugins.interpolation import Linear, Slerp
from harness.plugins.scratch import Scratch
from harness.plugins.soups import Soup


def test_sweep_points_are_plain_t_sweeps_of_interpolating_merges() -> None:
    def t(merge):  # type: ignore[no-untyped-def]
        return roles_of(Scratch, Full, type(merge), params_of(merge))["t"]
    assert t(Slerp()) == 0.5
    assert t(Slerp(t=0.3)) == 0.3
    assert t(Linear(t=0.9)) == 0.9
    assert t(Slerp(between="checkpoints")) is None  # t = 0 is not the base then
    assert t(Soup()) is None  # does not interpolate
    assert roles_of(Scratch, Full, Slerp, {})["control"] == "linear"


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


def test_stale_figures_go_a_user_s_own_files_stay(tmp_path: Path) -> None:
    """A figure the harness wrote before and this store no longer supports is deleted; a file of
    the same name the harness did not write (no leaderboard at --out linked it) is kept."""
    out = tmp_path / "board" / "README.md"
    out.parent.mkdir()
    own = out.parent / "slerp-sweep.png"  # a figure no store here makes
    own.write_bytes(b"the user's own")
    base = ["--encoder", "scratch", "--task", "parity", "--metric", "silhouette", "--profile",
            "smoke", "--out", str(out)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", *base, "--adapter", "full", "--merge", "none",
                     "--store", str(tmp_path / "A")]) == 0
        made = {p.name for p in out.parent.glob("*.png")} - {own.name}
        assert made == {"train-eval.png", "projection.png"}
        assert all(f"]({name})" in out.read_text() for name in made)
        # a store that makes none of them, into the same folder: the harness's go
        assert main(["run", *base, "--adapter", "none", "--store", str(tmp_path / "B")]) == 0
    assert "](" not in out.read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["README.md", "slerp-sweep.png"]
    assert own.read_bytes() == b"the user's own"
    # a file the user puts there by a figure's name is kept, the page at --out never linked it
    (out.parent / "projection.png").write_bytes(b"mine too")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["leaderboard", "--store", str(tmp_path / "B"), "--out", str(out)]) == 0
    assert (out.parent / "projection.png").read_bytes() == b"mine too"
