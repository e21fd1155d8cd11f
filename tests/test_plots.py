"""The leaderboard's figures: written beside it, linked, byte-identical on a re-render."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

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


FIGURES = ("slerp-sweep.png", "train-eval.png", "projection.png")
USERS = {name: f"the user's own {name}".encode() for name in FIGURES}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A store whose page has two figures, made by ``harness run --out`` into a folder that
    holds the user's own files by every figure's name: (store, that folder, stderr)."""
    folder = tmp_path_factory.mktemp("figures")
    users = folder / "mine"
    users.mkdir()
    for name, data in USERS.items():
        (users / name).write_bytes(data)
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(["run", "--encoder", "scratch", "--adapter", "full", "--merge", "none",
                     "--task", "parity", "--metric", "silhouette", "--profile", "smoke",
                     "--device", "cpu", "--store", str(folder / "S"),
                     "--out", str(users / "board.md")]) == 0
    return folder / "S", users, err.getvalue()


def _leaderboard(store: Path, out: Path) -> tuple[str, str]:
    """``harness leaderboard``: (its page, its stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(["leaderboard", "--store", str(store), "--out", str(out)]) == 0
    return out.read_text(), err.getvalue()


def _withheld(err: str) -> set[str]:
    """The figures a one-line warning on stderr says were not written."""
    names = set()
    for line in err.splitlines():
        if line.startswith("warning: ") and "not written" in line:
            assert "--out" in line and "move" in line, line
            names |= {n for n in FIGURES if n in line}
    return names


def test_a_user_s_files_by_a_figure_s_name_are_never_changed(
        made: tuple[Path, Path, str], tmp_path: Path) -> None:
    """``harness run`` and ``harness leaderboard`` into a folder holding the user's own files by
    the figures' names: neither writes over them; the page does not link them, and one warning
    line per figure says which file stayed and what to do."""
    store, users, err = made
    for run in ("run", "leaderboard"):
        if run == "leaderboard":
            text, err = _leaderboard(store, users / "board.md")
        else:
            text = (users / "board.md").read_text()
        assert {n: (users / n).read_bytes() for n in FIGURES} == USERS, run
        assert "](" not in text and "## Plots" not in text, run
        assert _withheld(err) == {"train-eval.png", "projection.png"}, (run, err)
    # the same store into a folder of its own: both figures, marked as the harness's
    text, err = _leaderboard(store, tmp_path / "board.md")
    assert _withheld(err) == set() and "warning" not in err
    mine = sorted(p.name for p in tmp_path.glob("*.png"))
    assert mine == ["projection.png", "train-eval.png"]
    assert all(f"]({name})" in text for name in mine)
    from harness.report.plots import marked
    assert all(marked(tmp_path / name) for name in mine)
    assert not any(marked(users / name) for name in FIGURES)


def test_the_harness_s_own_figures_are_rewritten(made: tuple[Path, Path, str],
                                                 tmp_path: Path) -> None:
    """A figure file is the harness's when it carries its mark (another page in the folder wrote
    it) or when the page at --out linked it (pages written before the mark, the committed
    leaderboard's among them): those are written over, and stale ones deleted."""
    store = made[0]
    first, _ = _leaderboard(store, tmp_path / "a.md")
    marked_bytes = (tmp_path / "projection.png").read_bytes()
    # another page into the same folder: the marked figures are the harness's
    (tmp_path / "train-eval.png").write_bytes(b"written by an older harness")  # unmarked...
    second, err = _leaderboard(store, tmp_path / "a.md")  # ...but linked by the page at --out
    assert second == first and _withheld(err) == set(), err
    assert (tmp_path / "train-eval.png").read_bytes().startswith(b"\x89PNG")
    text, err = _leaderboard(store, tmp_path / "b.md")
    assert _withheld(err) == set() and "](projection.png)" in text, err
    assert (tmp_path / "projection.png").read_bytes() == marked_bytes
    # the committed leaderboard links each of its figures, so they count as the harness's
    from harness.report.leaderboard import linked_plots
    committed = Path(__file__).resolve().parents[1] / "leaderboard"
    assert linked_plots((committed / "README.md").read_text()) == \
        {p.name for p in committed.glob("*.png")}
