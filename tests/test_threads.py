"""CPU-side numerical work runs with one BLAS thread (harness.threads): a cell's metrics, a
merge's held-out scores and the analysis see one, the thread count is restored after the run,
and scipy's own BLAS, loaded lazily, is limited too."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from harness.cli import main

PLUGIN = textwrap.dedent('''
    import os
    from dataclasses import dataclass
    from typing import ClassVar

    from threadpoolctl import threadpool_info

    from harness import hookimpl
    from harness.api import Metric


    @dataclass(frozen=True)
    class BlasThreads(Metric):
        """The BLAS thread counts it runs under, written to $BLAS_SEEN (one line per call)."""
        name: ClassVar[str] = "blas-threads"
        higher_is_better: ClassVar[bool] = True
        in_all: ClassVar[bool] = False

        def score(self, X, y, rng):
            counts = sorted({p["num_threads"] for p in threadpool_info()
                             if p["user_api"] == "blas"})
            with open(os.environ["BLAS_SEEN"], "a") as f:
                f.write(" ".join(map(str, counts)) + "\\n")
            return 0.0


    @hookimpl
    def register_metrics(register):
        register(BlasThreads)
''')


def blas_threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_scoring_uses_one_blas_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin, seen = tmp_path / "blas_metric.py", tmp_path / "seen.txt"
    plugin.write_text(PLUGIN)
    monkeypatch.setenv("BLAS_SEEN", str(seen))
    args = ["--plugin", str(plugin), "run", "--encoder", "scratch", "--adapter", "full",
            "--merge", "task-arithmetic:metric=blas-threads", "--task", "parity",
            "--metric", "blas-threads", "--profile", "smoke", "--store", str(tmp_path / "s"),
            "--out", str(tmp_path / "lb.md")]
    import harness.execute

    analysed: list[set[int]] = []
    analyse = harness.execute.analyse

    def watched(*a, **k):  # type: ignore[no-untyped-def]
        analysed.append(blas_threads())
        return analyse(*a, **k)

    monkeypatch.setattr(harness.execute, "analyse", watched)
    with threadpool_limits(limits=2, user_api="blas"):  # two even on a one-core machine
        assert blas_threads() == {2}
        assert main(args) == 0
        assert blas_threads() == {2}  # restored
    assert analysed == [{1}]
    lines = seen.read_text().splitlines()
    # the cells (scratch, its fine-tune, the merge: 3) and the merge's λ candidates
    from harness.api import SCALES

    assert len(lines) == 3 + len(SCALES), lines
    assert set(lines) == {"1"}, lines


def test_scipys_lazily_loaded_blas_is_limited_too() -> None:
    # a fresh interpreter: numpy's BLAS is loaded, scipy's is not until scipy.linalg is imported
    code = textwrap.dedent("""
        from threadpoolctl import threadpool_info, threadpool_limits
        from harness.threads import one_blas_thread
        with threadpool_limits(limits=2, user_api="blas"):
            with one_blas_thread():
                import scipy.linalg
                seen = {p["filepath"]: p["num_threads"] for p in threadpool_info()
                        if p["user_api"] == "blas"}
        print(len(seen), sorted(set(seen.values())))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=1)
    assert int(out[0]) >= 2 and out[1].strip() == "[1]", out  # numpy's and scipy's BLAS
