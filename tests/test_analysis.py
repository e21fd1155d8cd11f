"""The analysis stage: CKA to the base (with its interval), what else is encoded, resume."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from smoke_runs import parse_summary

from harness.analysis import _weighted_hsic, cka_interval, encoded, linear_cka, nuisance
from harness.cli import main
from harness.store import Store


def test_linear_cka_invariances() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 20))
    Q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    assert linear_cka(X, X) == pytest.approx(1.0)
    assert linear_cka(X, 3.0 * X @ Q + 5.0) == pytest.approx(1.0)  # rotation, scale, shift
    Y = rng.normal(size=(300, 20))
    assert linear_cka(X, Y) == pytest.approx(linear_cka(Y, X))
    assert linear_cka(X, Y) < 0.15  # unrelated (small-sample bias keeps it above 0)


def test_weighted_hsic_is_cka_of_the_resample() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(80, 6)), rng.normal(size=(80, 4))
    Y[:, 0] += 2 * X[:, 0]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    K, L = Xc @ Xc.T, Yc @ Yc.T
    half = np.zeros(80)
    half[rng.permutation(80)[:40]] = 1.0
    dup = np.bincount(rng.integers(0, 80, 80), minlength=80).astype(float)
    for w, rows in ((half, np.flatnonzero(half)), (dup, np.repeat(np.arange(80), dup.astype(int)))):
        W = w[None]
        got = _weighted_hsic(K, L, W) / np.sqrt(_weighted_hsic(K, K, W) * _weighted_hsic(L, L, W))
        assert got[0] == pytest.approx(linear_cka(X[rows], Y[rows]), rel=1e-9)


def test_cka_interval_brackets_the_estimate() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 30))
    Y = X @ rng.normal(size=(30, 30)) * 0.2 + rng.normal(size=(400, 30))
    value, lo, hi = cka_interval(X, Y, np.random.default_rng(3), resamples=50)
    assert lo < value < hi and hi - lo < 0.2
    assert cka_interval(X, Y, np.random.default_rng(3), resamples=50) == (value, lo, hi)


def test_nuisance_attributes() -> None:
    seqs = [(1, 2, 3, 4), (250, 3, 9, 8, 7), (999, 1, 1, 1, 1, 1), (40, 41, 42, 43)]
    got = nuisance(seqs)
    assert got["length"] == [4, 5, 6, 4]
    assert got["leading digit"] == [1, 2, 9, 4]
    assert sorted(set(got["magnitude"])) == [0, 1, 2]  # terciles of the largest element
    assert got["magnitude"][0] == 0 and got["magnitude"][2] == 2


def test_encoded_finds_what_the_geometry_holds() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 150)
    X = np.eye(3)[labels] * 5 + rng.normal(size=(150, 3)) * 0.1
    other = rng.integers(0, 2, 150)
    partial = [int(v) if i % 2 else None for i, v in enumerate(labels)]
    got = encoded(X, {"shape": labels.tolist(), "noise": other.tolist(), "half": partial}, 0)
    assert got["shape"] == pytest.approx(1.0) and got["half"] == pytest.approx(1.0)
    assert abs(got["noise"]) < 0.1


def test_a_run_stores_its_analyses_once(tmp_path: Path) -> None:
    args = ["run", "--encoder", "scratch", "--adapter", "full", "--merge", "none", "--merge",
            "soup", "--task", "parity", "--task", "progression", "--metric", "silhouette",
            "--profile", "smoke", "--store", str(tmp_path / "S"), "--out", str(tmp_path / "O")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(args) == 0
    assert parse_summary(out.getvalue())["failed"] == 0
    store = Store.open_existing(tmp_path / "S")
    try:
        rows = store.query("SELECT a.variant, a.kind, a.name, a.value, a.lo, a.hi, v.adapter "
                           "FROM analyses a JOIN variants v ON v.key = a.variant")
        stamp = store.query("SELECT max(run_id) AS r FROM analyses")[0]["r"]
    finally:
        store.close()
    variants = {r["variant"] for r in rows}
    assert len(variants) == 5  # base + (none, soup) x 2 train tasks
    cka = {r["variant"]: r for r in rows if r["kind"] == "cka"}
    assert set(cka) == variants
    for r in cka.values():
        if r["adapter"] == "none":
            assert r["value"] == pytest.approx(1.0)
        assert r["lo"] <= r["value"] <= r["hi"]
    names = {r["name"] for r in rows if r["kind"] == "encoded"}
    assert names == {"parity", "progression", "length", "magnitude", "leading digit"}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args) == 0
    store = Store.open_existing(tmp_path / "S")
    try:  # the re-run found everything analysed
        assert store.query("SELECT max(run_id) AS r FROM analyses")[0]["r"] == stamp
    finally:
        store.close()
