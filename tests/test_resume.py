"""Resuming: a run killed with SIGKILL at any point, re-run with the same command, ends where an
uninterrupted run ends; the same command gives the same bytes; a grown selection computes only
its new cells.

The killed runs are real subprocesses (``python -m harness.cli run ...``); the runs that finish
them run in this process through ``harness.cli.main`` (the same code, without paying the torch
import again).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from smoke_runs import SMOKE_TASKS, SUMMARY, parse_summary, plan_for, run_args, run_here

POLL_S = 0.02
WAIT_S = 240.0  # generous: the machine may be shared with other test runs


def subprocess_env() -> dict[str, str]:
    """The environment of a run in a subprocess: torch's thread count as in this process, so
    that its floats match the runs made here (the thread count changes the last bits)."""
    import torch

    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def query(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db.as_uri() + "?mode=rw", uri=True, timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def poll_count(db: Path, sql: str) -> int:
    """A count from a store that a live run is writing; 0 while it is still being created."""
    if not db.is_file():
        return 0
    try:
        con = sqlite3.connect(db.as_uri() + "?mode=rw", uri=True, timeout=0.5)
        try:
            return int(con.execute(sql).fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:  # no table yet, or busy switching to WAL
        return 0


def stored_cells(db: Path) -> set[str]:
    return {r[0] for r in query(db, "SELECT DISTINCT cell FROM scores")}


def check_artifacts(store: Path, trainings: int) -> None:
    """Every artifact a later run would read loads cleanly, pickle-free."""
    from safetensors.torch import load_file

    arrays = sorted((store / "artifacts").rglob("*.npy"))
    assert arrays
    for path in arrays:
        X = np.load(path, allow_pickle=False)
        assert X.ndim == 2 and X.dtype == np.float32 and X.shape[1] >= 1, path
        assert np.isfinite(X).all(), path
    done = sorted((store / "artifacts" / "checkpoints").glob("*/done.json"))
    assert len(done) == trainings
    for manifest_path in done:
        manifest = json.loads(manifest_path.read_text())
        assert manifest["checkpoints"]
        for entry in manifest["checkpoints"]:
            tensors = load_file(manifest_path.parent / entry["file"])
            assert sorted(tensors) == sorted(entry["tensors"]) and tensors


def scores_table(db: Path) -> list[tuple]:
    return query(db, "SELECT cell, metric_key, variant, task, metric, value, note FROM scores "
                     "ORDER BY cell, metric_key")


def same_scores(a: list[tuple], b: list[tuple]) -> bool:
    """Equal rows, NaN equal to NaN (undefined metrics store NaN)."""
    def norm(rows: list[tuple]) -> list[tuple]:
        return [tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in r)
                for r in rows]
    return norm(a) == norm(b)


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """The smoke command, run to completion as a subprocess (the user's way)."""
    folder = tmp_path_factory.mktemp("smoke")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", *run_args(SMOKE_TASKS)],
                          cwd=folder, env=subprocess_env(), capture_output=True, text=True,
                          timeout=WAIT_S)
    assert proc.returncode == 0, proc.stderr
    assert parse_summary(proc.stdout) == {"computed": 12, "reused": 0, "failed": 0}
    return folder


# ----------------------------------------------------------------------------- SIGKILL


