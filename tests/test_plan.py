"""The plan: the shared evaluation pool, train/eval disjointness, seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.api import PROFILES
from harness.cli import main
from harness.registry import Registry
from harness.samples import eval_sample, shared_pool, train_sample


def test_shared_pool_labels_every_sequence_by_every_task(registry: Registry) -> None:
    tasks = [cls() for _, cls in sorted(registry.components["tasks"].items())]
    profile = PROFILES["smoke"]
    seqs, labels = shared_pool(tasks, profile, 0)
    assert len(seqs) == profile.eval_size * len(tasks)
    assert set(labels) == {t.name for t in tasks}
    for task in tasks:
        assert len(labels[task.name]) == len(seqs)
        # its own sample is in the pool and fully labelled; others' may be partly None
        own = set(eval_sample(task, profile, 0))
        assert all(y is not None for s, y in zip(seqs, labels[task.name], strict=True)
                   if s in own)
    assert shared_pool(tasks, profile, 0) == (seqs, labels)


def test_train_never_sees_the_eval_sample(registry: Registry) -> None:
    for name in ("parity", "progression", "sum-parity"):
        task = registry.components["tasks"][name]()
        train = train_sample(task, PROFILES["quick"], 0)
        assert not set(train) & set(eval_sample(task, PROFILES["quick"], 0))
        assert len(train) == PROFILES["quick"].train_size


def test_seeds_give_one_row_with_spread(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["run", "--encoder", "scratch", "--adapter", "full", "--merge", "none",
            "--task", "parity", "--seeds", "2", "--metric", "silhouette", "--profile", "smoke",
            "--store", str(tmp_path / "s"), "--out", str(tmp_path / "lb.md")]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "cells: 3 computed, 0 reused, 0 failed"
    lines = (tmp_path / "lb.md").read_text().splitlines()
    row = next(line for line in lines if line.startswith("| non-LLM from scratch"))
    assert "| 2 " in row and "[" in row  # two seeds, with an interval
    start = lines.index("### silhouette ↑")
    table = next(line for line in lines[start:] if line.startswith("| scratch + full@parity "))
    assert "±" in table  # the per-metric tables show mean ± std over seeds
