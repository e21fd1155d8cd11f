"""Contract tests over every registered component: a new plugin is tested with no new test code.

Components are collected from the installed entry points at collection time, so a plugin
installed into this environment is checked too.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from harness.api import MetricUndefined
from harness.registry import load_registry
from harness.samples import draw as _draw

REG = load_registry()


def names(kind: str, default_only: bool = False) -> list[str]:
    return sorted(n for n, cls in REG.components[kind].items() if cls.in_all or not default_only)


ODD_INPUTS = [(), (0,), (1,), (7, 7, 7), (0, 0, 0, 0), (2, 4, 8, 16), (999, 1, 500),
              tuple(range(40)), (10**12, 3), (-3, -5, 7)]


@pytest.mark.parametrize("name", names("tasks"))
def test_task_contract(name: str) -> None:
    task = REG.components["tasks"][name]()
    assert task.classes and len(set(task.classes)) == len(task.classes)
    for n in (0, 1, len(task.classes), 61):
        seqs = _draw(task, n, random.Random(3))  # exact size, labels are classes, balanced
        assert seqs == task.sample(n, random.Random(3)), "sample must be deterministic"
        assert all(isinstance(x, int) for s in seqs for x in s)
    assert task.sample(60, random.Random(3)) != task.sample(60, random.Random(4))
    for seq in ODD_INPUTS:  # label is defined on any sequence
        y = task.label(seq)
        assert y is None or (isinstance(y, int) and 0 <= y < len(task.classes))


def _tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(6, 4, generator=g), "b": torch.randn(4, generator=g),
            "h": torch.randn(3, 5, generator=g).to(torch.bfloat16)}


def merged(merge, base, checkpoints):  # type: ignore[no-untyped-def]
    """A merge's tensors, its result unwrapped, with a scorer for merges that need one."""
    from harness.api import Merged

    kwargs = {}
    if merge.scored_by() is not None:  # a stand-in for the harness's held-out score
        kwargs["score"] = lambda t: -float(sum((v.float() - 1).abs().sum() for v in t.values()))
    out = merge.merge(base, checkpoints, **kwargs)
    if isinstance(out, Merged):
        assert all(isinstance(v, float | int) for v in out.stats.values())
        out = out.tensors
    return out


@pytest.mark.parametrize("name", names("merges"))
def test_merge_contract(name: str) -> None:
    merge = REG.components["merges"][name]()
    kind, runs = merge.ingredients()
    assert kind in ("stages", "seeds", "both", "tasks") and runs >= 1
    base, a, b = _tensors(0), _tensors(1), _tensors(2)
    out = merged(merge, base, [a, b])
    assert set(out) >= set(a)
    for key, value in out.items():
        assert value.shape == base[key].shape and value.dtype == base[key].dtype, key
        assert torch.isfinite(value.float()).all()
    again = merged(merge, base, [a, b])
    assert all(torch.equal(out[k], again[k]) for k in out), "merge must be deterministic"
    for given, seed in ((base, 0), (a, 1), (b, 2)):
        assert all(torch.equal(given[k], _tensors(seed)[k]) for k in given), "inputs changed"
    if merge.identity_on_one:
        one = merged(merge, base, [a])
        for key in a:
            assert torch.allclose(one[key].float(), a[key].float(), atol=1e-6), key


def _blobs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = np.repeat([0, 1, 2], 20)
    centres = rng.normal(size=(3, 8)) * 5
    return (centres[y] + rng.normal(size=(60, 8))).astype(np.float32), y


@pytest.mark.parametrize("name", names("metrics"))
def test_metric_contract(name: str) -> None:
    metric = REG.components["metrics"][name]()
    X, y = _blobs(np.random.default_rng(0))
    first = metric.score(X, y, np.random.default_rng(1))
    assert math.isfinite(first)
    assert metric.score(X, y, np.random.default_rng(1)) == first, "must be deterministic"
    constant = np.ones_like(X)
    try:
        value = metric.score(constant, y, np.random.default_rng(1))
        assert math.isfinite(value), "undefined values raise MetricUndefined, never NaN"
    except MetricUndefined as why:
        assert str(why)
    per = metric.per_sample(X, y, np.random.default_rng(1))
    if per is not None:  # decomposes: its finite mean is the score, for the same rng
        assert per.shape == (len(y),)
        assert np.isfinite(per).any()
        assert np.nanmean(per) == pytest.approx(first, abs=1e-9)


@pytest.mark.parametrize("name", names("encoders", default_only=True))
def test_encoder_contract(name: str) -> None:
    encoder = REG.components["encoders"][name]()
    assert encoder.family in ("non-llm", "llm")
    backbone = encoder.load("cpu")
    seqs = [(1, 2, 3, 4), (10, 20, 30, 40, 50, 60), (7, 11, 13, 29), (1, 2, 3, 4)]
    X = backbone.embed(seqs, batch_size=2)
    assert X.dtype == np.float32 and X.shape[0] == 4 and X.shape[1] >= 1
    assert np.isfinite(X).all()
    assert np.allclose(X[0], X[3], atol=1e-5), "same input, same embedding"
    weights = backbone.weights()
    assert weights
    key = sorted(k for k, v in weights.items() if v.is_floating_point())[0]
    saved = weights[key].clone()
    backbone.load_weights({key: torch.zeros_like(saved)})
    assert torch.count_nonzero(backbone.weights()[key]) == 0
    backbone.load_weights({key: saved})
    # the same batches: under bf16 autocast (AMX, CUDA) padding changes the rounding (~1e-3)
    assert np.allclose(backbone.embed(seqs, batch_size=2), X, atol=1e-5)


@pytest.mark.parametrize("name", names("adapters"))
def test_adapter_contract(name: str) -> None:
    adapter = REG.components["adapters"][name]()
    for name in names("encoders", default_only=True):
        answer = adapter.supports(REG.components["encoders"][name]())
        assert answer is True or (isinstance(answer, str) and answer)


def test_registry_has_the_builtins() -> None:
    assert len(REG.components["tasks"]) >= 8
    assert {"silhouette", "davies-bouldin"} <= set(REG.components["metrics"])
    assert {"none", "full"} <= set(REG.components["adapters"])
    assert "none" in REG.components["merges"] and "scratch" in REG.components["encoders"]
