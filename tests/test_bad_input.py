"""Bad input: every case gives one line on stderr naming the problem, exit code 2, no traceback,
and writes no leaderboard. (Faults inside a run, which fail cells instead, are in test_cli.py
and test_merge_runs.py.)"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import typing
from pathlib import Path

import pytest

from harness.api import Merge
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


def assert_usage_error(argv: list[str], expected: str, out_file: Path | None = None) -> str:
    code, _, err = run_cli(argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("harness: error: "), err
    assert "Traceback" not in err
    assert expected in lines[0], lines[0]
    if out_file is not None:
        assert not out_file.exists()
    return lines[0]


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
    ([*SCRATCH, "--adapter", "full:lr=nan"], "not a finite number"),
    ([*SCRATCH, "--adapter", "full:temperature=nan"], "temperature"),
    ([*SCRATCH, "--merge", "task-arithmetic:scale=nan"], "scale='nan'"),
    ([*SCRATCH, "--adapter", "lora:lr=inf"], "not a finite number"),
    ([*SCRATCH, "--merge", "slerp:t=0.5,-inf"], "not a finite number"),
    (["--encoder", "hf", "--task", "parity"], "model="),
    (["--encoder", "hf:model=/no/such/folder", "--task", "parity"], "/no/such/folder"),
    (["--encoder", "hf:model=/no/such/folder,family=llm", "--task", "parity"],
     "folder '/no/such/folder' does not exist"),
    (["--encoder", "hf:model=./no/such,family=non-llm", "--task", "parity"],
     "folder './no/such' does not exist"),
    # sizes and selections
    ([*SCRATCH, "--seeds", "0"], "--seeds"),
    ([*SCRATCH, "--seeds", "-2"], "--seeds"),
    ([*SCRATCH, "--seed", "abc"], "--seed"),
    ([*SCRATCH, "--seed", "99999999999999999999"], "is not in 0..4294967295"),
    ([*SCRATCH, "--seed", "-1"], "--seed"),
    ([*SCRATCH, "--profile", "huge"], "--profile"),
    ([], "nothing selected"),
    ([*SCRATCH, "--device", "tpu9"], "tpu9"),
    ([*SCRATCH, "--device", "cuda:7" if not _cuda() else "tpu9"], "--device"),
    ([*SCRATCH, "--plugin", "/no/such/plugin.py"], "/no/such/plugin.py"),
    ([*SCRATCH, "--rank-by", "nope"], "--rank-by 'nope': not a metric of this run"),
    ([*SCRATCH, "--merge", "ties:over=tasks,rescale=silhouette"], "rescale does not apply"),
    ([*SCRATCH, "--task", "square", "--merge", "slerp:over=tasks,rescale=nope"],
     "unknown metric 'nope'"),
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
    """A store folder the user cannot write: refused before any work. Root writes through
    permission bits, so as root the command runs without CAP_DAC_OVERRIDE (setpriv)."""
    import os
    import shutil
    import subprocess
    import sys

    store = tmp_path / "ro"
    store.mkdir()
    (store / "kept.txt").write_text("a file already in the store\n")
    store.chmod(0o500)
    argv = ["run", *SCRATCH, *BASE, "--store", str(store), "--out", str(tmp_path / "o.md")]
    try:
        if os.geteuid() != 0:
            assert_usage_error(argv, "not writable")
            return
        if shutil.which("setpriv") is None:
            pytest.skip("root writes through read-only permissions, and setpriv is missing")
        caps = "-dac_override,-dac_read_search"
        proc = subprocess.run(["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}",
                               sys.executable, "-m", "harness.cli", *argv],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("harness: error: store ") and "not writable" in proc.stderr
        assert not (tmp_path / "o.md").exists()
    finally:
        store.chmod(0o700)
    assert sorted(p.name for p in store.iterdir()) == ["kept.txt"]  # nothing written


def test_store_of_an_incompatible_version(tmp_path: Path) -> None:
    import sqlite3

    store = tmp_path / "S"
    store.mkdir()
    with sqlite3.connect(store / "results.sqlite") as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', '999')")
    assert_usage_error(["run", *SCRATCH, *BASE, "--store", str(store),
                        "--out", str(tmp_path / "o.md")], "999")


def test_store_database_that_is_not_one(tmp_path: Path) -> None:
    store = tmp_path / "S"
    store.mkdir()
    (store / "results.sqlite").write_text("not a database, a note someone saved over it\n")
    assert_usage_error(["run", *SCRATCH, *BASE, "--store", str(store),
                        "--out", str(tmp_path / "o.md")], "results.sqlite is damaged")
    assert_usage_error(["leaderboard", "--store", str(store), "--out", str(tmp_path / "o.md")],
                       "move it aside")
    assert (store / "results.sqlite").read_text().startswith("not a database")  # untouched


def test_unwritable_leaderboard_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_usage_error(["run", *SCRATCH, *BASE, "--store", str(tmp_path / "S"),
                        "--out", str(blocker / "board.md")], str(blocker))


# ------------------------------------------------------------------- faults inside plugins

FAULTY = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness import hookimpl
from harness.api import Merge, Metric, Task
from harness.plugins.scratch import Scratch, ScratchBackbone
from harness.tasks.elementwise import Parity


class NanBackbone(ScratchBackbone):
    def embed(self, seqs, batch_size=64):
        X = super().embed(seqs, batch_size)
        X[::3] = np.nan
        return X


class FlatBackbone(ScratchBackbone):
    def embed(self, seqs, batch_size=64):
        return super().embed(seqs, batch_size)[:, 0]


class ShortEmbedBackbone(ScratchBackbone):
    def embed(self, seqs, batch_size=64):
        return super().embed(seqs, batch_size)[:-1]


class ShortEncodeBackbone(ScratchBackbone):
    def encode(self, seqs):
        z = super().encode(seqs)
        return z[:-1] if self.module.training else z


@dataclass(frozen=True)
class NanEncoder(Scratch):
    """Every third embedding is NaN."""
    name: ClassVar[str] = "nan-enc"

    def load(self, device):
        return NanBackbone(super().load(device).module, device)


@dataclass(frozen=True)
class FlatEncoder(Scratch):
    """One number per sequence, not a vector."""
    name: ClassVar[str] = "flat-enc"

    def load(self, device):
        return FlatBackbone(super().load(device).module, device)


@dataclass(frozen=True)
class ShortEmbedEncoder(Scratch):
    """embed returns one row too few."""
    name: ClassVar[str] = "short-embed"

    def load(self, device):
        return ShortEmbedBackbone(super().load(device).module, device)


@dataclass(frozen=True)
class ShortEncodeEncoder(Scratch):
    """encode returns one row too few while training."""
    name: ClassVar[str] = "short-encode"

    def load(self, device):
        return ShortEncodeBackbone(super().load(device).module, device)


@dataclass(frozen=True)
class Parityish(Task):
    classes: ClassVar[tuple] = ("even", "odd")

    def label(self, seq):
        return seq[-1] % 2


@dataclass(frozen=True)
class Lopsided(Parityish):
    """Draws only even numbers."""
    name: ClassVar[str] = "lopsided"

    def sample(self, n, rng):
        return [(2 * rng.randrange(1000),) for _ in range(n)]


@dataclass(frozen=True)
class Empty(Parityish):
    """Draws nothing."""
    name: ClassVar[str] = "empty"

    def sample(self, n, rng):
        return []


@dataclass(frozen=True)
class Crashing(Parityish):
    """Its sampler raises."""
    name: ClassVar[str] = "crashing"

    def sample(self, n, rng):
        raise RuntimeError("sampler blew up")


@dataclass(frozen=True)
class Mislabelled(Parityish):
    """Labels that are not class indices."""
    name: ClassVar[str] = "mislabelled"

    def label(self, seq):
        return "odd" if seq[-1] % 2 else "even"

    def sample(self, n, rng):
        return [(i,) for i in range(n)]


@dataclass(frozen=True)
class Picky(Parity):
    """Parity whose label raises where it does not apply, instead of returning None."""
    name: ClassVar[str] = "picky"
    in_all: ClassVar[bool] = False

    def label(self, seq):
        if len({x % 2 for x in seq}) > 1:
            raise ValueError("mixed parities")
        return super().label(seq)


@dataclass(frozen=True)
class Exploding(Metric):
    """Raises on every cell."""
    name: ClassVar[str] = "exploding"
    in_all: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True

    def score(self, X, y, rng):
        raise RuntimeError("metric blew up")


@dataclass(frozen=True)
class Squash(Merge):
    """Returns a tensor of the wrong shape."""
    name: ClassVar[str] = "squash"
    in_all: ClassVar[bool] = False

    def merge(self, base, checkpoints, score=None):
        return {k: v.flatten()[:1] for k, v in checkpoints[-1].items()}


@dataclass(frozen=True)
class Quitter(Merge):
    """Calls sys.exit() in the middle of a run."""
    name: ClassVar[str] = "quitter"
    in_all: ClassVar[bool] = False

    def merge(self, base, checkpoints, score=None):
        import sys
        sys.exit(0)


@hookimpl
def register_encoders(register):
    register(NanEncoder)
    register(FlatEncoder)
    register(ShortEmbedEncoder)
    register(ShortEncodeEncoder)


@hookimpl
def register_tasks(register):
    for task in (Lopsided, Empty, Crashing, Mislabelled, Picky):
        register(task)


@hookimpl
def register_metrics(register):
    register(Exploding)


@hookimpl
def register_merges(register):
    register(Squash)
    register(Quitter)
'''


@pytest.fixture
def faulty(tmp_path: Path) -> list[str]:
    path = tmp_path / "faulty.py"
    path.write_text(FAULTY)
    return ["--plugin", str(path)]


SAMPLER_CASES = [
    ("lopsided", "sample(40) is unbalanced (class counts [40, 0])"),
    ("empty", "sample(40) returned 0 sequences"),
    ("crashing", "RuntimeError: sampler blew up"),
    ("mislabelled", "has label 'even', not a class index"),
]


@pytest.mark.parametrize(("task", "expected"), SAMPLER_CASES, ids=[t for t, _ in SAMPLER_CASES])
def test_broken_task_sampler(tmp_path: Path, faulty: list[str], task: str,
                             expected: str) -> None:
    store = tmp_path / "S"
    line = assert_usage_error(["run", *faulty, "--encoder", "scratch", "--adapter", "full",
                               "--task", task, *BASE, "--store", str(store),
                               "--out", str(tmp_path / "o.md")], f"task {task!r}: ",
                              tmp_path / "o.md")
    assert expected in line and "fix the task" in line
    assert not store.exists()  # refused before the run: nothing recorded


CELL_FAULTS = [
    (["--encoder", "nan-enc"], 6, "gave NaN or inf embeddings for 14 of 40 sequences; fix"),
    (["--encoder", "flat-enc"], 6, "returned embeddings of shape (40,), expected (40, dim); fix"),
    (["--encoder", "scratch", "--merge", "squash"], 1,
     "merge 'squash' returned shape (1,) for 'encoder."),
    (["--encoder", "scratch", "--merge", "quitter"], 1, "SystemExit: 0"),
    # one row too few: from embed (the embedding pass, and greedy soup's held-out scoring) ...
    (["--encoder", "short-embed", "--merge", "greedy-soup"], 3,
     "encoder 'short-embed' returned embeddings of shape (39, 64), expected (40, dim); fix its "
     "Backbone.embed"),
    # ... and from encode while training (the base model is scored)
    (["--encoder", "short-encode"], 5,
     "encoder 'short-encode' returned embeddings of shape (15, 64), expected (16, dim); fix its "
     "Backbone.encode"),
    (["--encoder", "scratch", "--metric", "exploding", "--metric", "silhouette"], 6,
     "RuntimeError: metric blew up (from metric 'exploding': fix it, or raise MetricUndefined"),
]


@pytest.mark.parametrize(("args", "failed", "expected"), CELL_FAULTS,
                         ids=[a[1] if len(a) == 2 else a[3] for a, _, _ in CELL_FAULTS])
def test_plugin_fault_fails_its_cells_in_one_line_each(tmp_path: Path, faulty: list[str],
                                                       args: list[str], failed: int,
                                                       expected: str) -> None:
    from harness.store import Store

    store, out = tmp_path / "S", tmp_path / "o.md"
    argv = ["run", *faulty, *args, "--adapter", "full", "--task", "parity", *BASE,
            "--store", str(store), "--out", str(out)]
    for _ in range(2):  # nothing faulty is stored: the re-run tries the same cells again
        code, stdout, err = run_cli(argv)
        assert code == 1 and "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line.strip()]
        failures = [line for line in lines if line.startswith("failed: ")]
        assert len(failures) == failed and all(expected in line for line in failures), err
        assert set(lines) - set(failures) == {f"leaderboard: {out}"}, err
        assert f"{failed} failed" in stdout
        assert "## Failed cells" in out.read_text()
    db = Store.open_existing(store)
    try:
        assert len(db.query("SELECT * FROM failures")) == failed
    finally:
        db.close()
    code, _, err = run_cli([*argv, "--debug"])  # --debug adds each failure's traceback
    assert code == 1 and err.count("Traceback (most recent call last)") == failed


def _rows(store: Path, sql: str) -> list[tuple]:
    from harness.store import Store

    db = Store.open_existing(store)
    try:
        return [tuple(r) for r in db.query(sql)]
    finally:
        db.close()


def test_a_metric_that_raises_keeps_the_cells_other_metrics(tmp_path: Path,
                                                             faulty: list[str]) -> None:
    store, out = tmp_path / "S", tmp_path / "o.md"
    argv = ["run", *faulty, "--encoder", "scratch", "--adapter", "none", "--task", "parity",
            "--metric", "exploding", "--metric", "silhouette", *BASE, "--store", str(store),
            "--out", str(out)]
    for run in (1, 2):  # the re-run scores only the metric that raised
        code, stdout, err = run_cli(argv)
        failures = [line for line in err.splitlines() if line.startswith("failed: ")]
        assert code == 1 and "Traceback" not in err, err
        assert failures == ["failed: scratch on parity: RuntimeError: metric blew up (from "
                            "metric 'exploding': fix it, or raise MetricUndefined where its "
                            "value is undefined)"], err
        assert "0 computed, 0 reused, 1 failed" in stdout
        assert _rows(store, "SELECT metric, run_id FROM scores") == [("silhouette", 1)]
        assert _rows(store, "SELECT run_id FROM failures") == [(run,)]
    assert "silhouette" in out.read_text() and "## Failed cells" in out.read_text()


def test_metrics_that_raise_are_named_with_what_the_others_scored() -> None:
    import numpy as np

    from harness.api import Metric
    from harness.plugins.cluster_metrics import Silhouette
    from harness.scoring import Metrics, MetricsRaised

    @dataclasses.dataclass(frozen=True)
    class Boom(Metric):
        name: typing.ClassVar[str] = "boom"
        higher_is_better: typing.ClassVar[bool] = True

        def per_sample(self, X, y, rng):  # type: ignore[no-untyped-def]
            raise KeyError("no such thing")

    @dataclasses.dataclass(frozen=True)
    class Quit(Boom):
        name: typing.ClassVar[str] = "quit"

        def per_sample(self, X, y, rng):  # type: ignore[no-untyped-def]
            raise SystemExit(3)

    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    with pytest.raises(MetricsRaised) as raised:
        Metrics([Boom(), Silhouette(), Quit()]).score(X, y, "eval-key", set())
    assert str(raised.value) == (
        "KeyError: 'no such thing' (from metric 'boom': fix it, or raise MetricUndefined where "
        "its value is undefined); SystemExit: 3 (from metric 'quit': fix it, or raise "
        "MetricUndefined where its value is undefined)")
    assert [row[1] for row in raised.value.rows] == ["silhouette"]  # what the others scored
    assert list(raised.value.samples) == [raised.value.rows[0][0]]
    assert raised.value.trace.count("Traceback (most recent call last)") == 2


def test_a_task_whose_label_raises_on_other_sequences_is_left_out_of_the_analysis(
        tmp_path: Path, faulty: list[str]) -> None:
    store, out = tmp_path / "S", tmp_path / "o.md"
    args = ["--encoder", "scratch", "--adapter", "none", "--task", "picky", "--task",
            "monotonic", "--metric", "silhouette", *BASE, "--store", str(store),
            "--out", str(out)]

    def encoded() -> set[str]:
        return {r[0] for r in _rows(store, "SELECT name FROM analyses WHERE kind='encoded'")}

    for cells in ("2 computed, 0 reused", "0 computed, 2 reused"):  # reported every run
        code, stdout, err = run_cli(["run", *faulty, *args])
        assert code == 1 and "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines[1:] == [f"leaderboard: {out}"], err
        assert lines[0].startswith("failed: task 'picky': label() raised ValueError: mixed "
                                   "parities on a sequence of task 'monotonic' ("), err
        assert lines[0].endswith("); its 'encoded' analysis is left out; fix the task (return "
                                 "None where it does not apply)"), err
        assert f"cells: {cells}, 0 failed; 1 task(s) left out of the analysis" in stdout
        assert out.exists()
        assert encoded() == {"monotonic", "length", "magnitude", "leading digit"}
        assert _rows(store, "SELECT name FROM analyses WHERE kind='cka'") == [("base",)]
    fixed = tmp_path / "fixed.py"  # the same task, fixed: the analysis gets its labels
    fixed.write_text(FAULTY.replace('raise ValueError("mixed parities")', "return None"))
    code, _, err = run_cli(["run", "--plugin", str(fixed), *args])
    assert code == 0 and "failed" not in err, err
    assert encoded() == {"picky", "monotonic", "length", "magnitude", "leading digit"}


def test_every_float_parameter_of_every_component_refuses_nan_and_inf() -> None:
    from harness.errors import HarnessError
    from harness.params import build
    from harness.registry import SINGULAR, load_registry

    reg = load_registry()
    checked = 0
    for kind, components in reg.components.items():
        for cls in components.values():
            if not dataclasses.is_dataclass(cls):
                continue
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if float not in (hints[f.name], *typing.get_args(hints[f.name])):
                    continue
                for bad in ("nan", "inf", "-inf"):
                    with pytest.raises(HarnessError, match="not a finite number"):
                        build(cls, SINGULAR[kind], {f.name: bad})
                checked += 1
    assert checked >= 15  # lr, temperature, t, scale, density, p, alpha, ...


@dataclasses.dataclass(frozen=True)
class Capped(Merge):
    name: typing.ClassVar[str] = "capped"
    limit: float = dataclasses.field(default=1.0, metadata={"finite": False})


def test_a_float_field_can_opt_out_of_the_finite_check() -> None:
    from harness.params import build

    assert build(Capped, "merge", {"limit": "inf"}).limit == float("inf")


@pytest.mark.parametrize("inside", ["results.sqlite", "results.sqlite-wal", "artifacts/x.md",
                                    "."])
@pytest.mark.parametrize("command", ["run", "leaderboard", "export"])
def test_out_inside_the_store_is_refused_and_loses_nothing(tmp_path: Path, inside: str,
                                                           command: str) -> None:
    store = tmp_path / "S"
    store.mkdir()
    database = store / "results.sqlite"
    database.write_bytes(b"precious")
    args = {"run": ["run", *SCRATCH, *BASE], "leaderboard": ["leaderboard"],
            "export": ["export"]}[command]
    out = store / inside
    assert_usage_error([*args, "--store", str(store), "--out", str(out)],
                       "inside the results store")
    assert database.read_bytes() == b"precious"
    assert sorted(p.name for p in store.iterdir()) == ["results.sqlite"]


@pytest.mark.parametrize("command", ["leaderboard", "export"])
def test_out_that_is_a_folder_is_refused(tmp_path: Path, command: str) -> None:
    folder = tmp_path / "board"
    folder.mkdir()
    assert_usage_error([command, "--store", str(tmp_path / "S"), "--out", str(folder)],
                       "is a folder")
    assert list(folder.iterdir()) == [] and list(tmp_path.iterdir()) == [folder]


def test_a_plugin_file_that_exits_at_import_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "leaver.py"
    path.write_text("import sys\nsys.exit(3)\n")
    assert_usage_error(["plugins", "--plugin", str(path)], "failed to import: SystemExit: 3")


def test_leaderboard_of_a_profile_the_store_has_not_run(tmp_path: Path) -> None:
    store, out = tmp_path / "S", tmp_path / "o.md"
    code, _, err = run_cli(["run", *SCRATCH, *BASE, "--store", str(store), "--out", str(out)])
    assert code == 0, err
    assert_usage_error(["leaderboard", "--store", str(store), "--out", str(tmp_path / "b.md"),
                        "--profile", "nope"], "has no run of profile 'nope'", tmp_path / "b.md")


@pytest.mark.parametrize("command", ["run", "leaderboard", "export"])
def test_an_empty_store_path_is_refused(tmp_path: Path, command: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = {"run": ["run", *SCRATCH, *BASE], "leaderboard": ["leaderboard"],
            "export": ["export"]}[command]
    assert_usage_error([*args, "--store", "", "--out", str(tmp_path / "o.md")],
                       "--store is empty")
    assert list(tmp_path.iterdir()) == []


INPLACE = '''
from dataclasses import dataclass
from typing import ClassVar

from harness import hookimpl
from harness.api import Merge


@dataclass(frozen=True)
class InPlace(Merge):
    """Moves the base onto the last checkpoint in place and returns it; zeroes the others."""
    name: ClassVar[str] = "in-place"
    in_all: ClassVar[bool] = False

    def merge(self, base, checkpoints, score=None):
        for k in base:
            base[k].copy_(checkpoints[-1][k])
            for ck in checkpoints:
                ck[k].zero_()
        return base


@hookimpl
def register_merges(register):
    register(InPlace)
'''


def test_a_merge_that_changes_its_inputs_in_place_harms_nothing(tmp_path: Path) -> None:
    from harness.store import Store

    path = tmp_path / "inplace.py"
    path.write_text(INPLACE)
    common = ["--encoder", "scratch", "--adapter", "full", "--task", "parity", "--metric",
              "silhouette", *BASE]

    def scores(store: Path, merges: list[str]) -> dict[tuple[str, str], float]:
        argv = ["run", "--plugin", str(path), *common, *merges, "--store", str(store),
                "--out", str(store / ".." / f"{store.name}.md")]
        code, _, err = run_cli(argv)
        assert code == 0, err
        s = Store.open_existing(store)
        try:
            return {(r["merge"], r["task"]): r["value"] for r in s.query(
                "SELECT v.merge AS merge, s.task AS task, s.value AS value FROM scores s "
                "JOIN variants v ON v.key = s.variant WHERE v.adapter != 'none'")}
        finally:
            s.close()

    clean = scores(tmp_path / "A", ["--merge", "soup"])
    mixed = scores(tmp_path / "B", ["--merge", "in-place", "--merge", "soup"])
    assert {k: v for k, v in mixed.items() if k[0] != "in-place"} == clean
    assert mixed[("in-place", "parity")] == clean[("none", "parity")]  # the last checkpoint


WIDENING = '''
from dataclasses import dataclass
from typing import ClassVar

from harness import hookimpl
from harness.api import Merge


@dataclass(frozen=True)
class Last(Merge):
    """The last checkpoint, as it is."""
    name: ClassVar[str] = "last"
    in_all: ClassVar[bool] = False

    def merge(self, base, checkpoints, score=None):
        return {k: v.clone() for k, v in checkpoints[-1].items()}


@dataclass(frozen=True)
class Last64(Merge):
    """The last checkpoint in float64: another dtype than the base's."""
    name: ClassVar[str] = "last64"
    in_all: ClassVar[bool] = False

    def merge(self, base, checkpoints, score=None):
        return {k: v.double() for k, v in checkpoints[-1].items()}


