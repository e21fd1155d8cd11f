"""Merges inside runs: stats stored and shown, pooled seeds, the held-out scorer, resume, bad
merges recorded as failed cells."""

from __future__ import annotations

import contextlib
import io
import textwrap
from pathlib import Path

import pytest
from smoke_runs import parse_summary

from harness.api import PROFILES
from harness.cli import main
from harness.registry import Registry
from harness.samples import eval_sample, train_sample, valid_sample
from harness.store import Store

BASE = ["run", "--encoder", "scratch", "--adapter", "full", "--task", "parity",
        "--metric", "silhouette", "--profile", "smoke", "--device", "cpu"]


def run(args: list[str], folder: Path) -> tuple[int, dict[str, int], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([*BASE, *args, "--store", str(folder / "S"), "--out", str(folder / "O.md")])
    return rc, parse_summary(out.getvalue()), err.getvalue()


def test_merges_in_a_run(tmp_path: Path) -> None:
    merges = ["--merge", "soup", "--merge", "slerp:t=0.3,0.7", "--merge", "greedy-soup",
              "--merge", "slerp:over=seeds,between=checkpoints,space=task-vectors"]
    rc, summary, err = run(merges, tmp_path)
    assert rc == 0, err
    # base + none + soup + 2 slerp + greedy-soup + seeds-slerp, one eval task each
    assert summary == {"computed": 7, "reused": 0, "failed": 0}
    runs = sorted(p.name for p in (tmp_path / "S/artifacts/checkpoints").iterdir())
    assert len(runs) == 2  # seed 0, and seed 1 for the pooled SLERP
    store = Store.open_existing(tmp_path / "S")
    try:
        stats = store.merge_stats()
        merges_of = {r["key"]: r["merge"] for r in store.query("SELECT key, merge FROM variants")}
    finally:
        store.close()
    by_merge = {merges_of[k]: v for k, v in stats.items()}
    assert set(by_merge) == {"soup", "slerp:t=0.3", "slerp:t=0.7", "greedy-soup",
                             "slerp:over=seeds,between=checkpoints,space=task-vectors"}
    assert by_merge["soup"]["ingredients"] == PROFILES["smoke"].stages
    assert 1 <= by_merge["greedy-soup"]["kept"] <= by_merge["greedy-soup"]["ingredients"]
    for name, s in by_merge.items():
        if name.startswith("slerp"):
            assert 0.0 <= s["linear fallback"] <= 1.0 and s["tensors"] > 0
    text = (tmp_path / "O.md").read_text()
    assert "linear fallback" in text and "| merge" in text
    store = Store.open_existing(tmp_path / "S")
    try:  # silhouette decomposes over rows: every cell keeps its per-row values
        samples = store.samples()
        cells = {r["cell"] for r in store.query("SELECT cell FROM scores")}
    finally:
        store.close()
    assert {c for c, _ in samples} == cells
    assert all(len(v) == PROFILES["smoke"].eval_size for v in samples.values())
    assert "scratch + full@parity + slerp:t=0.3" in text

    # resume: nothing recomputed; one more merge computes only its cell and trains nothing
    assert run(merges, tmp_path)[1] == {"computed": 0, "reused": 7, "failed": 0}
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "S/artifacts").rglob("*.safetensors")}
    rc, summary, _ = run([*merges, "--merge", "linear:t=0.5"], tmp_path)
    assert rc == 0 and summary == {"computed": 1, "reused": 7, "failed": 0}
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "S/artifacts").rglob("*.safetensors")}
    assert before == after


def test_held_out_sample_is_disjoint(registry: Registry) -> None:
    for name in ("parity", "primality", "progression"):
        task = registry.components["tasks"][name]()
        profile = PROFILES["quick"]
        valid = valid_sample(task, profile, 0)
        assert len(valid) == profile.eval_size
        assert not set(valid) & set(eval_sample(task, profile, 0))
        assert not set(valid) & set(train_sample(task, profile, 0))
        assert valid == valid_sample(task, profile, 0)


def test_greedy_soup_with_an_unknown_metric_is_a_usage_error(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture
                                                             ) -> None:
    code = main([*BASE, "--merge", "greedy-soup:metric=silhouete", "--store",
                 str(tmp_path / "S"), "--out", str(tmp_path / "O.md")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "unknown metric 'silhouete'" in err[0] and "did you mean 'silhouette'" in err[0]


BROKEN = '''
from dataclasses import dataclass
from typing import ClassVar

import torch

from harness import hookimpl
from harness.api import Merge, Merged


@dataclass(frozen=True)
class Shrink(Merge):
    name: ClassVar[str] = "shrink"
    identity_on_one: ClassVar[bool] = False

    def merge(self, base, checkpoints, score=None):
        return {k: v.flatten()[:1] for k, v in base.items()}


@dataclass(frozen=True)
class Words(Merge):
    name: ClassVar[str] = "words"
    identity_on_one: ClassVar[bool] = False

    def merge(self, base, checkpoints, score=None):
        return Merged(dict(base), {"mood": "happy"})


@hookimpl
def register_merges(register):
    register(Shrink)
    register(Words)
'''


def test_a_bad_merge_fails_its_cells_only(tmp_path: Path) -> None:
    plugin = tmp_path / "bad_merges.py"
    plugin.write_text(textwrap.dedent(BROKEN))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["--plugin", str(plugin), *BASE, "--merge", "shrink", "--merge", "words",
                   "--merge", "soup", "--store", str(tmp_path / "S"),
                   "--out", str(tmp_path / "O.md")])
    assert rc == 1
    assert parse_summary(out.getvalue()) == {"computed": 3, "reused": 0, "failed": 2}
    assert "merge 'shrink' returned shape (1,)" in err.getvalue()
    assert "merge 'words' returned stats" in err.getvalue()
    assert "## Failed cells" in (tmp_path / "O.md").read_text()


def test_variants_with_equal_weights_share_one_embedding_pass(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    from harness.api import Backbone

    calls: list[int] = []
    embed = Backbone.embed

    def counted(self, seqs, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(seqs))
        return embed(self, seqs, *args, **kwargs)

    monkeypatch.setattr(Backbone, "embed", counted)
    # linear at t=0 is the base model and at t=1 the final checkpoint, bit for bit
    rc, summary, err = run(["--merge", "none", "--merge", "linear:t=0,1"], tmp_path)
    assert rc == 0, err
    assert summary == {"computed": 4, "reused": 0, "failed": 0}
    # the base model and the trained one, each on its eval sample and then its fit sample
    # (harness.learnability); the linear ends reuse them
    assert len(calls) == 4
    store = Store.open_existing(tmp_path / "S")
    try:
        rows = store.query("SELECT v.adapter AS adapter, v.merge AS merge, s.value AS value "
                           "FROM scores s JOIN variants v ON v.key = s.variant")
    finally:
        store.close()
    value = {(r["adapter"], r["merge"]): r["value"] for r in rows}
    assert value[("full", "linear:t=0.0")] == value[("none", "none")]
    assert value[("full", "linear:t=1.0")] == value[("full", "none")]
    assert value[("full", "none")] != value[("none", "none")]
