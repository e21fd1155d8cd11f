"""A store written before the redesign (``tests/fixtures/store-v1``, schema 1) is upgraded in
place, renders the same leaderboard (apart from the source hash) and recomputes only what a
changed task touches; once upgraded, it renders from the store alone, without the plugins that
made it. (The expected page was re-rendered from the unchanged store when the page gained its
task design section, issue #16, its Reproducibility block gained the precision line, issue
#20, and it gained the learnability table, issue #32, whose fit-sample gains such a store has
not measured: every other figure on it is what the schema-1 harness rendered.)"""

from __future__ import annotations

import contextlib
import io
import shutil
import sqlite3
from importlib import metadata
from pathlib import Path

import pytest
from smoke_runs import parse_summary

from harness.cli import main
from harness.store import digests, schema

ROOT = Path(__file__).resolve().parent
FIXTURE = ROOT / "fixtures" / "store-v1"
PLUGIN = str(ROOT / "fixtures" / "tiny_models.py")
RUN = ["run", "--plugin", PLUGIN, "--encoder", "tiny-llm", "--encoder", "tiny-bert",
       "--encoder", "scratch", "--adapter", "lora:rank=4", "--adapter", "full", "--merge",
       "soup", "--merge", "slerp", "--merge", "linear", "--merge", "slerp:t=0.25", "--task",
       "parity", "--task", "progression", "--task", "sum-parity", "--train-task", "parity",
       "--train-task", "progression", "--profile", "smoke", "--device", "cpu"]
PNGS = ("projection.png", "slerp-sweep.png", "train-eval.png")
MATPLOTLIB = "3.11.2"  # the version that drew the fixture's figures


def _without_hash(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("- harness source hash")]


def _harness(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE / "store", tmp_path / "store")
    return tmp_path / "store"


def _same_page(board: Path) -> None:
    expected = (FIXTURE / "leaderboard" / "README.md").read_text()
    assert _without_hash(board.read_text()) == _without_hash(expected)
    for name in PNGS:
        data = (board.parent / name).read_bytes()
        assert data.startswith(b"\x89PNG")
        if metadata.version("matplotlib") == MATPLOTLIB:
            assert data == (FIXTURE / "leaderboard" / name).read_bytes(), name


def test_old_store_renders_the_same_and_recomputes_nothing(store: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS", raising=False)
    db = sqlite3.connect(store / "results.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("1",)
    db.close()
    board = tmp_path / "board" / "README.md"
    code, _, err = _harness("leaderboard", "--plugin", PLUGIN, "--store", str(store),
                            "--out", str(board))
    assert code == 0 and "warning" not in err, err
    _same_page(board)
    db = sqlite3.connect(store / "results.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (
        str(schema.VERSION),)
    assert db.execute("SELECT count(*) FROM variants WHERE roles IS NULL").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM scores WHERE higher_is_better IS NULL"
                      ).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM meta WHERE key='backfill'").fetchone() == (0,)
    db.close()

    again = tmp_path / "again" / "README.md"
    # metrics whose definition has not changed since (silhouette and k-means have: #16; the
    # probe and kNN accuracies too: cross-validated since #32)
    metrics = ["--metric", "davies-bouldin", "--metric", "calinski-harabasz"]
    code, out, err = _harness(*RUN, *metrics, "--store", str(store), "--out", str(again))
    assert code == 0, err
    # progression's sampler changed (version 2, #16): its 43 cells and the 20 progression-trained
    # variants' other 40 are recomputed; the 46 cells of the unchanged tasks are reused
    assert parse_summary(out) == {"computed": 83, "reused": 46, "failed": 0}
    page = again.read_text()
    assert "## Task design" in page and "| progression |" in page.split("## Task design")[1]


def test_upgraded_store_renders_without_its_plugins(store: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _harness("leaderboard", "--plugin", PLUGIN, "--store", str(store),
                            "--out", str(tmp_path / "first" / "README.md"))
    assert code == 0, err
    # the encoders' plugin file is gone and the task plugins are uninstalled: the claims (which
    # need each task's `compositional` flag) and the projection (its eval sequences) are unchanged
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "tasks")
    board = tmp_path / "alone" / "README.md"
    code, _, err = _harness("leaderboard", "--store", str(store), "--out", str(board))
    assert code == 0 and "warning" not in err, err
    _same_page(board)
    # the identities are for machines: a page does not depend on them parsing
    db = sqlite3.connect(store / "results.sqlite")
    db.execute("UPDATE variants SET info = 'not json', digest = NULL")
    digests.fill(db, "variants")  # written so (checksummed): not a damaged row
    db.commit()
    db.close()
    code, _, err = _harness("leaderboard", "--store", str(store), "--out", str(board))
    assert code == 0, err
    _same_page(board)


def test_backfill_without_the_plugins_warns_and_retries(store: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS", raising=False)
    code, _, err = _harness("leaderboard", "--store", str(store),
                            "--out", str(tmp_path / "partial" / "README.md"))
    assert code == 0
    assert err.count("warning:") == 1 and "not installed" in err and "encoder tiny-llm" in err
    db = sqlite3.connect(store / "results.sqlite")
    roles = dict(db.execute("SELECT adapter || ' ' || merge || ' ' || encoder, roles FROM variants"
                            ).fetchall())
    db.close()
    # what the installed components declare is filled in even where the encoder is missing
    assert '"parameter_efficient": true' in roles["lora:rank=4 soup tiny-llm"]
    assert '"partial": true' in roles["lora:rank=4 soup tiny-llm"]
    assert '"control": "linear"' in roles["lora:rank=4 slerp tiny-bert"]
    assert '"from_scratch": true' in roles["full none scratch"]
    assert "partial" not in roles["full none scratch"]
    code, _, err = _harness("leaderboard", "--plugin", PLUGIN, "--store", str(store),
                            "--out", str(tmp_path / "full" / "README.md"))
    assert code == 0 and "warning" not in err, err
    _same_page(tmp_path / "full" / "README.md")