@pytest.mark.parametrize("point", ["early", "first-cell", "forty-percent"])
def test_sigkill_then_resume(tmp_path, registry, smoke_run, point):
    """Kill -9 a run at some point; the same command then finishes it, reusing every cell the
    killed run stored, and ends with the bytes of an uninterrupted run."""
    plan = plan_for(registry, SMOKE_TASKS)
    total = len(plan.cells)
    trainings = len({v.train_key for v in plan.variants if v.train_key})
    assert (total, trainings) == (12, 3)
    db = tmp_path / "S" / "results.sqlite"

    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *run_args(SMOKE_TASKS)],
                            cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_S
        polled = 0
        started_at = None
        while True:
            assert proc.poll() is None, (
                f"the run finished before the kill ({point}); it is too short for this test: "
                f"{proc.communicate()}")
            assert time.monotonic() < deadline, f"kill point {point!r} not reached"
            if point == "early":
                # Very early: 1 s into the run proper (its row in `runs` exists: the plan is
                # built and the store open); before that the process is only importing torch.
                # On a machine fast enough to store half the cells by then, kill at half.
                if started_at is None and poll_count(db, "SELECT COUNT(*) FROM runs"):
                    started_at = time.monotonic()
                if started_at is not None and (
                        time.monotonic() - started_at >= 1.0
                        or 2 * poll_count(db, "SELECT COUNT(DISTINCT cell) FROM scores") >= total):
                    break
            else:
                polled = poll_count(db, "SELECT COUNT(DISTINCT cell) FROM scores")
                want = 1 if point == "first-cell" else math.ceil(0.4 * total)
                if polled >= want:
                    break
            time.sleep(POLL_S)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err)
    assert not SUMMARY.search(out), "the killed run printed its summary: the kill came too late"

    before = stored_cells(db)
    assert polled <= len(before) < total, "the kill did not land mid-run"
    assert before <= {c.key for c in plan.cells}
    leftovers = set(tmp_path.rglob("*.tmp"))  # a kill mid-write may leave a temp file behind
    print(f"killed at {point}: {len(before)}/{total} cells stored, "
          f"{len(list(db.parent.glob('artifacts/checkpoints/*/done.json')))}/{trainings} "
          f"trainings done, {len(leftovers)} temp files left")

    summary = run_here(SMOKE_TASKS, tmp_path)
    assert summary["failed"] == 0
    assert summary["reused"] >= polled
    assert summary["reused"] == len(before)  # every stored cell is whole (one transaction)
    assert summary["computed"] + summary["reused"] == total
    assert stored_cells(db) == {c.key for c in plan.cells}
    assert query(db, "SELECT COUNT(*) FROM failures") == [(0,)]

    # Temp files are never read as artifacts, and the re-run leaves none of its own.
    check_artifacts(tmp_path / "S", trainings)
    assert set(tmp_path.rglob("*.tmp")) <= leftovers

    assert run_here(SMOKE_TASKS, tmp_path) == {"computed": 0, "reused": total, "failed": 0}

    # Resumed == uninterrupted, to the byte and to the stored value.
    assert (tmp_path / "O").read_bytes() == (smoke_run / "O").read_bytes()
    assert same_scores(scores_table(db), scores_table(smoke_run / "S" / "results.sqlite"))


def store_is_sound(store: Path, metrics: int) -> set[str]:
    """After a kill: the database passes its integrity check, every stored cell has all its
    metric rows, and every artifact a later run would read loads. Returns the stored cells."""
    from safetensors.torch import load_file

    db = store / "results.sqlite"
    if not db.is_file():
        return set()
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    rows = query(db, "SELECT cell, COUNT(*) FROM scores GROUP BY cell")
    assert all(n == metrics for _, n in rows), rows
    for path in (store / "artifacts").rglob("*.npy"):
        X = np.load(path, allow_pickle=False)
        assert X.ndim == 2 and X.dtype == np.float32, path
    for done in (store / "artifacts" / "checkpoints").glob("*/done.json"):
        for entry in json.loads(done.read_text())["checkpoints"]:
            assert load_file(done.parent / entry["file"]), done
    return {cell for cell, _ in rows}


def test_ten_random_sigkills_lose_nothing(tmp_path, registry, smoke_run):
    """SIGKILL at ten random moments: after each, the store is sound and keeps everything
    stored before; the finishing run recomputes nothing that was stored and ends with the
    bytes of an uninterrupted run."""
    import random

    plan = plan_for(registry, SMOKE_TASKS)
    total, metrics = len(plan.cells), len(plan.metrics)
    rng = random.Random(8)
    db = tmp_path / "S" / "results.sqlite"
    kills, stored, span = 0, set(), 1.5
    trained: dict[Path, int] = {}  # done.json -> mtime: a finished training is never redone
    for _attempt in range(30):
        if kills == 10:
            break
        runs = poll_count(db, "SELECT COUNT(*) FROM runs")
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *run_args(SMOKE_TASKS)],
                                cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + WAIT_S
            while poll_count(db, "SELECT COUNT(*) FROM runs") <= runs:
                assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
                time.sleep(POLL_S)
            time.sleep(rng.uniform(0.0, span))  # the run proper has started: kill at random
            finished = proc.poll() is not None
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        now = store_is_sound(tmp_path / "S", metrics)
        assert stored <= now, "a stored cell was lost"
        for done, mtime in trained.items():
            assert done.stat().st_mtime_ns == mtime, f"{done} was rewritten"
        trained.update({d: d.stat().st_mtime_ns
                        for d in (tmp_path / "S" / "artifacts").rglob("done.json")})
        if finished or len(now) == total:  # the run won the race: start again from nothing
            span /= 2  # a faster machine: kill sooner
            shutil.rmtree(tmp_path / "S")
            stored, trained = set(), {}
            continue
        stored = now
        kills += 1
    assert kills == 10
    summary = run_here(SMOKE_TASKS, tmp_path)
    assert summary == {"computed": total - len(stored), "reused": len(stored), "failed": 0}
    for done, mtime in trained.items():
        assert done.stat().st_mtime_ns == mtime, f"{done} was rewritten"
    assert (tmp_path / "O").read_bytes() == (smoke_run / "O").read_bytes()
    assert same_scores(scores_table(db), scores_table(smoke_run / "S" / "results.sqlite"))


