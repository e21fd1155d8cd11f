"""The results store: atomic writes, the schema guard, artifacts that fail to load (deleted and
recomputed, never used, never unpickled), and the runner on a damaged or shared store."""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from smoke_runs import SMOKE_TASKS, parse_summary, plan_for, run_args, run_here

from harness.api import PROFILES, HarnessError
from harness.keys import embedding_key, eval_key
from harness.store import Store, atomic_write, atomic_write_text


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------------------- atomic_write


def test_atomic_write_success_leaves_only_the_file(tmp_path):
    dest = tmp_path / "deep" / "er" / "file.bin"  # parents are created
    atomic_write(dest, lambda tmp: tmp.write_bytes(b"payload"))
    assert dest.read_bytes() == b"payload"
    assert listing(tmp_path / "deep") == ["er", "er/file.bin"]
    atomic_write_text(dest, "second")  # replaces an existing file
    assert dest.read_text() == "second"
    assert listing(tmp_path / "deep") == ["er", "er/file.bin"]


class WriterFailed(Exception):
    pass


@pytest.mark.parametrize("existed", [True, False])
def test_atomic_write_failing_writer(tmp_path, existed):
    dest = tmp_path / "file.txt"
    if existed:
        dest.write_text("before")
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        assert tmp.parent == dest.parent and tmp != dest
        tmp.write_text("half a fi")  # a partial write, then the writer dies
        raise WriterFailed("boom")

    with pytest.raises(WriterFailed, match="boom"):
        atomic_write(dest, write)
    assert seen and not seen[0].exists()
    assert listing(tmp_path) == (["file.txt"] if existed else [])
    if existed:
        assert dest.read_text() == "before"


# ------------------------------------------------------------------------------ the store


def test_store_reopens_and_keeps_records(tmp_path):
    store = Store(tmp_path / "S")
    where = ("smoke", 0, store.start_run(["x"], "smoke", [0], "abc", {}, "t0"))
    store.put_failure("c1", "v1", "parity", "ValueError: no", where)
    store.put_scores("c1", "v1", "parity", where, [("m1", "metric-1", 0.5, "", True),
                                                   ("m2", "metric-2", math.nan, "undefined",
                                                    False)])
    store.close()
    store = Store.open_existing(tmp_path / "S")
    try:
        assert store.stored_metrics("c1") == {"m1", "m2"}
        assert store.stored_metrics("c2") == set()
        assert store.query("SELECT COUNT(*) AS n FROM failures")[0]["n"] == 0  # scored: cleared
    finally:
        store.close()
    # no probe or WAL left behind; the list of artifacts from before checksums (none)
    assert listing(tmp_path / "S") == ["artifacts", "artifacts/checksums.json", "results.sqlite"]