@hookimpl
def register_merges(register):
    register(Last)
    register(Last64)
'''


def test_a_merge_returning_another_dtype_is_converted_to_the_base_s(tmp_path: Path) -> None:
    """Point 5's second half: the returned float64 tensors become the base's float32, so the
    scores equal those of the same weights returned in float32 (and nothing fails)."""
    from harness.store import Store

    path = tmp_path / "widening.py"
    path.write_text(WIDENING)
    store = tmp_path / "S"
    code, _, err = run_cli(["run", "--plugin", str(path), "--encoder", "scratch", "--adapter",
                            "full", "--task", "parity", "--metric", "silhouette", "--merge",
                            "last", "--merge", "last64", *BASE, "--store", str(store),
                            "--out", str(tmp_path / "o.md")])
    assert code == 0, err
    s = Store.open_existing(store)
    try:
        values = {r["merge"]: r["value"] for r in s.query(
            "SELECT v.merge AS merge, s.value AS value FROM scores s JOIN variants v "
            "ON v.key = s.variant WHERE v.merge IN ('last', 'last64')")}
    finally:
        s.close()
    assert set(values) == {"last", "last64"} and values["last"] == values["last64"]
    # converted, its weights are the fine-tune's bit for bit: all three share one embedding
    # file (unconverted, float64 bytes would key a pass of their own); the other two files are
    # the base's and the fine-tune's fit samples (harness.learnability)
    files = list((store / "artifacts" / "embeddings").glob("*.npy"))
    assert len({f.stat().st_ino for f in files}) == 4


# ------------------------------------------------ plugin code that exits or raises before a run

EARLY = '''
import sys
from dataclasses import dataclass
from typing import ClassVar

