"""Numeric tests of the built-in merges: closed forms, endpoints, symmetry, fallback, seeds."""

from __future__ import annotations

import math

import pytest
import torch

from harness.api import HarnessError, Merged
from harness.keys import identity
from harness.params import build, label
from harness.plugins.interpolation import PARALLEL, Linear, Slerp, layer_of, scheduled_t, slerp
from harness.plugins.soups import GreedySoup, Soup
from harness.plugins.task_vectors import Dare, DareTies, ModelStock, TaskArithmetic, Ties
from harness.registry import Registry
from harness.selection import Request, select


def tensors(out):  # type: ignore[no-untyped-def]
    return out.tensors if isinstance(out, Merged) else out


def vec(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-9) -> bool:
    return torch.allclose(a.double(), b.double(), atol=tol, rtol=0)


# ------------------------------------------------------------------------------------- slerp


def test_slerp_orthogonal_unit_vectors() -> None:
    a, b = vec(1, 0), vec(0, 1)
    for t in (0.0, 0.25, 1 / 3, 0.5, 0.9, 1.0):
        out, linear, theta = slerp(a, b, t)
        assert not linear and theta == pytest.approx(math.pi / 2)
        assert close(out, vec(math.cos(t * math.pi / 2), math.sin(t * math.pi / 2)))


def test_slerp_known_angle_and_unnormalised_weights() -> None:
    a, b = 2 * vec(1, 0), 3 * vec(math.cos(math.pi / 3), math.sin(math.pi / 3))  # 60 degrees
    out, linear, theta = slerp(a, b, 0.5)
    assert not linear and math.degrees(theta) == pytest.approx(60)
    w = math.sin(math.pi / 6) / math.sin(math.pi / 3)  # both weights at t = 0.5
    assert close(out, w * a + w * b)
    assert close(slerp(a, b, 0.0)[0], a) and close(slerp(a, b, 1.0)[0], b)


def test_slerp_is_symmetric() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    for t in (0.1, 0.5, 0.8):
        assert close(slerp(a, b, t)[0], slerp(b, a, 1 - t)[0], 1e-6)


def test_slerp_near_parallel_falls_back_to_linear() -> None:
    a = vec(1, 0, 0)
    b = vec(1, 0.02, 0)  # cos = 0.9998
    assert abs(float(torch.dot(a, b) / b.norm())) > PARALLEL
    out, linear, _ = slerp(a, b, 0.3)
    assert linear and close(out, 0.7 * a + 0.3 * b)
    out, linear, _ = slerp(a, -1.01 * a, 0.5)  # antiparallel too
    assert linear and close(out, 0.5 * a + 0.5 * -1.01 * a)
    out, linear, _ = slerp(torch.zeros(3, dtype=torch.float64), a, 0.5)  # no direction
    assert linear and close(out, 0.5 * a)
    out, linear, _ = slerp(a, vec(1, 0.05, 0), 0.3)  # cos = 0.9988: a real slerp
    assert not linear


def test_slerp_of_a_lora_sized_delta_is_averaging() -> None:
    """REFERENCE.md's pitfall: W vs W + ΔW with ‖ΔW‖/‖W‖ ~ 1% falls back on every tensor."""
    g = torch.Generator().manual_seed(1)
    base = {f"layers.{i}.w": torch.randn(64, 64, generator=g) for i in range(4)}
    final = {}
    for k, w in base.items():
        delta = torch.randn(64, 4, generator=g) @ torch.randn(4, 64, generator=g)
        final[k] = w + 0.01 * delta * w.norm() / delta.norm()
    out = Slerp(t=0.5).merge(base, [final])
    assert isinstance(out, Merged) and out.stats["linear fallback"] == 1.0
    assert out.stats["tensors"] == 4 and out.stats["mean angle (deg)"] < 1.0
    for k in base:
        assert close(out.tensors[k], (base[k] + final[k]) / 2, 1e-5)