# ------------------------------------------------------------------------- determinism


def test_same_command_same_bytes(tmp_path, smoke_run):
    """Two stores filled by the same command (one in a subprocess, one here) agree byte for
    byte: leaderboard, stored values, embeddings and checkpoints."""
    assert run_here(SMOKE_TASKS, tmp_path) == {"computed": 12, "reused": 0, "failed": 0}
    a, b = smoke_run, tmp_path
    assert (a / "O").read_bytes() == (b / "O").read_bytes()
    assert same_scores(scores_table(a / "S" / "results.sqlite"),
                       scores_table(b / "S" / "results.sqlite"))

    def files(root: Path) -> dict[str, bytes]:
        base = root / "S" / "artifacts"
        return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
                if p.is_file()}

    fa, fb = files(a), files(b)
    assert fa.keys() == fb.keys()
    # every cell's embeddings, under its variant key and (hard-linked) under its weights key,
    # and the fit samples of the three fine-tunes and of their base (harness.learnability)
    assert len([k for k in fa if k.endswith(".npy")]) == 24 + 3 + 3
    assert len([k for k in fa if k.endswith("done.json")]) == 3
    assert [k for k in fa if fa[k] != fb[k]] == []


# ---------------------------------------------------------------------- grown selection


def test_adding_a_task_computes_only_its_cells(tmp_path, registry, smoke_run):
    """One more task on a finished run: one new training, and the new cells are the new
    variant on every task plus every old variant on the new task; the rest is reused."""
    shutil.copytree(smoke_run / "S", tmp_path / "S")
    grown_tasks = [*SMOKE_TASKS, "monotonic"]
    old, new = plan_for(registry, SMOKE_TASKS), plan_for(registry, grown_tasks)
    old_cells, new_cells = {c.key for c in old.cells}, {c.key for c in new.cells}
    assert old_cells < new_cells
    fresh = new_cells - old_cells
    # By arithmetic: V old variants (base + one per task) on T tasks -> (V + 1) x (T + 1).
    v, t = len(old.variants), len(SMOKE_TASKS)
    assert (v, len(fresh)) == (t + 1, (v + 1) * (t + 1) - v * t)
    assert fresh == {c.key for c in new.cells if c.task.name == "monotonic"
                     or (c.variant.train_task and c.variant.train_task.name == "monotonic")}

    db = tmp_path / "S" / "results.sqlite"
    checkpoints = tmp_path / "S" / "artifacts" / "checkpoints"
    done_before = {p: p.stat().st_mtime_ns for p in checkpoints.glob("*/done.json")}
    assert len(done_before) == t

    summary = run_here(grown_tasks, tmp_path)
    assert summary == {"computed": len(fresh), "reused": len(old_cells), "failed": 0}
    run_id = query(db, "SELECT MAX(id) FROM runs")[0][0]
    written = {r[0] for r in query(db, f"SELECT DISTINCT cell FROM scores WHERE run_id={run_id}")}
    assert written == fresh
    assert stored_cells(db) == new_cells

    done_after = {p: p.stat().st_mtime_ns for p in checkpoints.glob("*/done.json")}
    assert len(done_after) == t + 1  # exactly one new training
    assert {p: done_after[p] for p in done_before} == done_before  # old ones not retrained
    new_key = next(v.train_key for v in new.variants
                   if v.train_task is not None and v.train_task.name == "monotonic")
    assert set(done_after) - set(done_before) == {checkpoints / new_key / "done.json"}
