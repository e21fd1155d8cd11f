"""Faults of the store and of the machine (issue #19, point 7): a read-only store is read as it
is; a full disk, a database SQLite cannot open, deleted WAL/SHM files, an ASCII terminal and a
closed stdout each give one line (exit 2), never a traceback, and a damaged-database message
only when SQLite finds the file damaged."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_bad_input import BASE, SCRATCH, assert_usage_error, run_cli

ROOT = Path(__file__).resolve().parents[1]
CAPS = "-dac_override,-dac_read_search"


def _run(args: list[str], tmp_path: Path) -> None:
    code, _, err = run_cli(["run", *args, *BASE, "--store", str(tmp_path / "S"),
                            "--out", str(tmp_path / "board" / "README.md")])
    assert code == 0, err


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One smoke store (and its leaderboard) for the module; each test gets a copy."""
    folder = tmp_path_factory.mktemp("built")
    _run([*SCRATCH, "--task", "primality", "--adapter", "full", "--merge", "soup"], folder)
    return folder


@pytest.fixture
def store(tmp_path: Path, built: Path) -> Path:
    for name in ("S", "board"):
        shutil.copytree(built / name, tmp_path / name)
    return tmp_path / "S"


def _unprivileged(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``harness argv`` in a subprocess that cannot write through permission bits (as root:
    without CAP_DAC_OVERRIDE)."""
    cmd = [sys.executable, "-m", "harness.cli", *argv]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root writes through read-only permissions, and setpriv is missing")
        cmd = ["setpriv", f"--inh-caps={CAPS}", f"--bounding-set={CAPS}", *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                          **kwargs)  # type: ignore[call-overload]


def _read_only(folder: Path) -> dict[str, bytes]:
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
             if p.is_file()}
    for p in [*folder.rglob("*"), folder]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    return files


def _writable(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def test_a_read_only_store_is_read_as_it_is(tmp_path: Path, store: Path) -> None:
    code, want, _ = run_cli(["export", "--store", str(store), "--format", "json"])
    assert code == 0
    before = _read_only(store)
    try:
        board = tmp_path / "ro" / "README.md"
        proc = _unprivileged(["leaderboard", "--store", str(store), "--out", str(board)])
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        ours = (tmp_path / "board" / "README.md").read_text()
        assert board.read_text() == ours
        for png in ("projection.png", "train-eval.png"):
            assert (board.parent / png).read_bytes() == (tmp_path / "board" / png).read_bytes()
        proc = _unprivileged(["export", "--store", str(store), "--format", "json"])
        assert proc.returncode == 0 and proc.stdout == want, proc.stderr
        proc = _unprivileged(["run", *SCRATCH, *BASE, "--store", str(store),
                              "--out", str(tmp_path / "o.md")])
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "is not writable" in proc.stderr and "Traceback" not in proc.stderr
        after = {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*")
                 if p.is_file()}
        assert after == before  # nothing written, nothing deleted
    finally:
        _writable(store)


@pytest.mark.parametrize("shm", [True, False], ids=["with-shm", "without-shm"])
def test_a_read_only_store_left_in_wal_mode(tmp_path: Path, store: Path, shm: bool) -> None:
    """A store copied while a harness had it open holds results only in its -wal file: read
    through the -shm file where it is there, else one line saying what it needs."""
    copy = tmp_path / "copy"
    db = sqlite3.connect(store / "results.sqlite", isolation_level=None)
    try:
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("UPDATE runs SET profile='smoke-copied' WHERE id=(SELECT max(id) FROM runs)")
        shutil.copytree(store, copy)
    finally:
        db.close()
    assert (copy / "results.sqlite-wal").stat().st_size > 0
    if not shm:
        (copy / "results.sqlite-shm").unlink()
    _read_only(copy)
    try:
        proc = _unprivileged(["export", "--store", str(copy), "--format", "json"])
        if shm:
            assert proc.returncode == 0, proc.stderr
            assert '"profile": "smoke-copied"' in proc.stdout  # read from the -wal file
        else:
            assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
            assert "results.sqlite-wal holds results not yet folded" in proc.stderr
            assert "damaged" not in proc.stderr
    finally:
        _writable(copy)


def _limit_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The results database may not grow (as on a full disk): SQLite fails with SQLITE_FULL."""
    from harness.store import connect, database

    real = connect.open_writable

    def full(path: Path) -> sqlite3.Connection:
        db = real(path)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={max(int(pages), 1)}")
        return db

    monkeypatch.setattr(database, "open_writable", full)


def test_a_full_disk_under_the_database_stops_the_run_in_one_line(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["run", *SCRATCH, "--task", "primality", "--task", "divisible-by-3", "--adapter",
            "full", "--merge", "soup", *BASE, "--store", str(store),
            "--out", str(tmp_path / "o.md")]
    with monkeypatch.context() as patch:
        _limit_pages(patch)
        line = assert_usage_error(argv, "no space left on the disk for results.sqlite")
    assert "damaged" not in line and "resumes" in line
    code, out, err = run_cli(argv)  # space again: the same command resumes
    assert code == 0, err
    assert "10 reused" in out and "0 failed" in out


def test_a_full_disk_under_the_artifacts_stops_the_run_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.store import Store, artifacts

    def no_space(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    argv = ["run", *SCRATCH, "--adapter", "full", *BASE, "--store", str(tmp_path / "S"),
            "--out", str(tmp_path / "o.md")]
    with monkeypatch.context() as patch:
        patch.setattr(artifacts, "atomic_write_bytes", no_space)
        line = assert_usage_error(argv, "no space left on the disk (")
    assert str(tmp_path / "S" / "artifacts") in line
    db = Store.open_existing(tmp_path / "S")
    try:
        assert db.query("SELECT * FROM failures") == []  # the machine's fault, not a cell's
    finally:
        db.close()
    code, _, err = run_cli(argv)
    assert code == 0, err


def test_a_full_disk_under_the_leaderboard_is_one_line(tmp_path: Path, store: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.store import files

    def no_space(path: Path, write: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "atomic_write", no_space)
    out = tmp_path / "full" / "README.md"
    assert_usage_error(["leaderboard", "--store", str(store), "--out", str(out)],
                       "no space left on the disk", out)
    assert_usage_error(["export", "--store", str(store), "--out", str(out)],
                       "no space left on the disk", out)


def test_a_database_sqlite_cannot_open_is_not_called_damaged(tmp_path: Path, store: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from harness.store import database, faults

    def fails(path: Path) -> sqlite3.Connection:
        err = sqlite3.OperationalError("disk I/O error")
        err.sqlite_errorname = "SQLITE_IOERR_SHORT_READ"  # type: ignore[attr-defined]
        raise err

    monkeypatch.setattr(database, "open_writable", fails)
    line = assert_usage_error(["leaderboard", "--store", str(store),
                               "--out", str(tmp_path / "o.md")], "could not be read or written")
    assert "damaged" not in line.replace("not reported damaged", "")
    monkeypatch.setattr(faults, "_full", lambda root: True)  # and the disk is full
    assert_usage_error(["leaderboard", "--store", str(store), "--out", str(tmp_path / "o.md")],
                       "no space left on the disk for results.sqlite")


def test_wal_and_shm_deleted_while_another_connection_holds_the_log(tmp_path: Path,
                                                                    store: Path) -> None:
    """Another harness still writes to the deleted log: this one says so, not 'damaged'."""
    db = sqlite3.connect(store / "results.sqlite", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("UPDATE runs SET profile=profile")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('note', 'x')")
        for name in ("results.sqlite-wal", "results.sqlite-shm"):
            (store / name).unlink()
        line = assert_usage_error(["leaderboard", "--store", str(store),
                                   "--out", str(tmp_path / "o.md")], "results.sqlite-wal")
        assert "could not be read or written" in line
    finally:
        db.close()


DELETER = '''
import os
from dataclasses import dataclass
from typing import ClassVar

from harness import hookimpl
from harness.api import Metric


@dataclass(frozen=True)
class WalDeleter(Metric):
    """Deletes the store's -wal and -shm files the first time it scores (as a careless user
    might during a run), then scores 1."""
    name: ClassVar[str] = "wal-deleter"
    higher_is_better: ClassVar[bool] = True

    def score(self, X, y, rng):
        store = os.environ["DELETER_STORE"]
        for name in ("results.sqlite-wal", "results.sqlite-shm"):
            path = os.path.join(store, name)
            if os.path.exists(path):
                os.unlink(path)
        return 1.0


@hookimpl
def register_metrics(register):
    register(WalDeleter)
'''


def test_wal_and_shm_deleted_during_a_run_lose_nothing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tmp_path / "deleter.py"
    plugin.write_text(DELETER)
    store = tmp_path / "S"
    monkeypatch.setenv("DELETER_STORE", str(store))
    argv = ["run", "--plugin", str(plugin), *SCRATCH, "--task", "primality", "--adapter", "full",
            "--merge", "soup", "--metric", "wal-deleter", "--metric", "silhouette", *BASE,
            "--store", str(store), "--out", str(tmp_path / "o.md")]
    code, out, err = run_cli(argv)
    assert code == 0 and err.strip() == f"leaderboard: {tmp_path / 'o.md'}", err
    assert "10 computed" in out
    code, out, err = run_cli(argv)
    assert code == 0, err
    assert "0 computed, 10 reused" in out


def test_a_database_that_fails_quick_check_is_damaged(tmp_path: Path, store: Path) -> None:
    """An index page overwritten: the tables still open, SQLite's quick_check says it is
    damaged; the file is left as it is."""
    path = store / "results.sqlite"
    db = sqlite3.connect(path)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE type='index' "
                      "AND tbl_name='scores'").fetchone()[0]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page
    data[start + 8:start + page] = bytes(range(256)) * ((page - 8) // 256) + bytes((page - 8) % 256)
    path.write_bytes(bytes(data))
    line = assert_usage_error(["leaderboard", "--store", str(store),
                               "--out", str(tmp_path / "o.md")], "results.sqlite is damaged")
    assert "move it aside" in line
    assert path.read_bytes() == bytes(data)


def test_a_results_database_that_is_a_folder(tmp_path: Path) -> None:
    store = tmp_path / "S"
    (store / "results.sqlite").mkdir(parents=True)
    for argv in (["run", *SCRATCH, *BASE], ["leaderboard"], ["export"]):
        assert_usage_error([*argv, "--store", str(store), "--out", str(tmp_path / "o.md")],
                           "results.sqlite is a folder")


def test_plugins_on_an_ascii_terminal(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "plugins"], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    text = proc.stdout.decode("ascii")
    assert "\\u03bb" in text  # λ in a docstring, escaped


@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_export_to_a_stdout_it_cannot_write(tmp_path: Path, store: Path, stdout: str) -> None:
    redirect = ">&-" if stdout == "closed" else ">/dev/full"
    if stdout == "full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(f"{sys.executable} -m harness.cli export --store {store} {redirect}",
                          shell=True, env=env, capture_output=False, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("harness: error: cannot write the export to standard output")
    assert "pass --out FILE" in proc.stderr


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
@pytest.mark.parametrize("command", ["run", "leaderboard", "export"])
def test_an_out_that_is_not_a_regular_file_is_refused(tmp_path: Path, store: Path, kind: str,
                                                      command: str) -> None:
    """The writer renames over ``--out``: a device (/dev/full), a pipe or a link would be
    replaced, not written through."""
    out = tmp_path / "out.md"
    target = tmp_path / "elsewhere.md"
    if kind == "fifo":
        os.mkfifo(out)
    else:
        target.write_text("the user's file\n")
        out.symlink_to(target)
    args = {"run": ["run", *SCRATCH, *BASE], "leaderboard": ["leaderboard"],
            "export": ["export"]}[command]
    assert_usage_error([*args, "--store", str(store), "--out", str(out)],
                       "is not a regular file")
    assert (out.is_fifo() if kind == "fifo" else out.is_symlink())
    assert not (tmp_path / "projection.png").exists()


@pytest.mark.parametrize("command", ["leaderboard", "export"])
def test_an_out_under_a_file_is_refused(tmp_path: Path, store: Path, command: str) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert_usage_error([command, "--store", str(store), "--out", str(blocker / "x.md")],
                       "Not a directory")


def test_unwritable_out_folder_and_unreadable_store_are_one_line(tmp_path: Path,
                                                                store: Path) -> None:
    folder = tmp_path / "rodir"
    folder.mkdir(mode=0o555)
    closed = tmp_path / "closed"
    shutil.copytree(store, closed)
    closed.chmod(0)
    try:
        for argv, expected in [
                (["leaderboard", "--store", str(store), "--out", str(folder / "x.md")],
                 "is not a writable folder"),
                (["export", "--store", str(store), "--out", str(folder / "x.csv")],
                 "is not a writable folder"),
                (["leaderboard", "--store", str(closed), "--out", str(tmp_path / "o.md")],
                 "cannot read the store"),
                (["export", "--store", str(closed)], "cannot read the store")]:
            proc = _unprivileged(argv)
            assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
            assert expected in proc.stderr and "Traceback" not in proc.stderr
        assert list(folder.iterdir()) == []
    finally:
        closed.chmod(0o755)
        folder.chmod(0o755)


def test_a_results_database_that_is_a_pipe_and_a_store_with_no_run(tmp_path: Path) -> None:
    pipe = tmp_path / "P"
    pipe.mkdir()
    os.mkfifo(pipe / "results.sqlite")
    assert_usage_error(["leaderboard", "--store", str(pipe), "--out", str(tmp_path / "o.md")],
                       "results.sqlite is not a regular file")
    empty = tmp_path / "E"
    empty.mkdir()
    (empty / "results.sqlite").touch()  # what a full disk can leave behind
    assert_usage_error(["leaderboard", "--store", str(empty), "--out", str(tmp_path / "o.md")],
                       "holds no run yet", tmp_path / "o.md")


@pytest.mark.parametrize("command", [["plugins"], ["plugins", "--json"], ["tasks"]])
@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_listings_to_a_stdout_they_cannot_write(command: list[str], stdout: str) -> None:
    if stdout == "full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    redirect = ">&-" if stdout == "closed" else ">/dev/full"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(f"{sys.executable} -m harness.cli {' '.join(command)} {redirect}",
                          shell=True, env=env, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("harness: error: cannot write the ")
    assert "no space left on the disk" not in proc.stderr


# ------------------------------------- what a store keeps when part of it is lost (issue #31)

MERGED = [*SCRATCH, "--task", "primality", "--adapter", "full", "--merge", "slerp",
          "--merge", "ties:over=tasks"]


def _export(folder: Path) -> dict:
    """``harness export --format json`` of ``folder/S`` without what differs between two
    otherwise identical runs (run ids, commits, start and finish times)."""
    import json

    code, out, err = run_cli(["export", "--format", "json", "--store", str(folder / "S")])
    assert code == 0, err
    data = json.loads(out)
    del data["runs"]
    for row in [*data["cells"], *data["analyses"]]:
        del row["run_id"]
    return data


def _page(folder: Path) -> bytes:
    return (folder / "board" / "README.md").read_bytes()


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke store with single-task SLERP (stats: its fallback) and a cross-task TIES (its
    chosen density and scale, scored on held-out data), with its page and export."""
    folder = tmp_path_factory.mktemp("merged")
    _run(MERGED, folder)
    assert len(_export(folder)["merge_stats"]) == 3
    return folder


def test_a_lost_database_keeps_every_merge_statistic(tmp_path: Path, merged: Path) -> None:
    """Item 1: following the advice after a lost results.sqlite ("move it aside and re-run")
    gave the same scores but lost every merge's statistics for good."""
    for name in ("S", "board"):
        shutil.copytree(merged / name, tmp_path / name)
    (tmp_path / "S" / "results.sqlite").rename(tmp_path / "results.sqlite.aside")
    _run(MERGED, tmp_path)
    assert _export(tmp_path) == _export(merged)
    assert _page(tmp_path) == _page(merged)


def test_lost_merge_statistics_rows_are_restored_from_the_artifacts(tmp_path: Path,
                                                                     merged: Path) -> None:
    for name in ("S", "board"):
        shutil.copytree(merged / name, tmp_path / name)
    db = sqlite3.connect(tmp_path / "S" / "results.sqlite")
    db.execute("DELETE FROM merge_stats")
    db.commit()
    db.close()
    code, out, err = run_cli(["run", *MERGED, *BASE, "--store", str(tmp_path / "S"),
                              "--out", str(tmp_path / "board" / "README.md")])
    assert code == 0 and "0 computed" in out, err  # restored, nothing recomputed
    assert _export(tmp_path) == _export(merged) and _page(tmp_path) == _page(merged)


KILLER = '''
import os
import signal
from dataclasses import dataclass
from typing import ClassVar

from harness import hookimpl
from harness.api import Metric

CALLS = [0]


@dataclass(frozen=True)
class WalKiller(Metric):
    """Scores 1. At its KILL_AT-th call (when set), deletes the store's -wal and -shm files and
    kills its own process: a careless user, then a power cut."""
    name: ClassVar[str] = "wal-killer"
    higher_is_better: ClassVar[bool] = True

    def score(self, X, y, rng):
        CALLS[0] += 1
        if CALLS[0] == int(os.environ.get("KILL_AT", "0")):
            for name in ("results.sqlite-wal", "results.sqlite-shm"):
                path = os.path.join(os.environ["KILLER_STORE"], name)
                if os.path.exists(path):
                    os.unlink(path)
            os.kill(os.getpid(), signal.SIGKILL)
        return 1.0


@hookimpl
def register_metrics(register):
    register(WalKiller)
'''


def test_wal_and_shm_deleted_then_the_run_killed(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Items 1 and 3: the -wal and -shm files deleted during a store's first run, then the
    run killed: the export was a CSV of its header alone with exit 0, and a re-run lost the
    merge statistics. Now the export says there is no run, and the re-run's page and export
    are those of an untouched store."""
    plugin = tmp_path / "killer.py"
    plugin.write_text(KILLER)
    args = ["--plugin", str(plugin), *MERGED, "--metric", "wal-killer", "--metric",
            "silhouette"]
    reference, killed = tmp_path / "ref", tmp_path / "killed"
    _run(args, reference)
    monkeypatch.setenv("KILLER_STORE", str(killed / "S"))
    monkeypatch.setenv("KILL_AT", "12")  # the last cell: every merge has run
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", *args, *BASE, "--store",
                           str(killed / "S"), "--out", str(killed / "board" / "README.md")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == -9, proc.stderr
    for command in (["export"], ["export", "--format", "json"], ["leaderboard"]):
        assert_usage_error([*command, "--plugin", str(plugin), "--store", str(killed / "S"),
                            "--out", str(tmp_path / "o.md")], "holds no run yet",
                           tmp_path / "o.md")
    monkeypatch.delenv("KILL_AT")
    _run(args, killed)
    assert _export(killed) == _export(reference)
    assert _page(killed) == _page(reference)


@pytest.mark.parametrize("bit", [0, 52], ids=["lowest-mantissa-bit", "exponent-bit"])
def test_a_flipped_bit_in_a_stored_score_is_recomputed_and_named(tmp_path: Path, merged: Path,
                                                                  bit: int) -> None:
    """Item 4: silhouette 0.519 read as 1.038 (an exponent bit) passed quick_check and was
    reported; a flip of the lowest mantissa bit is caught as surely."""
    import struct

    for name in ("S", "board"):
        shutil.copytree(merged / name, tmp_path / name)
    db = sqlite3.connect(tmp_path / "S" / "results.sqlite")
    rowid, value, variant = db.execute("SELECT rowid, value, variant FROM scores WHERE "
                                       "metric='silhouette' AND value > 0.1 LIMIT 1").fetchone()
    (bits,) = struct.unpack("<Q", struct.pack("<d", value))
    (flipped,) = struct.unpack("<d", struct.pack("<Q", bits ^ (1 << bit)))
    db.execute("UPDATE scores SET value=? WHERE rowid=?", (flipped, rowid))
    db.commit()
    assert db.execute("PRAGMA quick_check").fetchone() == ("ok",)
    db.close()
    code, out, err = run_cli(["run", *MERGED, *BASE, "--store", str(tmp_path / "S"),
                              "--out", str(tmp_path / "board" / "README.md")])
    assert code == 0 and "1 computed" in out, err
    warning = next(line for line in err.splitlines() if "damaged row" in line)
    assert f"silhouette score of variant {variant}" in warning
    assert _export(tmp_path) == _export(merged) and _page(tmp_path) == _page(merged)


def test_every_row_a_figure_comes_from_is_checksummed(tmp_path: Path) -> None:
    """A flipped bit anywhere in a per-row blob, an analysis or a merge statistic is dropped
    and named when the store is opened; a schema-3 store is checksummed as it stands."""
    from harness.store import Store, schema

    store = Store(tmp_path / "S")
    where = ("smoke", 0, store.start_run(["x"], "smoke", [0], "abc", {}, "t0"))
    import numpy as np

    store.put_scores("c", "v", "parity", where, [("m", "m", 0.5, "", True)],
                     {"m": np.array([0.25, 0.75])})
    store.put_analyses("v", "pool", ["parity"], "smoke", 0, where[2],
                       [("cka", "base", 0.9, 0.8, 1.0)])
    store.put_merge_stats("v", {"chosen scale": 0.5})
    store.put_audit("a", ["parity"], "smoke", 0, where[2], {"cramers_v": 0.4696710143797851})
    store.close()
    tampered = {"samples": ("UPDATE samples SET data = x'0100803e0000403f'",  # 0.25 + 1 ulp
                            "per-row values"),
                "analyses": ("UPDATE analyses SET lo = 0.8000000000000002", "cka analysis"),
                "merge_stats": ("UPDATE merge_stats SET stats = '{\"chosen scale\": 0.75}'",
                                "merge statistics"),
                # the reviewer's flip: 4 -> 0 in a Cramer's V moved the headline's off-task set
                "audits": ("UPDATE audits SET data = replace(data, '0.469', '0.069')",
                           "task audit")}
    for table, (sql, named) in tampered.items():
        copy = tmp_path / table
        shutil.copytree(tmp_path / "S", copy)
        db = sqlite3.connect(copy / "results.sqlite")
        db.execute(sql)
        db.commit()
        db.close()
        reopened = Store(copy)
        try:
            assert len(reopened.dropped) == 1 and named in reopened.dropped[0], reopened.dropped
            assert reopened.query(f"SELECT count(*) AS n FROM {table}")[0]["n"] == 0
        finally:
            reopened.close()
    old = tmp_path / "old"  # a schema-3 store: no checksums yet
    shutil.copytree(tmp_path / "S", old)
    db = sqlite3.connect(old / "results.sqlite")
    for table in ("scores", "samples", "analyses", "merge_stats", "variants", "eval_samples",
                  "audits"):
        db.execute(f"ALTER TABLE {table} DROP COLUMN digest")
    db.execute("UPDATE meta SET value='3' WHERE key='schema'")
    db.commit()
    db.close()
    for _ in range(2):  # upgraded once, then nothing is dropped
        reopened = Store(old)
        try:
            assert reopened.dropped == [] and reopened.stored_metrics("c") == {"m"}
        finally:
            reopened.close()
    assert schema.VERSION == 4
