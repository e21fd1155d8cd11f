"""Checksummed artifacts (issue #19, points 2-4): a flipped byte in a checkpoint, an embeddings
file or a ``done.json`` is caught when it is read, the artifact is deleted (with every hard
link that shares it), recomputed when it is needed and reported on one stderr line; an
artifact from before checksums is read with the structural checks alone, as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from smoke_runs import SMOKE_TASKS, plan_for, run_here

from harness.keys import embedding_key, eval_key
from harness.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "S")
    yield s
    s.close()


def flip(path: Path, at: int) -> None:
    """Flip every bit of one byte, ``at`` bytes from the end (inside the data, not the
    header, for the files the harness writes)."""
    data = bytearray(path.read_bytes())
    data[len(data) - at] ^= 0xFF
    path.write_bytes(bytes(data))


def stages() -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [{"stage": s, "seed": 0, "tensors": {"w": torch.randn(8, 8, generator=g)}}
            for s in range(2)]


# ------------------------------------------------------------------------------ embeddings


def test_a_flipped_byte_in_embeddings_is_caught_with_its_hard_links(store):
    X = np.arange(40 * 8, dtype=np.float32).reshape(40, 8)
    store.save_embeddings("shared", X)
    store.link_embeddings("variant", "shared", X)
    store.link_embeddings("other", "shared", X)
    flip(store.embeddings_path("shared"), 5)  # one float of the data: a valid .npy still
    assert np.load(store.embeddings_path("variant")).shape == (40, 8)  # numpy cannot tell
    assert store.load_embeddings("variant", 40) is None
    for key in ("shared", "variant", "other"):  # every name of the damaged file is gone
        assert not store.embeddings_path(key).exists(), key
        assert not store.checksum_path(store.embeddings_path(key)).exists(), key
    assert sorted(store.damaged) == [f"artifacts/embeddings/{k}.npy"
                                     for k in ("other", "shared", "variant")]
    store.save_embeddings("shared", X)  # recomputed: verifies again
    assert np.array_equal(store.load_embeddings("shared", 40), X)


def test_a_damaged_checksum_file_makes_the_embeddings_missing(store):
    X = np.ones((3, 2), np.float32)
    store.save_embeddings("k", X)
    store.checksum_path(store.embeddings_path("k")).write_text("0" * 64)
    assert store.load_embeddings("k", 3) is None
    assert store.damaged == ["artifacts/embeddings/k.npy"]


def as_schema_3(root: Path) -> None:
    """Make the store at ``root`` what a harness before schema 4 left: no list of artifacts
    from before checksums, no row checksums, schema 3."""
    import sqlite3

    from harness.store import digests

    (root / "artifacts" / "checksums.json").unlink(missing_ok=True)
    db = sqlite3.connect(root / "results.sqlite")
    for table in digests.COLUMNS:
        db.execute(f"ALTER TABLE {table} DROP COLUMN digest")
    db.execute("UPDATE meta SET value='3' WHERE key='schema'")
    db.commit()
    db.close()


def before_checksums(root: Path) -> Store:
    """The store at ``root`` opened as by the first harness that keeps the list of artifacts
    from before checksums: the list is made from what it finds then."""
    as_schema_3(root)
    return Store(root)


def test_embeddings_from_before_checksums_still_load(store):
    path = store.embeddings_path("old")
    path.parent.mkdir(parents=True)
    np.save(path, np.ones((3, 2), np.float32))  # what a harness before checksums wrote
    store.close()
    store = before_checksums(store.root)
    assert np.array_equal(store.load_embeddings("old", 3), np.ones((3, 2), np.float32))
    assert store.damaged == [] and store.unverified == 1
    path.write_bytes(path.read_bytes()[:-4])  # structural checks still catch a truncation
    assert store.load_embeddings("old", 3) is None and not path.exists()
    store.close()


def test_a_lost_checksum_is_damage_not_an_unverified_artifact(store):
    """Issue #31 item 5: with the .sha256 deleted, embeddings scaled by 1e6 were read as
    'unverified' and scored (kNN accuracy 0.833 -> 1.0) without a word."""
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    store.save_embeddings("k", X)
    path = store.embeddings_path("k")
    store.checksum_path(path).unlink()
    np.save(path, X * 1e6)
    assert store.load_embeddings("k", 6) is None and not path.exists()
    assert store.damaged == ["artifacts/embeddings/k.npy"] and store.unverified == 0


def test_a_lost_manifest_checksum_is_damage(store):
    store.save_checkpoints("t", stages())
    done = store.checkpoints_dir("t") / "done.json"
    manifest = json.loads(done.read_text())
    del manifest["sha256"]
    done.write_text(json.dumps(manifest))
    assert store.load_checkpoints("t") is None and not done.exists()
    assert store.damaged == ["artifacts/checkpoints/t/done.json"]


@pytest.mark.parametrize("kind", ["outside", "fifo", "link"])
def test_only_the_stores_own_regular_files_are_read(tmp_path, store, kind):
    """Issue #31 item 7b: a done.json naming ``../../elsewhere.safetensors`` (its checksums
    recomputed) made a run read a file outside the store, and a FIFO there hung the run."""
    from harness.store.artifacts import _manifest_digest

    store.save_checkpoints("t", stages())
    folder = store.checkpoints_dir("t")
    done = folder / "done.json"
    manifest = json.loads(done.read_text())
    entry = manifest["checkpoints"][0]
    if kind == "outside":
        elsewhere = tmp_path / "elsewhere.safetensors"
        os.replace(folder / entry["file"], elsewhere)
        entry["file"] = os.path.relpath(elsewhere, folder)
    elif kind == "fifo":
        (folder / entry["file"]).unlink()
        os.mkfifo(folder / entry["file"])
    else:
        elsewhere = tmp_path / "elsewhere.safetensors"
        os.replace(folder / entry["file"], elsewhere)
        (folder / entry["file"]).symlink_to(elsewhere)
    manifest["sha256"] = _manifest_digest(manifest["checkpoints"])
    done.write_text(json.dumps(manifest))
    assert store.load_checkpoints("t") is None  # returns at once: nothing was opened
    assert store.damaged == ["artifacts/checkpoints/t/done.json"]


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_embeddings_that_are_not_a_regular_file_are_damage(tmp_path, store, kind):
    X = np.ones((3, 2), np.float32)
    store.save_embeddings("k", X)
    path = store.embeddings_path("k")
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        elsewhere = tmp_path / "elsewhere.npy"
        np.save(elsewhere, X)
        path.symlink_to(elsewhere)
    assert store.load_embeddings("k", 3) is None and not os.path.lexists(path)
    assert (tmp_path / "elsewhere.npy").exists() or kind == "fifo"  # the target is kept


# ----------------------------------------------------------------------------- checkpoints


def test_a_flipped_byte_in_a_checkpoint_is_caught(store):
    store.save_checkpoints("t", stages())
    folder = store.checkpoints_dir("t")
    flip(folder / "stage-1-seed-0.safetensors", 3)  # inside a float: safetensors loads it
    assert store.load_checkpoints("t") is None
    assert not (folder / "done.json").exists()
    assert store.damaged == ["artifacts/checkpoints/t/done.json"]


@pytest.mark.parametrize("edit", ["a stage number", "a file checksum", "no checkpoints",
                                  "no checkpoints, checksum forged"])
def test_a_damaged_done_json_is_caught(store, edit):
    from harness.store.artifacts import _manifest_digest

    store.save_checkpoints("t", stages())
    done = store.checkpoints_dir("t") / "done.json"
    manifest = json.loads(done.read_text())
    if edit == "a stage number":  # still valid JSON naming files that verify
        manifest["checkpoints"][1]["stage"] = 7
    elif edit == "a file checksum":
        digest = manifest["checkpoints"][0]["sha256"]
        manifest["checkpoints"][0]["sha256"] = ("1" if digest[0] != "1" else "2") + digest[1:]
    else:
        manifest["checkpoints"] = []
        if edit.endswith("forged"):
            manifest["sha256"] = _manifest_digest([])
    done.write_text(json.dumps(manifest))
    assert store.load_checkpoints("t") is None
    assert not done.exists()
    assert store.damaged == ["artifacts/checkpoints/t/done.json"]


def test_a_done_json_from_before_checksums_still_loads(store):
    store.save_checkpoints("t", stages())
    done = store.checkpoints_dir("t") / "done.json"
    manifest = json.loads(done.read_text())
    del manifest["sha256"]  # the layout before checksums
    done.write_text(json.dumps(manifest))
    store.close()
    store = before_checksums(store.root)
    assert store.load_checkpoints("t") is not None
    assert store.damaged == [] and store.unverified == 1
    manifest["checkpoints"] = []  # what an adapter returning nothing left: never again
    done.write_text(json.dumps(manifest))
    assert store.load_checkpoints("t") is None and not done.exists()
    store.close()


def test_no_checkpoints_are_never_stored(store):
    with pytest.raises(ValueError, match="no checkpoints"):
        store.save_checkpoints("t", [])
    assert not (store.checkpoints_dir("t") / "done.json").exists()


# ------------------------------------------------------------------------------ a whole run


def test_flipped_bytes_are_recomputed_and_the_leaderboard_is_unchanged(tmp_path, registry,
                                                                        capsys):
    """One byte flipped in a training run's stage file, in another run's ``done.json`` and
    in three fully scored cells' embeddings (each file has a second name, a hard link): the next
    run recomputes exactly those cells, retrains those runs, says so on one stderr line, and
    writes the same scores and the same leaderboard bytes as before."""
    folder = tmp_path / "a"
    folder.mkdir()
    assert run_here(SMOKE_TASKS, folder) == {"computed": 12, "reused": 0, "failed": 0}
    board = (folder / "O").read_bytes()
    plots = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".png"}
    plan = plan_for(registry, SMOKE_TASKS)
    store_dir = folder / "S"

    def npy(cell) -> Path:
        key = embedding_key(cell.variant.key, eval_key(cell.task, plan.profile, plan.seed))
        return store_dir / "artifacts" / "embeddings" / f"{key}.npy"

    trained = [v for v in plan.variants if v.train_key]
    first, second = trained[0], trained[1]
    ckpts = store_dir / "artifacts" / "checkpoints"
    flip(sorted((ckpts / first.train_key).glob("*.safetensors"))[-1], 9)
    done = ckpts / second.train_key / "done.json"
    done.write_text(done.read_text().replace('"stage": 0', '"stage": 5', 1))
    base = next(c for c in plan.cells if c.variant.adapter is None)
    damaged = [next(c for c in plan.cells if c.variant is v) for v in (first, second)] + [base]
    for cell in damaged:
        assert os.stat(npy(cell)).st_nlink == 2  # the variant's name and the weights' name
        flip(npy(cell), 13)
    capsys.readouterr()

    assert run_here(SMOKE_TASKS, folder) == {"computed": 3, "reused": 9, "failed": 0}
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "damaged artifact" in line]
    # three embeddings files, two names each (the variant's and its weights'), two done.json
    assert len(lines) == 1 and lines[0].startswith("warning: 8 damaged artifact(s)"), err
    assert (folder / "O").read_bytes() == board
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".png"} == plots
    store = Store(store_dir)
    try:
        for v in (first, second):
            assert store.load_checkpoints(v.train_key) is not None  # retrained, verified
    finally:
        store.close()
    assert run_here(SMOKE_TASKS, folder) == {"computed": 0, "reused": 12, "failed": 0}
    assert "damaged" not in capsys.readouterr().err


def test_a_store_from_before_checksums_recomputes_nothing(tmp_path, capsys):
    folder = tmp_path / "a"
    folder.mkdir()
    run_here(SMOKE_TASKS, folder)
    board = (folder / "O").read_bytes()
    artifacts = folder / "S" / "artifacts"
    for checksum in artifacts.rglob("*.sha256"):
        checksum.unlink()
    for done in artifacts.rglob("done.json"):
        manifest = json.loads(done.read_text())
        done.write_text(json.dumps({"checkpoints": manifest["checkpoints"]}))
    as_schema_3(folder / "S")  # a store no harness has surveyed
    capsys.readouterr()
    assert run_here(SMOKE_TASKS, folder) == {"computed": 0, "reused": 12, "failed": 0}
    err = capsys.readouterr().err
    assert "warning" not in err and "artifact read(s) had no checksum" in err  # said, once
    assert (folder / "O").read_bytes() == board
    survey = json.loads((artifacts / "checksums.json").read_text())["before checksums"]
    assert len(survey) == len(list(artifacts.rglob("*.npy"))) + len(
        list(artifacts.rglob("done.json")))


def test_a_lost_list_is_not_rebuilt_from_what_lost_its_checksum_since(store):
    """Review of #31: deleting artifacts/checksums.json with a .sha256 turned verification
    off again (the list was rebuilt from whatever had no checksum then)."""
    X = np.ones((3, 2), np.float32)
    store.save_embeddings("k", X)
    path = store.embeddings_path("k")
    store.checksum_path(path).unlink()
    np.save(path, X * 1e6)
    root = store.root
    store.close()
    (root / "artifacts" / "checksums.json").unlink()
    reopened = Store(root)  # schema 4: a new list is empty
    try:
        assert reopened.load_embeddings("k", 3) is None and reopened.unverified == 0
        assert reopened.damaged == ["artifacts/embeddings/k.npy"]
    finally:
        reopened.close()


def test_a_list_that_is_a_pipe_never_hangs(store):
    root = store.root
    store.save_embeddings("k", np.ones((3, 2), np.float32))
    store.checksum_path(store.embeddings_path("k")).unlink()
    store.close()
    (root / "artifacts" / "checksums.json").unlink()
    os.mkfifo(root / "artifacts" / "checksums.json")
    reopened = Store(root)  # returns: the pipe is never opened
    try:
        assert reopened.load_embeddings("k", 3) is None  # nothing is exempt
    finally:
        reopened.close()


def test_a_linked_folder_is_never_read_nor_emptied(tmp_path, store):
    """Review of #31: a symlinked embeddings folder was read outside the store."""
    X = np.ones((3, 2), np.float32)
    store.save_embeddings("k", X)
    folder = store.embeddings_path("k").parent
    outside = tmp_path / "outside"
    os.replace(folder, outside)
    folder.symlink_to(outside)
    assert store.load_embeddings("k", 3) is None
    assert (outside / "k.npy").exists()  # damage, but the file outside is not deleted