def test_slerp_merge_endpoints_and_between() -> None:
    g = torch.Generator().manual_seed(2)
    base, c1, c2 = ({"w": torch.randn(4, 3, generator=g)} for _ in range(3))
    assert close(tensors(Slerp(t=0.0).merge(base, [c1, c2]))["w"], base["w"])
    assert close(tensors(Slerp(t=1.0).merge(base, [c1, c2]))["w"], c2["w"], 1e-6)
    between = Slerp(t=0.0, between="checkpoints")
    assert close(tensors(between.merge(base, [c1, c2]))["w"], c1["w"], 1e-6)
    expected = slerp(c1["w"], c2["w"], 0.4)[0]
    got = tensors(Slerp(t=0.4, between="checkpoints").merge(base, [c1, c2]))["w"]
    assert close(got, expected, 1e-6)


def test_slerp_of_task_vectors_differs_from_averaging() -> None:
    """Orthogonal deltas on a large base: weights-space SLERP falls back to the average;
    task-vector SLERP keeps the deltas' norm (the WARP recipe)."""
    base = {"w": vec(100, 0, 0, 0)}
    c1, c2 = {"w": vec(100, 1, 0, 0)}, {"w": vec(100, 0, 1, 0)}
    weights = Slerp(t=0.5, between="checkpoints").merge(base, [c1, c2])
    assert weights.stats["linear fallback"] == 1.0
    assert close(weights.tensors["w"], vec(100, 0.5, 0.5, 0))
    tv = Slerp(t=0.5, between="checkpoints", space="task-vectors").merge(base, [c1, c2])
    assert tv.stats["linear fallback"] == 0.0
    assert tv.stats["mean angle (deg)"] == pytest.approx(90)
    assert close(tv.tensors["w"], vec(100, math.sqrt(0.5), math.sqrt(0.5), 0))


def test_slerp_per_layer_schedule() -> None:
    assert layer_of("model.layers.12.self_attn.q_proj.weight") == 12
    assert layer_of("encoder.layer.0.attention.self.query.weight") == 0
    assert layer_of("embed_tokens.weight") is None and layer_of("norm.weight") is None
    assert scheduled_t([0.0, 1.0], 0, 5) == 0.0 and scheduled_t([0.0, 1.0], 4, 5) == 1.0
    assert scheduled_t([0.0, 1.0], 2, 5) == pytest.approx(0.5)
    assert scheduled_t([0.0, 1.0, 0.0], 1, 3) == 1.0
    assert scheduled_t([0.2, 0.6, 1.0], 1, 5) == pytest.approx(0.4)
    base = {"layers.0.w": vec(1, 0), "layers.2.w": vec(1, 0), "head.w": vec(1, 0)}
    final = {k: vec(0, 1) for k in base}
    out = tensors(Slerp(t=0.5, schedule="0+1").merge(base, [final]))
    assert close(out["layers.0.w"], vec(1, 0)) and close(out["layers.2.w"], vec(0, 1))
    assert close(out["head.w"], vec(math.sqrt(0.5), math.sqrt(0.5)))  # no layer: uses t