def test_open_existing_needs_a_store(tmp_path):
    with pytest.raises(HarnessError, match="no results store"):
        Store.open_existing(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_incompatible_schema_is_refused(tmp_path):
    Store(tmp_path / "S").close()
    con = sqlite3.connect(tmp_path / "S" / "results.sqlite")
    with con:
        con.execute("UPDATE meta SET value='999' WHERE key='schema'")
    con.close()
    with pytest.raises(HarnessError, match="incompatible"):
        Store(tmp_path / "S")
    con = sqlite3.connect(tmp_path / "S" / "results.sqlite")
    assert con.execute("SELECT value FROM meta WHERE key='schema'").fetchall() == [("999",)]
    con.close()


def test_unwritable_root(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(HarnessError, match="not writable"):
        Store(blocker / "store")
    with pytest.raises(HarnessError, match="is a file, not a folder"):
        Store(blocker)
    assert blocker.read_text() == "not a folder"


# ------------------------------------------------------------------------------ embeddings


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "S")
    yield s
    s.close()


def test_embeddings_roundtrip(store):
    X = np.random.default_rng(0).normal(size=(7, 5))  # float64 in: stored as float32
    store.save_embeddings("k", X)
    got = store.load_embeddings("k", 7)
    assert got is not None and got.dtype == np.float32 and got.shape == (7, 5)
    assert np.array_equal(got, X.astype(np.float32))
    assert store.load_embeddings("missing", 7) is None
    assert listing(store.embeddings_path("k").parent) == ["k.npy", "k.sha256"]


def test_per_row_samples_roundtrip_with_their_scores(store):
    per = np.array([1.0, np.nan, 0.0, 1.0])
    store.put_scores("c", "v", "parity", ("smoke", 0, 1), [("mk", "probe", 2 / 3, "", True)],
                     {"mk": per})
    got = store.samples()
    assert set(got) == {("c", "mk")}
    assert np.array_equal(got[("c", "mk")], per, equal_nan=True)
    assert store.samples({"other"}) == {}
    store.db.execute("UPDATE samples SET n = 5")  # a blob shorter than its count: never used
    assert store.samples() == {}


def test_truncated_embeddings_are_deleted(store):
    X = np.arange(40 * 8, dtype=np.float32).reshape(40, 8)
    store.save_embeddings("k", X)
    path = store.embeddings_path("k")
    full = path.read_bytes()
    path.write_bytes(full[:len(full) // 2])
    assert store.load_embeddings("k", 40) is None
    assert not path.exists()
    # Every cut, inside the header as well as the data: never loaded, never raised, deleted.
    for cut in range(0, len(full), 7):
        path.write_bytes(full[:cut])
        assert store.load_embeddings("k", 40) is None, cut
        assert not path.exists(), cut


@pytest.mark.parametrize("bad", [np.zeros((6, 8), np.float32),  # wrong number of rows
                                 np.zeros(40, np.float32),  # 1-D
                                 np.zeros((40, 8, 1), np.float32),  # 3-D
                                 np.zeros((40, 8), np.float64)])  # wrong dtype
def test_wrong_shape_embeddings_are_deleted(store, bad):
    path = store.embeddings_path("k")
    path.parent.mkdir(parents=True)
    np.save(path, bad)
    assert store.load_embeddings("k", 40) is None
    assert not path.exists()


UNPICKLED: list[str] = []


def _record_unpickling(marker: str) -> str:
    UNPICKLED.append(marker)
    return marker


class Booby:
    """Unpickling it records itself: a stand-in for a payload that runs code."""

    def __reduce__(self):
        return (_record_unpickling, ("unpickled!",))


def test_pickled_embeddings_are_never_unpickled(store):
    path = store.embeddings_path("k")
    path.parent.mkdir(parents=True)
    payload = np.empty((40, 8), dtype=object)
    payload[:] = Booby()
    np.save(path, payload, allow_pickle=True)
    UNPICKLED.clear()
    assert store.load_embeddings("k", 40) is None
    assert UNPICKLED == []
    assert not path.exists()
    # A raw pickle (no .npy header) at that path: the same.
    path.write_bytes(pickle.dumps(Booby()))
    assert store.load_embeddings("k", 40) is None
    assert UNPICKLED == [] and not path.exists()


def test_zip_at_embeddings_path_is_deleted(store):
    path = store.embeddings_path("k")
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("junk.npy", b"not an array")
    assert store.load_embeddings("k", 40) is None
    assert not path.exists()


# ----------------------------------------------------------------------------- checkpoints


def two_stages() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 6, generator=g, requires_grad=True)
    return [{"stage": 0, "seed": 3, "tensors": {"layer.weight": w.t(),  # a non-contiguous view
                                                "layer.bias": torch.randn(4, generator=g)}},
            {"stage": 1, "seed": 3, "tensors": {"layer.weight": torch.randn(6, 4, generator=g),
                                                "steps": torch.arange(5),
                                                "half": torch.randn(3, generator=g).half()}}]


def test_checkpoints_roundtrip(store):
    saved = two_stages()
    store.save_checkpoints("t", saved)
    got = store.load_checkpoints("t")
    assert got is not None and len(got) == 2
    for want, have in zip(saved, got, strict=True):
        assert (have["stage"], have["seed"]) == (want["stage"], want["seed"])
        assert sorted(have["tensors"]) == sorted(want["tensors"])
        for name, tensor in want["tensors"].items():
            assert have["tensors"][name].dtype == tensor.dtype
            assert torch.equal(have["tensors"][name], tensor.detach())
    folder = store.checkpoints_dir("t")
    assert listing(folder) == ["done.json", "stage-0-seed-3.safetensors",
                               "stage-1-seed-3.safetensors"]
    assert store.load_checkpoints("untrained") is None


def test_truncated_checkpoint_is_refused(store):
    store.save_checkpoints("t", two_stages())
    folder = store.checkpoints_dir("t")
    victim = folder / "stage-1-seed-3.safetensors"
    full = victim.read_bytes()
    manifest = (folder / "done.json").read_text()
    for cut in [len(full) // 2, *range(0, len(full), 13), len(full) - 1]:
        victim.write_bytes(full[:cut])
        (folder / "done.json").write_text(manifest)
        assert store.load_checkpoints("t") is None, cut
        assert not (folder / "done.json").exists(), cut
        assert store.load_checkpoints("t") is None  # and stays refused
    victim.write_bytes(full)
    (folder / "done.json").write_text(manifest)
    assert store.load_checkpoints("t") is not None


def test_checkpoints_without_done_json_are_absent(store):
    store.save_checkpoints("t", two_stages())
    folder = store.checkpoints_dir("t")
    (folder / "done.json").unlink()
    assert store.load_checkpoints("t") is None
    assert len(list(folder.glob("*.safetensors"))) == 2  # left to be overwritten by retraining


@pytest.mark.parametrize("damage", ["bad json", "missing file", "other tensor names"])
def test_damaged_manifest_is_refused(store, damage):
    store.save_checkpoints("t", two_stages())
    folder = store.checkpoints_dir("t")
    done = folder / "done.json"
    if damage == "bad json":
        done.write_text('{"checkpoints": [')
    elif damage == "missing file":
        (folder / "stage-0-seed-3.safetensors").unlink()
    else:
        manifest = json.loads(done.read_text())
        manifest["checkpoints"][0]["tensors"].append("extra")
        done.write_text(json.dumps(manifest))
    assert store.load_checkpoints("t") is None
    assert not done.exists()


def test_checkpoints_with_tied_tensors_roundtrip(store):
    tied = torch.randn(5, 3)
    store.save_checkpoints("t", [{"stage": 0, "seed": 0,
                                  "tensors": {"embed.weight": tied, "head.weight": tied}}])
    got = store.load_checkpoints("t")
    assert got is not None
    assert torch.equal(got[0]["tensors"]["embed.weight"], tied)
    assert torch.equal(got[0]["tensors"]["head.weight"], tied)


# ---------------------------------------------------------------------------- runner level


def sql(folder: Path, statement: str, args: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(folder / "S" / "results.sqlite", timeout=30)
    try:
        with con:
            return con.execute(statement, args).fetchall()
    finally:
        con.close()


def scores_of(folder: Path, cell: str | None = None) -> list[tuple]:
    where, args = ("WHERE cell=?", (cell,)) if cell else ("", ())
    rows = sql(folder, f"SELECT cell, metric_key, value, note FROM scores {where} "
                       "ORDER BY cell, metric_key", args)
    return [tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in r)
            for r in rows]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finished")
    assert run_here(SMOKE_TASKS, folder) == {"computed": 12, "reused": 0, "failed": 0}
    return folder


@pytest.fixture
def copy_of_finished(tmp_path, finished) -> Path:
    shutil.copytree(finished / "S", tmp_path / "S")
    return tmp_path


def test_corrupt_embeddings_and_lost_scores_recompute_one_cell(copy_of_finished, registry):
    folder = copy_of_finished
    plan = plan_for(registry, SMOKE_TASKS)
    # A trained variant's cell, so that recomputing it reloads the stored checkpoints.
    cell = next(c for c in plan.cells if c.variant.train_task is not None
                and c.variant.train_task.name != c.task.name)
    key = embedding_key(cell.variant.key, eval_key(cell.task, plan.profile, plan.seed))
    npy = folder / "S" / "artifacts" / "embeddings" / f"{key}.npy"
    original = np.load(npy, allow_pickle=False)
    old_scores = scores_of(folder, cell.key)
    assert len(old_scores) == len(plan.metrics)

    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])
    sql(folder, "DELETE FROM scores WHERE cell=?", (cell.key,))

    assert run_here(SMOKE_TASKS, folder) == {"computed": 1, "reused": 11, "failed": 0}
    rewritten = np.load(npy, allow_pickle=False)
    assert np.array_equal(rewritten, original)  # recomputed from the stored checkpoints
    assert scores_of(folder, cell.key) == old_scores
    assert list(folder.rglob("*.tmp")) == []
    assert run_here(SMOKE_TASKS, folder) == {"computed": 0, "reused": 12, "failed": 0}


def test_damaged_rows_are_dropped_and_recomputed(copy_of_finished, registry):
    folder = copy_of_finished
    before = scores_of(folder)
    analyses = sql(folder, "SELECT * FROM analyses ORDER BY variant, kind, name")
    cell_a, cell_b = sorted({r[0] for r in before})[:2]
    sql(folder, "UPDATE scores SET value='garbage' WHERE rowid=(SELECT MIN(rowid) FROM scores "
                "WHERE cell=?)", (cell_a,))
    sampled = sql(folder, "SELECT metric_key FROM samples WHERE cell=?", (cell_b,))
    assert sampled, "a smoke cell has per-row samples"
    sql(folder, "UPDATE samples SET data=x'00' WHERE cell=? AND metric_key=?",
        (cell_b, sampled[0][0]))
    variant = analyses[0][0]
    sql(folder, "UPDATE analyses SET value='x' WHERE rowid=(SELECT MIN(rowid) FROM analyses "
                "WHERE variant=?)", (variant,))

    store = Store(folder / "S")
    try:  # never read: gone before anyone looks; each named once (a score, a blob, a value)
        assert len(store.dropped) == 3, store.dropped
        assert store.query("SELECT count(*) AS n FROM analyses WHERE variant=?",
                           (variant,))[0]["n"] == 0  # the variant's analyses go together
        assert store.stored_metrics(cell_a) < {r[1] for r in before if r[0] == cell_a}
    finally:
        store.close()
    assert run_here(SMOKE_TASKS, folder) == {"computed": 2, "reused": 10, "failed": 0}
    assert scores_of(folder) == before
    repaired = sql(folder, "SELECT variant, pool, kind, name, value, lo, hi FROM analyses "
                           "ORDER BY variant, kind, name")
    assert repaired == [(r[0], r[1], r[6], r[7], r[8], r[9], r[10]) for r in analyses]


def test_corrupt_checkpoints_are_retrained(copy_of_finished, registry):
    folder = copy_of_finished
    plan = plan_for(registry, SMOKE_TASKS)
    store_dir = folder / "S"
    before = scores_of(folder)
    stages = sorted((store_dir / "artifacts" / "checkpoints").rglob("*.safetensors"))
    assert len(stages) == 3 * PROFILES["smoke"].stages
    for path in stages:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])

    # Scores lost, embeddings intact: every cell is rescored from its stored embeddings.
    sql(folder, "DELETE FROM scores")
    assert run_here(SMOKE_TASKS, folder) == {"computed": 12, "reused": 0, "failed": 0}
    assert scores_of(folder) == before

    # Scores and the trained variants' embeddings lost: the checkpoints must be read, are
    # refused, and every training runs again.
    sql(folder, "DELETE FROM scores")
    for c in plan.cells:
        if c.variant.train_task is not None:
            key = embedding_key(c.variant.key, eval_key(c.task, plan.profile, plan.seed))
            (store_dir / "artifacts" / "embeddings" / f"{key}.npy").unlink()
    assert run_here(SMOKE_TASKS, folder) == {"computed": 12, "reused": 0, "failed": 0}
    assert scores_of(folder) == before  # retraining is deterministic
    assert sql(folder, "SELECT COUNT(*) FROM failures") == [(0,)]
    store = Store(store_dir)
    try:
        for v in {v.train_key for v in plan.variants if v.train_key}:
            assert store.load_checkpoints(v) is not None, v  # rewritten whole
    finally:
        store.close()
    assert list(folder.rglob("*.tmp")) == []