from harness import hookimpl
from harness.api import Adapter
from harness.plugins.scratch import Scratch
from harness.tasks.elementwise import Parity


def misbehave(how, where):
    if how == "exit":
        sys.exit(0)
    raise RuntimeError(f"{where} blew up")


@dataclass(frozen=True)
class EarlyTask(Parity):
    """Exits or raises in sample() or label()."""
    name: ClassVar[str] = "early-task"
    in_all: ClassVar[bool] = False
    how: str = "exit"
    where: str = "sample"

    def sample(self, n, rng):
        if self.where == "sample":
            misbehave(self.how, "sample")
        return super().sample(n, rng)

    def label(self, seq):
        if self.where == "label":
            misbehave(self.how, "label")
        return super().label(seq)


@dataclass(frozen=True)
class ListTask(Parity):
    """Samples lists, not tuples."""
    name: ClassVar[str] = "list-task"
    in_all: ClassVar[bool] = False

    def sample(self, n, rng):
        return [list(s) for s in super().sample(n, rng)]


@dataclass(frozen=True)
class RepeatTask(Parity):
    """Its samples repeat the same ten sequences."""
    name: ClassVar[str] = "repeat-task"
    in_all: ClassVar[bool] = False

    def sample(self, n, rng):
        ten = super().sample(10, rng)
        by_class = [[s for s in ten if self.label(s) == c] for c in (0, 1)]
        return [by_class[i % 2][i // 2 % 5] for i in range(n)]


@dataclass(frozen=True)
class EarlyEncoder(Scratch):
    """Exits or raises in __post_init__ or settled()."""
    name: ClassVar[str] = "early-encoder"
    in_all: ClassVar[bool] = False
    how: str = "exit"
    where: str = "init"

    def __post_init__(self):
        if self.where == "init":
            misbehave(self.how, "__post_init__")

    def settled(self, device):
        if self.where == "settled":
            misbehave(self.how, "settled")
        return self


@dataclass(frozen=True)
class EarlyAdapter(Adapter):
    """Exits or raises in supports()."""
    name: ClassVar[str] = "early-adapter"
    in_all: ClassVar[bool] = False
    how: str = "exit"

    def supports(self, encoder):
        misbehave(self.how, "supports")

    def fit(self, backbone, train, labels, seed, profile):
        raise AssertionError("never trained")


@hookimpl
def register_tasks(register):
    register(EarlyTask)
    register(ListTask)
    register(RepeatTask)


@hookimpl
def register_encoders(register):
    register(EarlyEncoder)


@hookimpl
def register_adapters(register):
    register(EarlyAdapter)
'''

EARLY_CASES = [
    (["--encoder", "scratch", "--task", "early-task"],
     "task 'early-task': sample(40) or label raised SystemExit: 0; fix the task plugin"),
    (["--encoder", "scratch", "--task", "early-task:where=label"],
     "task 'early-task': sample(40) or label raised SystemExit: 0; fix the task plugin"),
    (["--encoder", "early-encoder", "--task", "parity"],
     "encoder 'early-encoder': __post_init__ raised SystemExit: 0"),
    (["--encoder", "early-encoder:how=raise", "--task", "parity"],
     "encoder 'early-encoder': __post_init__ raised RuntimeError: __post_init__ blew up"),
    (["--encoder", "early-encoder:where=settled", "--task", "parity"],
     "encoder 'early-encoder': settled() raised SystemExit: 0"),
    (["--encoder", "early-encoder:where=settled,how=raise", "--task", "parity"],
     "encoder 'early-encoder': settled() raised RuntimeError: settled blew up"),
    (["--encoder", "scratch", "--adapter", "early-adapter", "--task", "parity"],
     "adapter 'early-adapter': supports(encoder 'scratch') raised SystemExit: 0"),
    (["--encoder", "scratch", "--adapter", "early-adapter:how=raise", "--task", "parity"],
     "adapter 'early-adapter': supports(encoder 'scratch') raised RuntimeError: supports blew "
     "up"),
    (["--encoder", "scratch", "--task", "list-task"],
     "(list), not a tuple of ints; return each sequence as a tuple of ints"),
    (["--encoder", "scratch", "--task", "repeat-task"],
     "task 'repeat-task': its eval sample of 40 holds 10 distinct sequences"),
]


@pytest.mark.parametrize(("args", "expected"), EARLY_CASES,
                         ids=[" ".join(a[1::2]) for a, _ in EARLY_CASES])
def test_plugin_code_that_exits_or_raises_before_the_run_is_one_line(
        tmp_path: Path, args: list[str], expected: str) -> None:
    """sys.exit() or an exception in a plugin while the run is selected and planned: a usage
    error naming the component, with nothing recorded (no store, no leaderboard)."""
    plugin = tmp_path / "early.py"
    plugin.write_text(EARLY)
    store, out = tmp_path / "S", tmp_path / "o.md"
    assert_usage_error(["run", "--plugin", str(plugin), *args, *BASE, "--device", "cpu",
                        "--store", str(store), "--out", str(out)], expected, out)
    assert not store.exists()


@pytest.mark.parametrize(("spec", "expected"), [
    ("early-encoder", "__post_init__ raised SystemExit: 0"),
    ("early-encoder:how=raise", "__post_init__ raised RuntimeError: __post_init__ blew up"),
])
def test_harness_check_fails_a_component_that_exits_or_raises_in_post_init(
        tmp_path: Path, spec: str, expected: str) -> None:
    """Not skipped as one whose defaults need a value: its line fails, and the other checks
    that use every encoder (adapters' supports) leave it out."""
    plugin = tmp_path / "early.py"
    plugin.write_text(EARLY)
    code, out, err = run_cli(["check", spec, "full", "--plugin", str(plugin)])
    assert code == 1, out + err
    lines = out.splitlines()
    assert lines[0].startswith("FAIL  encoder early-encoder (file ") and expected in lines[0], out
    assert lines[1].startswith("ok    adapter full "), out


@pytest.mark.parametrize("where", ["sample", "label"])
def test_a_task_that_exits_in_the_audit_is_flagged_not_a_silent_exit(tmp_path: Path,
                                                                     where: str) -> None:
    plugin = tmp_path / "early.py"
    plugin.write_text(EARLY)
    code, out, err = run_cli(["tasks", "--plugin", str(plugin), "--audit", "--draws", "10",
                              "--task", f"early-task:where={where}", "--task", "parity"])
    assert code == 0 and err == "", err
    assert "flagged: task 'early-task': sample(10) or label raised SystemExit: 0" in out, out
    assert "parity" in out


def test_a_plugin_that_exits_in_its_register_hook_is_one_line(tmp_path: Path) -> None:
    plugin = tmp_path / "leaving.py"
    plugin.write_text("import sys\nfrom harness import hookimpl\n\n\n@hookimpl\n"
                      "def register_tasks(register):\n    sys.exit(0)\n")
    assert_usage_error(["plugins", "--plugin", str(plugin)],
                       "plugin 'leaving' failed in register_tasks: SystemExit: 0")


def test_a_sys_exit_that_escapes_to_the_command_line_is_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The last safety net: a SystemExit from plugin code that nothing on its way caught ends
    the command with one line naming where it was called, never with exit code 0."""
    import harness.cli

    def leave(args: object, reg: object) -> int:
        raise SystemExit(0)

    monkeypatch.setitem(harness.cli.COMMANDS, "plugins", leave)
    line = assert_usage_error(["plugins"], "sys.exit(0) was called")
    assert "test_bad_input.py" in line and "in leave" in line


@pytest.mark.parametrize("command", ["run", "leaderboard", "export"])
def test_an_out_file_name_too_long_is_refused(tmp_path: Path, command: str) -> None:
    args = {"run": ["run", *SCRATCH, *BASE], "leaderboard": ["leaderboard"],
            "export": ["export"]}[command]
    for name in ("x" * 300 + ".md", "x" * 250 + ".md", "y" * 300 + "/board.md"):
        out = tmp_path / name
        assert_usage_error([*args, "--store", str(tmp_path / "S"), "--out", str(out)],
                           "too long")
    assert list(tmp_path.iterdir()) == []


BOUND_CASES = [
    ([*SCRATCH, "--seeds", "99999999999999999999"], "--seeds must be in 1..100,"),
    ([*SCRATCH, "--seeds", "101"], "--seeds must be in 1..100,"),
    ([*SCRATCH, "--merge", "soup:over=seeds,runs=99999999999"],
     "merge 'soup': ingredients() asks for 99999999999 runs; at most 100"),
    ([*SCRATCH, "--device", "mps"], "--device 'mps'"),
    ([*SCRATCH, "--device", "meta"], "--device 'meta'"),
    ([*SCRATCH, "--device", "cuda:99"], "--device 'cuda:99'"),
    (["--encoder", "scratch:init_seed=18446744073709551616", "--task", "parity"],
     "encoder 'scratch': init_seed=18446744073709551616 is not in 0..18446744073709551615"),
    (["--encoder", "scratch:init_seed=-1", "--task", "parity"], "init_seed=-1 is not in 0.."),
    ([*SCRATCH, "--job-gpus", "nan"], "--job-gpus must be a finite number >= 0"),
    ([*SCRATCH, "--job-gpus", "inf"], "--job-gpus must be a finite number >= 0"),
    ([*SCRATCH, "--job-gpus", "-1"], "--job-gpus must be a finite number >= 0"),
]


@pytest.mark.parametrize(("args", "expected"), BOUND_CASES,
                         ids=[" ".join(a[-2:]) for a, _ in BOUND_CASES])
def test_run_bounds_and_devices(tmp_path: Path, args: list[str], expected: str) -> None:
    out = tmp_path / "board.md"
    assert_usage_error(["run", *args, *BASE, "--store", str(tmp_path / "S"), "--out", str(out)],
                       expected, out)
    assert not (tmp_path / "S").exists()


def test_the_most_seeds_plan() -> None:
    from harness.plan import MAX_SEEDS, plan_request
    from harness.registry import load_registry
    from harness.selection import Request

    plan = plan_request(load_registry(), Request(
        encoders=["scratch"], adapters=["full"], merges=["none"], tasks=["parity"],
        metrics=["silhouette"], profile="smoke", seeds=MAX_SEEDS))
    assert sorted({v.seed for v in plan.variants if v.seed is not None}) == list(range(MAX_SEEDS))


def test_audit_draws_have_an_upper_bound() -> None:
    assert_usage_error(["tasks", "--audit", "--draws", "99999999999999"],
                       "--draws must be in 10..100000")
    assert_usage_error(["tasks", "--audit", "--draws", "100001"], "--draws must be in 10..")


NOT_A_NUMBER = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness import hookimpl
from harness.api import Metric


@dataclass(frozen=True)
class Stringly(Metric):
    """Returns its score as a string, or as a bool."""
    name: ClassVar[str] = "stringly"
    in_all: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True
    bool_: bool = False

    def score(self, X, y, rng):
        return True if self.bool_ else "0.75"


@dataclass(frozen=True)
class StringRows(Metric):
    """Returns its per-row values as strings."""
    name: ClassVar[str] = "string-rows"
    in_all: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True

    def score(self, X, y, rng):
        return 0.75

    def per_sample(self, X, y, rng):
        return np.array(["0.75"] * len(y))


@hookimpl
def register_metrics(register):
    register(Stringly)
    register(StringRows)
'''


@pytest.mark.parametrize(("metric", "expected"), [
    ("stringly", "metric 'stringly': score returned '0.75' (str), not a number"),
    ("stringly:bool_=true", "': score returned True (bool), not a number; return a float"),
    ("string-rows", "metric 'string-rows': per_sample returned values of dtype <U4, not "
                    "numbers"),
])
def test_a_metric_that_returns_no_number_fails_its_cell_and_its_check(
        tmp_path: Path, metric: str, expected: str) -> None:
    plugin = tmp_path / "not_a_number.py"
    plugin.write_text(NOT_A_NUMBER)
    store, out = tmp_path / "S", tmp_path / "o.md"
    code, stdout, err = run_cli(["run", "--plugin", str(plugin), "--encoder", "scratch",
                                 "--adapter", "none", "--task", "parity", "--metric", metric,
                                 *BASE, "--device", "cpu", "--store", str(store),
                                 "--out", str(out)])
    failures = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert code == 1 and "Traceback" not in err, err
    assert len(failures) == 1 and expected in failures[0], err
    assert _rows(store, "SELECT metric FROM scores") == []
    code, stdout, err = run_cli(["check", metric, "--plugin", str(plugin)])
    assert code == 1, stdout
    assert stdout.startswith(f"FAIL  metric {metric.partition(':')[0]} ") and expected in stdout


def test_degenerate_embeddings_raise_no_numpy_warning_and_no_traceback(tmp_path: Path) -> None:
    """Issue #31 item 10: numpy RuntimeWarning lines reached stderr (CKA's interval over
    all-NaN half-samples, silhouette's unused branch dividing by zero), and the projection
    plot of one-dimensional embeddings was a traceback."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli(["run", "--encoder", "scratch:dim=1,heads=1", "--adapter",
                                  "full", "--task", "parity", "--task", "primality", *BASE,
                                  "--device", "cpu", "--store", str(tmp_path / "S"),
                                  "--out", str(tmp_path / "o.md")])
    assert code == 0 and "Traceback" not in err, err
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