@pytest.mark.parametrize("spec, message", [
    ({"t": "2"}, "t must be in [0, 1]"),
    ({"t": "abc"}, "not a valid float"),
    ({"space": "task-vectors"}, "needs between=checkpoints"),
    ({"schedule": "0+x"}, "is not a number"),
    ({"schedule": "0+1.5"}, "must be in [0, 1]"),
    ({"over": "models"}, "not one of stages, seeds, both, tasks"),
    ({"over": "tasks", "t": "0.3"}, "do not apply"),
    ({"runs": "0"}, "runs must be >= 1"),
    ({"angle": "1"}, "has no parameter 'angle'"),
])
def test_slerp_bad_parameters(spec: dict[str, str], message: str) -> None:
    with pytest.raises(HarnessError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build(Slerp, "merge", spec)


@pytest.mark.parametrize("cls, spec, message", [
    (Linear, {"t": "-0.1"}, "t must be in"),
    (Ties, {"density": "0"}, "density must be in"),
    (Dare, {"p": "1"}, "p must be in"),
    (Dare, {"runs": "-2"}, "runs must be >= 1"),
])
def test_bad_parameters(cls: type, spec: dict[str, str], message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        build(cls, "merge", spec)


# ------------------------------------------------------------------------ other closed forms


def three() -> tuple[dict, dict, dict]:
    g = torch.Generator().manual_seed(3)
    return ({"w": torch.randn(6, 5, generator=g), "b": torch.randn(5, generator=g)}
            for _ in range(3))  # type: ignore[return-value]


def test_soup_is_the_mean_and_order_free() -> None:
    base, c1, c2 = three()
    out = Soup().merge(base, [c1, c2])
    assert out.stats == {"ingredients": 2}
    for k in base:
        assert close(out.tensors[k], (c1[k] + c2[k]) / 2, 1e-6)
        assert close(out.tensors[k], Soup().merge(base, [c2, c1]).tensors[k], 1e-6)


def test_linear_endpoints_and_midpoint() -> None:
    base, c1, c2 = three()
    for t in (0.0, 0.3, 1.0):
        out = Linear(t=t).merge(base, [c1, c2])
        for k in base:
            assert close(out[k], base[k] + t * (c2[k] - base[k]), 1e-6)


def test_linear_between_checkpoints_is_the_stage_slerps_control() -> None:
    """between=checkpoints: from the first stage to the last; where its SLERP falls back (in
    weights) the two agree bit for bit, and in task-vector space to rounding; the parameter was
    added, so the base-final linear keeps its key."""
    base, c1, c2 = three()
    out = Linear(t=0.3, between="checkpoints").merge(base, [c1, c2])
    for k in base:
        assert close(out[k], c1[k] + 0.3 * (c2[k] - c1[k]), 1e-6)
    parallel = {k: v * 1.0001 for k, v in c1.items()}
    fell = Slerp(between="checkpoints").merge(base, [c1, parallel])
    assert fell.stats["linear fallback"] == 1.0
    control = Linear(between="checkpoints").merge(base, [c1, parallel])
    assert all(torch.equal(fell.tensors[k], control[k]) for k in base)
    assert identity(Linear()) == {"name": "linear", "version": "1", "params": {"t": 0.5}}
    assert identity(Linear(between="checkpoints"))["params"]["between"] == "checkpoints"


def test_the_default_grid_runs_the_stage_slerp_and_its_control(registry: Registry) -> None:
    labels = [label(m) for m in select(registry, Request(all=True)).merges]
    for wanted in ("slerp", "slerp:between=checkpoints,space=task-vectors",
                   "linear:between=checkpoints", "slerp:over=tasks"):
        assert labels.count(wanted) == 1, (wanted, labels)
    assert "linear" not in labels  # in_all = False: its stage parameter set alone
    # a merge named on the command line runs as named: no parameter sets added
    assert [label(m) for m in select(registry, Request(merges=["slerp"])).merges] == ["slerp"]


def test_task_arithmetic() -> None:
    base, c1, c2 = three()
    out = TaskArithmetic(scale=0.7).merge(base, [c1, c2])
    for k in base:
        assert close(out[k], base[k] + 0.7 * ((c1[k] - base[k]) + (c2[k] - base[k])), 1e-5)
    zero = TaskArithmetic(scale=0.0).merge(base, [c1, c2])
    assert all(close(zero[k], base[k]) for k in base)
    half = TaskArithmetic(scale=0.5).merge(base, [c1, c2])  # λ = 1/N is the soup
    assert all(close(half[k], Soup().merge(base, [c1, c2]).tensors[k], 1e-5) for k in base)


def test_ties_by_hand() -> None:
    base = {"w": torch.zeros(3)}
    c1, c2 = {"w": torch.tensor([3.0, -1.0, 0.5])}, {"w": torch.tensor([-2.0, -2.5, 1.0])}
    # density 1: elected signs (+, -, +); agreeing entries averaged
    assert close(Ties(density=1.0, scale=1.0).merge(base, [c1, c2])["w"], vec(3.0, -1.75, 0.75),
                 1e-6)
    # density 1/3 keeps each delta's largest entry: [3, 0, 0] and [0, -2.5, 0]
    assert close(Ties(density=1 / 3, scale=1.0).merge(base, [c1, c2])["w"], vec(3.0, -2.5, 0.0),
                 1e-6)
    out = Ties(density=1.0, scale=2.0).merge({"w": torch.ones(3)}, [
        {"w": c1["w"] + 1}, {"w": c2["w"] + 1}])
    assert close(out["w"], 1 + 2 * vec(3.0, -1.75, 0.75), 1e-6)


def test_dare_is_seeded_unbiased_and_p0_is_task_arithmetic() -> None:
    g = torch.Generator().manual_seed(4)
    base = {"w": torch.zeros(200, 200)}
    c1 = {"w": torch.randn(200, 200, generator=g)}
    out = Dare(p=0.9, seed=1, scale=1.0).merge(base, [c1])["w"]
    assert torch.equal(out, Dare(p=0.9, seed=1, scale=1.0).merge(base, [c1])["w"])
    assert not torch.equal(out, Dare(p=0.9, seed=2, scale=1.0).merge(base, [c1])["w"])
    kept = (out != 0).float().mean().item()
    assert kept == pytest.approx(0.1, abs=0.01)
    assert close(out[out != 0], c1["w"][out != 0] * 10, 1e-4)  # rescaled by 1/(1-p)
    b, x, y = three()
    assert all(close(Dare(p=0.0, scale=0.5).merge(b, [x, y])[k],
                     Soup().merge(b, [x, y]).tensors[k], 1e-5) for k in b)  # λ = 1/N


def test_model_stock_angle_rule() -> None:
    base = {"w": vec(0, 0)}
    same = ModelStock().merge(base, [{"w": vec(1, 0)}, {"w": vec(1, 0)}])
    assert same.stats["mean t"] == pytest.approx(1.0) and close(same.tensors["w"], vec(1, 0))
    ortho = ModelStock().merge(base, [{"w": vec(1, 0)}, {"w": vec(0, 1)}])
    assert ortho.stats["mean t"] == pytest.approx(0.0) and close(ortho.tensors["w"], vec(0, 0))
    c = math.cos(math.pi / 3)  # cos 0.5, N = 2: t = 2·0.5 / 1.5 = 2/3
    sixty = ModelStock().merge(base, [{"w": vec(1, 0)}, {"w": vec(c, math.sin(math.pi / 3))}])
    mean = (vec(1, 0) + vec(c, math.sin(math.pi / 3))) / 2
    assert sixty.stats["mean t"] == pytest.approx(2 / 3)
    assert close(sixty.tensors["w"], 2 / 3 * mean, 1e-6)


def test_greedy_soup_keeps_only_what_helps() -> None:
    target = torch.ones(4)

    def score(t: dict[str, torch.Tensor]) -> float:  # closer to the target is better
        return -float((t["w"] - target).norm())

    base = {"w": torch.zeros(4)}
    good = {"w": torch.tensor([1.0, 1.0, 1.2, 0.8])}
    fine = {"w": torch.tensor([1.0, 1.0, 0.8, 1.2])}  # averages with `good` to the target
    bad = {"w": torch.tensor([-3.0, -3.0, -3.0, -3.0])}
    out = GreedySoup().merge(base, [bad, fine, good], score=score)
    assert out.stats["kept"] == 2 and out.stats["ingredients"] == 3
    assert close(out.tensors["w"], target, 1e-6)
    assert out.stats["held-out score"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="needs the harness's scorer"):
        GreedySoup().merge(base, [good, fine])
    assert GreedySoup().scored_by() == "silhouette"
    assert GreedySoup(metric="probe-accuracy").scored_by() == "probe-accuracy"


def test_merges_keep_bf16_and_never_touch_inputs() -> None:
    base = {"w": torch.randn(8, 8).to(torch.bfloat16)}
    c1, c2 = {"w": torch.randn(8, 8).to(torch.bfloat16)}, {"w": torch.randn(8, 8)
                                                            .to(torch.bfloat16)}
    saved = [d["w"].clone() for d in (base, c1, c2)]
    for merge in (Soup(), Slerp(), Slerp(between="checkpoints", space="task-vectors"),
                  Linear(), TaskArithmetic(scale=1), Ties(scale=1, density=0.2),
                  Dare(scale=1), DareTies(scale=1), ModelStock(), Slerp(over="tasks")):
        out = tensors(merge.merge(base, [c1, c2]))
        assert out["w"].dtype == torch.bfloat16, merge.name
    assert all(torch.equal(d["w"], s) for d, s in zip((base, c1, c2), saved, strict=True))