def test_two_runs_on_one_store_at_once(tmp_path, registry):
    """Two overlapping selections started together on the same store (and leaderboard file)."""
    first, second = ["parity", "progression"], ["progression", "sum-parity"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two runs side by side: one thread each
    procs = [subprocess.Popen([sys.executable, "-m", "harness.cli", *run_args(tasks)],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for tasks in (first, second)]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=300))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        s = parse_summary(out)
        assert s["failed"] == 0 and s["computed"] + s["reused"] == 6, s

    runs = sql(tmp_path, "SELECT started, finished FROM runs ORDER BY id")
    assert len(runs) == 2 and all(finished for _, finished in runs)
    (s1, f1), (s2, f2) = runs
    assert s1 <= f2 and s2 <= f1, f"the two runs did not overlap: {runs}"

    assert sql(tmp_path, "PRAGMA integrity_check") == [("ok",)]
    assert sql(tmp_path, "SELECT COUNT(*) FROM failures") == [(0,)]
    assert (tmp_path / "O").is_file()

    here = tmp_path.resolve()
    assert run_here(first, here) == {"computed": 0, "reused": 6, "failed": 0}
    assert run_here(second, here) == {"computed": 0, "reused": 6, "failed": 0}
    # The union adds only the cross cells (a variant trained in one run on the other run's
    # task), loading the checkpoints that the concurrent runs wrote.
    union = [*first, "sum-parity"]
    cross = ({c.key for c in plan_for(registry, union).cells}
             - {c.key for c in plan_for(registry, first).cells}
             - {c.key for c in plan_for(registry, second).cells})
    assert len(cross) == 2
    assert run_here(union, here) == {"computed": 2, "reused": 10, "failed": 0}
    assert sql(tmp_path, "PRAGMA integrity_check") == [("ok",)]
    assert list(tmp_path.rglob("*.tmp")) == []


