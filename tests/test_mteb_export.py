"""``harness export --format mteb DIR``: one MTEB ``TaskResult`` file per (variant, task) in an
MTEB results-cache layout, read back by mteb itself (``TaskResult.from_disk``,
``ResultCache.load_results``); its scores and intervals are the store's; one line and nothing
written for each bad input."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.api import HarnessError
from harness.cli import main
from harness.report.stats import Bootstrap
from harness.report.stored import Scored
from harness.store import Store
from harness.store.records import VariantRecord

RUN = ["run", "--encoder", "scratch", "--adapter", "full", "--merge", "none", "--merge",
       "slerp", "--task", "parity", "--task", "primality", "--metric", "silhouette",
       "--metric", "probe-accuracy", "--profile", "smoke"]
TASKS = {"parity", "primality"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mteb")
    assert main([*RUN, "--store", str(folder / "S"), "--out", str(folder / "O.md")]) == 0
    return folder / "S"


@pytest.fixture(scope="module")
def exported(store: Path) -> Path:
    out = store.parent / "M"
    assert main(["export", "--format", "mteb", "--store", str(store), str(out)]) == 0
    return out


def _cells(store: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    capsys.readouterr()
    assert main(["export", "--store", str(store)]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_mteb_reads_every_file_and_its_scores_are_the_stores(
        store: Path, exported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mteb import ResultCache
    from mteb.models import ModelMeta
    from mteb.results import TaskResult

    cells = _cells(store, capsys)
    variants = {c["variant"] for c in cells}
    files = sorted(p for p in exported.glob("results/*/*/*.json") if p.name != "model_meta.json")
    assert len(files) == len(variants) * len(TASKS) == 10
    assert {p.parent.name for p in files} == variants  # the revision folder is the key
    value = {(c["variant"], c["task"], c["metric"]): float(c["value"]) for c in cells}
    for path in files:
        result = TaskResult.from_disk(path)
        key, task = path.parent.name, path.stem
        assert result.task_name == task and result.eval_splits == ["test"]
        assert result.mteb_version is None and result.evaluation_time is None
        (entry,) = result.scores["test"]
        assert entry["main_score_metric"] == "silhouette"
        assert result.get_score() == entry["main_score"] == value[(key, task, "silhouette")]
        assert entry["probe-accuracy"] == value[(key, task, "probe-accuracy")]
        lo, hi = entry["ci95"]["silhouette"]
        assert lo < entry["main_score"] < hi
        assert entry["n_rows"] == 40 and entry["languages"] == ["zxx-Zyyy"]
        raw = json.loads(path.read_text())
        assert raw["numgeo_harness"]["variant"] == key and "not MTEB tasks" in \
            raw["numgeo_harness"]["note"]
        meta_path = path.parent / "model_meta.json"
        meta = ModelMeta.model_validate_json_resolved(meta_path.read_text())  # it validates
        assert meta.revision == key and meta.name == f"{meta.name[:-8]}{key[:8]}"
        assert meta.name.startswith("numgeo-harness/")
        assert path.parent.parent.name == meta.name.replace("/", "__")
    loaded = ResultCache(exported).load_results(include_remote=False)
    assert len(loaded.model_results) == len(variants)
    assert all({t.task_name for t in m.task_results} == TASKS for m in loaded.model_results)
    assert {m.model_revision for m in loaded.model_results} == variants
    frame = loaded.to_dataframe()  # tasks x models: every variant its own column
    assert set(frame["task_name"]) == TASKS
    assert sum(str(c).startswith("numgeo-harness/") for c in frame.columns) == len(variants)


def test_an_interval_is_the_bootstrap_of_the_stored_rows(store: Path, exported: Path) -> None:
    """The silhouette interval recomputed here from the store's per-row values: the mean of
    each of the leaderboard's resamples of the eval rows, its 2.5% and 97.5% quantiles."""
    s = Store.open_existing(str(store))
    try:
        rows = [r for r in s.scores() if r.metric == "silhouette" and r.task == "parity"]
        samples = s.samples({r.cell for r in rows})
        for r in rows:
            values = np.asarray(samples[(r.cell, r.metric_key)], dtype=np.float64)
            idx = Bootstrap(0).indices("parity", len(values))
            want = np.quantile(values[idx].mean(axis=1), [0.025, 0.975])
            (path,) = exported.glob(f"results/*/{r.variant}/parity.json")
            got = json.loads(path.read_text())["scores"]["test"][0]["ci95"]["silhouette"]
            assert np.allclose(got, want, rtol=0, atol=1e-12), (got, want)
            assert abs(values.mean() - r.value) < 1e-6  # rows stored in float32
    finally:
        s.close()


