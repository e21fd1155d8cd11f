"""``--executor ray`` on a local Ray instance: the same cells as the local executor, bit for
bit; a job that dies on its worker is recorded against its cells and retried by the next run;
usage errors before any work."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from smoke_runs import parse_summary

from harness.cli import main

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")

GRID = ["--encoder", "scratch", "--adapter", "full", "--task", "parity", "--task", "primality",
        "--profile", "smoke"]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    yield  # the first --executor ray run of this process starts it
    ray.shutdown()


def run(argv: list[str]) -> tuple[int, dict[str, int], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, parse_summary(out.getvalue()), err.getvalue()


def rows(store: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(store / "results.sqlite")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_ray_gives_the_same_cells_bit_for_bit(tmp_path: Path) -> None:
    results = {}
    for executor in ("local", "ray"):
        store, out = tmp_path / executor / "S", tmp_path / executor / "board.md"
        code, summary, err = run(["run", *GRID, "--executor", executor, "--store", str(store),
                                  "--out", str(out)])
        assert code == 0 and summary == {"computed": 22, "reused": 0, "failed": 0}, err
        results[executor] = (
            out.read_bytes(),
            rows(store, "SELECT cell, metric_key, variant, task, value, note FROM scores "
                        "ORDER BY cell, metric_key"),
            rows(store, "SELECT cell, metric_key, data FROM samples ORDER BY cell, metric_key"),
            rows(store, "SELECT variant, kind, name, value, lo, hi FROM analyses "
                        "ORDER BY variant, kind, name"),
            rows(store, "SELECT * FROM merge_stats ORDER BY variant"),
            {p.name: p.read_bytes() for p in (store / "artifacts").rglob("*.*")})
    local, on_ray = results["local"], results["ray"]
    for a, b in zip(local, on_ray, strict=True):
        assert a == b
    assert len(local[1]) == 22 * 7 and local[4]  # scores of every cell; SLERP's merge stats
    # a re-run on Ray reuses everything the local run stored
    code, summary, _ = run(["run", *GRID, "--executor", "ray", "--store",
                            str(tmp_path / "local" / "S"), "--out", str(tmp_path / "o.md")])
    assert code == 0 and summary == {"computed": 0, "reused": 22, "failed": 0}
    # one more metric: the workers score only it, every stored row stays as it was
    store = tmp_path / "local" / "S"
    before = rows(store, "SELECT * FROM scores ORDER BY cell, metric_key")
    code, summary, _ = run(["run", *GRID, "--metric", "knn-accuracy:k=3", "--executor", "ray",
                            "--store", str(store), "--out", str(tmp_path / "o.md")])
    assert code == 0 and summary == {"computed": 22, "reused": 0, "failed": 0}
    after = rows(store, "SELECT * FROM scores ORDER BY cell, metric_key")
    assert set(before) < set(after) and len(after) == len(before) + 22


FRAGILE = '''
import os
from dataclasses import dataclass
from typing import ClassVar

from harness import hookimpl
from harness.plugins.scratch import Scratch

CRASH = {crash!r}


@dataclass(frozen=True)
class Fragile(Scratch):
    """Kills the process that loads it while the file CRASH exists."""
    name: ClassVar[str] = "fragile"
    in_all: ClassVar[bool] = False

    def load(self, device):
        if os.path.exists(CRASH):
            os._exit(3)  # the worker dies: no exception, no traceback, no result
        return super().load(device)


@hookimpl
def register_encoders(register):
    register(Fragile)
'''


def test_a_job_that_dies_on_its_worker(tmp_path: Path) -> None:
    crash = tmp_path / "crash"
    crash.touch()
    plugin = tmp_path / "fragile.py"
    plugin.write_text(textwrap.dedent(FRAGILE.format(crash=str(crash))))
    argv = ["run", "--plugin", str(plugin), "--encoder", "scratch", "--encoder", "fragile",
            "--adapter", "full", "--merge", "none", "--task", "parity", "--profile", "smoke",
            "--executor", "ray", "--store", str(tmp_path / "S"), "--out", str(tmp_path / "o.md")]
    code, summary, err = run(argv)
    # four jobs: each encoder's base, each encoder's training run; fragile's two died
    assert code == 1 and summary == {"computed": 2, "reused": 0, "failed": 2}, err
    failed = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 2 and all(line.startswith("failed: fragile") for line in failed)
    assert all("the job failed on its Ray worker" in line for line in failed), failed
    assert "Traceback" not in err
    assert len(rows(tmp_path / "S", "SELECT * FROM failures")) == 2
    assert "## Failed cells" in (tmp_path / "o.md").read_text()

    code, summary, err = run([*argv, "--fail-fast"])  # stops at the first failed job
    assert code == 1 and summary["computed"] == 0 and summary["failed"] >= 1
    assert "stopped at the first failure (--fail-fast)" in err

    crash.unlink()  # fixed: the next run retries only the failed cells
    code, summary, err = run(argv)
    assert code == 0 and summary == {"computed": 2, "reused": 2, "failed": 0}, err
    assert rows(tmp_path / "S", "SELECT * FROM failures") == []


def test_ray_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["run", *GRID, "--store", str(tmp_path / "S"), "--out", str(tmp_path / "o.md")]
    cases = [
        (["--ray-address", "127.0.0.1:6379"], "--ray-address needs --executor ray"),
        (["--executor", "ray", "--ray-address", "127.0.0.1:1"],
         "cannot join the Ray cluster at 127.0.0.1:1"),
        (["--executor", "ray", "--job-cpus", "0"], "--job-cpus must be >= 1"),
        (["--executor", "ray", "--job-cpus", "4096"], "--job-cpus 4096: the largest Ray node"),
        (["--executor", "ray", "--device", "tpu9"], "'tpu9' is not a device torch knows"),
    ]
    import torch

    if not torch.cuda.is_available():
        cases.append((["--executor", "ray", "--device", "cuda"], "the Ray cluster has no GPU"))
    for extra, expected in cases:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            assert main([*base, *extra]) == 2, err.getvalue()
        assert err.getvalue().count("\n") == 1 and expected in err.getvalue(), err.getvalue()
    monkeypatch.setitem(sys.modules, "ray", None)  # not installed
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main([*base, "--executor", "ray"]) == 2
    assert "pip install 'numgeo-harness[ray]'" in err.getvalue()


def test_resources_asked_per_job() -> None:
    """One GPU per job where the cluster has GPUs and the device allows; CPUs = a local run's
    torch threads, never more than the largest node has."""
    from types import SimpleNamespace

    import torch

    from harness.api import HarnessError
    from harness.ray_executor import cpus_per_job, gpus_per_job

    def cluster(gpus: float, cpus: list[int]) -> SimpleNamespace:
        return SimpleNamespace(cluster_resources=lambda: {"CPU": sum(cpus), "GPU": gpus},
                               nodes=lambda: [{"Alive": True, "Resources": {"CPU": c}}
                                              for c in cpus] + [{"Alive": False,
                                                                 "Resources": {"CPU": 999}}])

    gpu, cpu_only = cluster(8, [16, 16]), cluster(0, [16])
    assert gpus_per_job(gpu, "auto", None) == 1 and gpus_per_job(gpu, "cuda:0", None) == 1
    assert gpus_per_job(gpu, "cpu", None) == 0 and gpus_per_job(cpu_only, "auto", None) == 0
    assert gpus_per_job(gpu, "auto", 0.5) == 0.5
    assert cpus_per_job(cpu_only, None) == min(torch.get_num_threads(), 16)
    assert cpus_per_job(cluster(0, [1]), None) == 1  # a one-CPU node: one thread
    assert cpus_per_job(cpu_only, 4) == 4
    with pytest.raises(HarnessError, match="the largest Ray node has 16 CPUs"):
        cpus_per_job(cpu_only, 17)