def test_stale_temporary_files_are_swept(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    folder = tmp_path / "s" / "artifacts" / "embeddings"
    folder.mkdir(parents=True)
    old, fresh = folder / ".x.npy.abc.tmp", folder / ".y.npy.def.tmp"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert store.sweep_temporary() == 1
    assert not old.exists() and fresh.exists()  # a concurrent run may still be writing it


@pytest.mark.parametrize("links", [True, False])
def test_linked_embeddings_load_under_both_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                links: bool) -> None:
    store = Store(tmp_path / "S")
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.save_embeddings("shared", X)
    if not links:  # a file system without hard links gets a copy
        def no_link(*args: object) -> None:
            raise OSError("hard links not supported")
        monkeypatch.setattr(os, "link", no_link)
    store.link_embeddings("variant", "shared", X)
    for key in ("shared", "variant"):
        loaded = store.load_embeddings(key, 3)
        assert loaded is not None and np.array_equal(loaded, X)
    same = os.path.samefile(store.embeddings_path("shared"), store.embeddings_path("variant"))
    assert same == links
    store.link_embeddings("variant", "shared", X)  # again: already a link to the same file
    assert np.array_equal(store.load_embeddings("variant", 3), X)
    assert not [p for p in (tmp_path / "S").rglob("*") if p.name.endswith(".tmp")]
    store.close()
