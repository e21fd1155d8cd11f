"""A metric's direction comes from the metric itself and is stored with its scores: a
third-party lower-is-better metric is shown with ↓, and gains, balance and the best marks come
out in its direction."""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
import textwrap
from pathlib import Path

from harness.cli import main

PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass
    from typing import ClassVar

    import numpy as np

    from harness import hookimpl
    from harness.api import Metric


    @dataclass(frozen=True)
    class SilhouetteLoss(Metric):
        """One minus the cosine silhouette: lower is better."""
        name: ClassVar[str] = "silhouette-loss"
        higher_is_better: ClassVar[bool] = False

        def per_sample(self, X, y, rng):
            from sklearn.metrics import silhouette_samples
            return 1.0 - silhouette_samples(X, y, metric="cosine")

        def score(self, X, y, rng):
            return float(np.mean(self.per_sample(X, y, rng)))


    @hookimpl
    def register_metrics(register):
        register(SilhouetteLoss)
''')
GRID = ["run", "--encoder", "scratch", "--adapter", "full", "--merge", "soup", "--merge",
        "linear", "--task", "parity", "--task", "sum-parity", "--profile", "smoke",
        "--device", "cpu"]


def _run(tmp: Path, name: str, metric: str, plugin: Path) -> str:
    out = tmp / name / "README.md"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main([*GRID, "--plugin", str(plugin), "--metric", metric,
                     "--store", str(tmp / name / "S"), "--out", str(out)])
    assert code == 0
    return out.read_text()


def _headline(text: str) -> list[list[str]]:
    section = text.split("## Headline", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows]


def test_a_lower_is_better_metric_alone(tmp_path: Path) -> None:
    plugin = tmp_path / "loss_metric.py"
    plugin.write_text(PLUGIN)
    loss = _run(tmp_path, "loss", "silhouette-loss", plugin)
    plain = _run(tmp_path, "plain", "silhouette", plugin)
    assert "on-task silhouette-loss ↓" in loss and "### silhouette-loss ↓" in loss
    assert "↑" not in _headline(loss)[0][3]
    db = sqlite3.connect(tmp_path / "loss" / "S" / "results.sqlite")
    assert db.execute("SELECT DISTINCT higher_is_better FROM scores").fetchall() == [(0,)]
    db.close()
    # loss = 1 - silhouette per row: every change has the same size, and in the loss's own
    # direction the same sign; so gain, off-task change, balance and ★ marks agree
    a, b = _headline(loss), _headline(plain)
    assert len(a) == len(b) > 6
    for row_loss, row_plain in zip(a[2:], b[2:], strict=True):
        assert row_loss[1] == row_plain[1]  # the variant
        for col in (5, 6, 7):  # gain, off-task Δ, balance
            if row_plain[col] in ("—", "n/a"):
                assert row_loss[col] == row_plain[col]
                continue
            value = float(row_plain[col].split()[0])
            assert abs(float(row_loss[col].split()[0]) - value) <= 0.0015, (row_loss, row_plain)
        assert row_loss[9] == row_plain[9]  # best
    trained = [r for r in a[2:] if r[5] not in ("—", "n/a")]
    assert any(float(r[5].split()[0]) > 0.05 for r in trained)  # training helped: positive
    matrix = loss.split("## Train task × eval task", 1)[1]
    assert "lower is better, so a positive change is base − variant" in matrix
    diag = re.findall(r"\*\*([+-]\d\.\d{3})\*\*", matrix)
    assert diag and float(diag[0]) > 0