def test_bad_inputs_are_one_line_and_write_nothing(
        store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def fails(argv: list[str], why: str) -> None:
        capsys.readouterr()
        assert main(["export", "--store", str(store), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("harness: error:") and why in err, err

    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me")
    fails(["--format", "mteb"], "writes a folder")
    fails(["--format", "mteb", str(full)], "is not empty")
    fails(["--format", "mteb", str(store / "mteb")], "inside the results store")
    fails(["--format", "mteb", "--profile", "paper", str(tmp_path / "a")], "no run of profile")
    fails(["--profile", "smoke", str(tmp_path / "a.csv")], "--profile is for --format mteb")
    fails(["--out", str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], "give the output once")
    fails(["--format", "mteb", str(full / "mine.txt" / "sub")], "not a writable folder")
    fails(["--format", "mteb", str(tmp_path / "new" / ("x" * 250))], "name is too long")
    fails(["--format", "mteb", str(tmp_path / ("x" * 300))], "give another path")
    fails(["--format", "mteb", str(tmp_path / "newp" / ("x" * 300) / "x")], "--out")
    assert (full / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    assert not (store / "mteb").exists()


def test_csv_to_a_positional_path(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "cells.csv"
    assert main(["export", "--store", str(store), str(out)]) == 0
    assert out.read_text().startswith("variant,encoder,")


def test_into_the_current_folder_when_it_is_empty(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``.`` keeps its inode (the shell's current folder is not replaced under it)."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    inode = here.stat().st_ino
    assert main(["export", "--format", "mteb", "--store", str(store), "."]) == 0
    assert here.stat().st_ino == inode and [p.name for p in here.iterdir()] == ["results"]
    assert len(list(here.glob("results/*/*/*.json"))) == 10 + 5  # results, model_meta
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]  # no temporary folder left


def _variant(key: str, **kw: object) -> VariantRecord:
    fields = dict(key=key, encoder="hf:model=org/a-b", family="non-llm", adapter="lora",
                  train_task="parity", seed=0, merge="ties:over=tasks", group="g",
                  profile="smoke")
    fields.update(kw)
    return VariantRecord(**fields)  # type: ignore[arg-type]


def test_names_never_collide_and_clashing_names_are_kept_apart() -> None:
    from harness.report import mteb
    from harness.store.records import ScoreRecord

    # the same lineage (another version of a component) and labels equal once slugged
    a, b = _variant("a" * 20), _variant("b" * 20, encoder="hf:model=org-a/b")
    assert mteb.model_name(a) != mteb.model_name(b)
    assert mteb.model_name(a) == "numgeo-harness/hf-model-org-a-b-lora-parity-seed0-ties-over-" \
        f"tasks-{'a' * 8}"
    for bad in ("model_meta", "a/b", ".hidden", ""):
        with pytest.raises(HarnessError, match="cannot name an MTEB results file"):
            mteb.check_task_name(bad)
    row = ScoreRecord("c", "m", a.key, "parity", "main_score", float("nan"), "", "smoke", 0, 1,
                      True)
    doc = mteb.task_result(a, "parity", {"main_score": Scored(row, None)}, "silhouette", None,
                           None)
    (entry,) = doc["scores"]["test"]
    assert entry["main_score_metric"] == "silhouette" and math.isnan(entry["main_score"])
    assert math.isnan(entry["metric:main_score"])


def test_a_failed_write_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """A disk that fills while the folder is written: one line; the folders made for it, the
    temporary folder and an existing empty ``--out``'s moved entries are gone again."""
    from harness.outpaths import write_folder

    def full(folder: Path) -> None:
        (folder / "a").mkdir(parents=True)
        (folder / "a" / "x.json").write_text("{}")
        raise OSError(28, "No space left on device")

    with pytest.raises(HarnessError, match="No space left on device; nothing was written"):
        write_folder(tmp_path / "n1" / "n2" / "out", full)
    assert list(tmp_path.iterdir()) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HarnessError, match="nothing was written"):
        write_folder(empty, full)
    assert list(tmp_path.iterdir()) == [empty] and list(empty.iterdir()) == []
