"""The merge baselines of plugins/merge_baselines.py and spectral_merges.py: hand-worked
examples, degenerate cases, order, rank tolerance, the contract and registration."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import math

import numpy as np
import pytest
import torch

from harness.api import HarnessError, Merged
from harness.cli import main
from harness.merge_contracts import check_merge
from harness.params import build
from harness.plugins.merge_baselines import (
    Breadcrumbs,
    BreadcrumbsTies,
    ConsensusTA,
    ConsensusTies,
    Della,
)
from harness.plugins.scratch import Scratch
from harness.plugins.spectral_merges import (
    IsoC,
    Tsv,
    is_embedding,
    low_rank_svd,
    spectral,
    truncated_svd,
)
from harness.plugins.task_vectors import DareTies, TaskArithmetic, Ties, mask_seed
from harness.registry import Registry
from harness.tuning import SCALES

ALL = (Breadcrumbs, BreadcrumbsTies, Della, ConsensusTA, ConsensusTies, Tsv, IsoC)


def tensors(out):  # type: ignore[no-untyped-def]
    return out.tensors if isinstance(out, Merged) else out


def vec(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float32)


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-6) -> bool:
    return torch.allclose(a.double(), b.double(), atol=tol, rtol=0)


def one(merge, deltas: list[torch.Tensor], key: str = "w") -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The merge's result on a zero base, so the result is λ·(merged task vector)."""
    base = {key: torch.zeros_like(deltas[0])}
    return tensors(merge.merge(base, [{key: d} for d in deltas]))[key]


def three(seed: int = 3) -> tuple[dict, dict, dict, dict]:
    """A base and three fine-tunes: a 2-D weight, a bias, an embedding table, in float32."""
    g = torch.Generator().manual_seed(seed)
    base = {"layer.weight": torch.randn(12, 9, generator=g), "layer.bias": torch.randn(9,
            generator=g), "embed_tokens.weight": torch.randn(7, 5, generator=g)}
    return (base, *({k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in base.items()}
                    for _ in range(3)))  # type: ignore[return-value]


FIXED = [Breadcrumbs(scale=0.5), BreadcrumbsTies(scale=1.0), Della(scale=1.0, seed=2),
         ConsensusTA(scale=0.5), ConsensusTies(scale=1.0, density=0.5), Tsv(scale=1.0),
         IsoC(scale=1.5)]


T1 = vec(0.1, -5, 2, -0.3, 1, 0.05, 3, -2, 0.5, 4)
T2 = vec(1, 1, -1, 2, -6, 0.2, -0.1, 3, -4, 0.4)


def test_breadcrumbs_and_breadcrumbs_ties_by_hand() -> None:
    # beta 0.1 drops each one's largest (-5; -6), gamma 0.2 its two smallest (0.05, 0.1;
    # -0.1, 0.2): [0, 0, 2, -.3, 1, 0, 3, -2, .5, 4] + [1, 1, -1, 2, 0, 0, 0, 3, -4, .4]
    out = one(Breadcrumbs(beta=0.1, gamma=0.2, scale=0.5), [T1, T2])
    assert close(out, vec(0.5, 0.5, 0.5, 0.85, 0.5, 0, 1.5, 0.5, -1.75, 2.2))
    # only the outliers, then only the noise
    assert close(one(Breadcrumbs(beta=0.1, gamma=0.0, scale=1.0), [T1]),
                 vec(0.1, 0, 2, -0.3, 1, 0.05, 3, -2, 0.5, 4))
    assert close(one(Breadcrumbs(beta=0.0, gamma=0.5, scale=1.0), [T1]),
                 vec(0, -5, 2, 0, 0, 0, 3, -2, 0, 4))
    # -ties: the same masks; elected signs (+ + + + + 0 + + - +), agreeing entries averaged
    out = one(BreadcrumbsTies(beta=0.1, gamma=0.2, scale=1.0), [T1, T2])
    assert close(out, vec(1, 1, 2, 2, 1, 0, 3, 3, -4, 2.2))


def test_della_probabilities_by_hand_and_drawn() -> None:
    della = Della(p=0.5, epsilon=0.4)  # window 0.3..0.7, the largest magnitude lowest
    assert close(della.probabilities(vec(1, -3, 2)), vec(0.7, 0.3, 0.5))
    # ranked within each row, not over the whole tensor
    assert close(della.probabilities(torch.tensor([[1.0, -3.0], [2.0, 0.5]])),
                 torch.tensor([[0.7, 0.3], [0.3, 0.7]]))
    # clamped at 0: p = 0.1, ε = 0.4 spans -0.1..0.3
    assert close(Della(p=0.1, epsilon=0.4).probabilities(vec(1, 2, 3)), vec(0.3, 0.1, 0.0))
    assert close(Della(p=0.5, epsilon=0.4).probabilities(vec(7)), vec(0.5))  # one entry: p
    d = torch.arange(1, 100_001, dtype=torch.float32)  # one row, magnitude = rank + 1
    kept = (Della(p=0.5, epsilon=0.8, seed=1).dropped([d], "w")[0] != 0).float()
    # drawn: drop probability 0.9 at the smallest, 0.1 at the largest
    assert float(kept[:10_000].mean()) == pytest.approx(0.14, abs=0.01)
    assert float(kept[-10_000:].mean()) == pytest.approx(0.86, abs=0.01)
    assert float(kept.mean()) == pytest.approx(0.5, abs=0.01)

def test_della_by_independent_numpy() -> None:
    """The same draws as DARE (generator seeded by mask_seed), probabilities by rank, rescale
    by 1/(1 - p_i), then TIES's elect and disjoint mean, all written out in numpy."""
    g = torch.Generator().manual_seed(5)
    deltas = [torch.randn(4, 50, generator=g) for _ in range(3)]
    p, eps, seed = 0.6, 0.3, 4
    kept = []
    for d in deltas:
        x = d.numpy().astype(np.float64)
        rank = np.argsort(np.argsort(np.abs(x), axis=1, kind="stable"), axis=1)
        probs = p + eps / 2 - eps * rank / (x.shape[1] - 1)
        rand = torch.rand(d.shape, generator=torch.Generator().manual_seed(
            mask_seed(seed, "w", d))).numpy()
        kept.append(np.where(rand >= probs.astype(np.float32), x / (1 - probs), 0.0))
    stack = np.stack(kept)
    sign = np.sign(stack.sum(0))
    agree = (np.sign(stack) == sign) & (stack != 0)
    want = (stack * agree).sum(0) / np.maximum(agree.sum(0), 1)
    got = one(Della(p=p, epsilon=eps, seed=seed, scale=1.0), deltas)
    assert np.allclose(got.numpy(), want, atol=1e-5, rtol=0)


TAU = [vec(1, 0, 2, -1), vec(1, 3, -2, 0), vec(0, 1, 1, 1)]


def test_consensus_by_hand() -> None:
    # τ_MTL = [2, 4, 1, 0]; λ_t = 0.4: masks [1 0 1 1], [1 1 1 0], [0 0 1 1]; votes [2 1 3 2]
    assert close(one(ConsensusTA(scale=1.0), TAU), vec(2, 0, 1, 0))
    assert close(one(ConsensusTA(scale=0.5, k=3), TAU), vec(0, 0, 0.5, 0))
    assert close(one(ConsensusTA(scale=1.0, k=1), TAU), vec(2, 4, 1, 0))
    # λ_t = 1, strict (|1| > 1·|1| is off): masks [0 0 1 0], [0 1 0 0], [0 0 1 0]
    assert close(one(ConsensusTA(scale=1.0, mask_lambda=1.0), TAU), vec(0, 0, 1, 0))
    # over TIES at density 1: τ_MTL = [1, 2, 1.5, 0]; masks [1 0 1 1], [1 1 1 0], [0 1 1 1]
    assert close(one(ConsensusTies(scale=1.0, density=1.0), TAU), vec(1, 2, 1.5, 0))
    assert close(one(ConsensusTies(scale=1.0, density=1.0, k=3), TAU), vec(0, 0, 1.5, 0))


def test_tsv_by_hand() -> None:
    # orthogonal tasks: each keeps its top triplet, e1 (3) and e2 (2); nothing to rotate
    a, b = torch.tensor([[3.0, 0], [0, 1]]), torch.tensor([[0.0, 0], [0, 2]])
    assert close(one(Tsv(scale=1.0), [a, b]), torch.tensor([[3.0, 0], [0, 2]]))
    assert close(one(Tsv(scale=0.5), [a, b]), torch.tensor([[1.5, 0], [0, 1]]))
    # U's 45 degrees apart: the polar factor turns each 22.5 degrees away from the other
    r = 1 / math.sqrt(2)
    a, b = torch.tensor([[3.0, 0], [0, 0]]), torch.tensor([[0.0, 2 * r], [0, 2 * r]])
    c, s = math.cos(math.pi / 8), math.sin(math.pi / 8)
    assert close(one(Tsv(scale=1.0), [a, b]), torch.tensor([[3 * c, 2 * s], [-3 * s, 2 * c]]))
    # a bias and an embedding table: the mean of the task vectors
    assert close(one(Tsv(scale=1.0), [vec(1, 2), vec(3, 4)], "layer.bias"), vec(2, 3))
    assert close(one(Tsv(scale=1.0), [a, b], "tokens.weight"), (a + b) / 2)


def test_iso_c_by_hand() -> None:
    # Σ = diag(3, 1): mean singular value 2, U Vᵀ = I
    a, b = torch.tensor([[2.0, 0], [0, 0]]), torch.tensor([[1.0, 0], [0, 1]])
    assert close(one(IsoC(scale=1.0), [a, b]), torch.tensor([[2.0, 0], [0, 2]]))
    # Σ = [[0, 3], [1, 0]]: singular values 3 and 1, U Vᵀ the swap
    a, b = torch.tensor([[0.0, 2], [0, 0]]), torch.tensor([[0.0, 1], [1, 0]])
    assert close(one(IsoC(scale=1.5), [a, b]), torch.tensor([[0.0, 3], [3, 0]]))
    assert close(one(IsoC(scale=1.0), [vec(1, 2), vec(3, 4)], "layer.bias"), vec(2, 3))
    a, b = torch.tensor([[1.0, 0], [0, 0]]), torch.tensor([[0.0, 0], [0, 3]])
    assert close(one(IsoC(scale=1.0), [a, b], "embed_tokens.weight"),
                 torch.tensor([[0.5, 0], [0, 1.5]]))  # not 2·I: no SVD of an embedding


def test_which_tensors_are_spectral() -> None:
    for name in ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                 "embed_tokens.weight", "model.embed_tokens.weight", "tokens.weight",
                 "positions.weight", "wte.weight"):
        assert is_embedding(name), name
    names = Scratch().load("cpu").weights()
    found = sorted(k for k, v in names.items() if v.ndim == 2 and is_embedding(k))
    assert found == ["positions.weight", "tokens.weight"]
    assert {"encoder.layers.0.self_attn.in_proj_weight", "encoder.layers.1.linear2.weight"} <= {
        k for k, v in names.items() if spectral(k, v)}
    assert not spectral("encoder.layers.0.linear1.bias", names["encoder.layers.0.linear1.bias"])


def same(a: dict, b: dict, tol: float = 0.0) -> bool:  # type: ignore[type-arg]
    a, b = tensors(a), tensors(b)
    return all(torch.equal(a[k], b[k]) if tol == 0 else close(a[k], b[k], tol) for k in a)


def test_degenerate_cases_equal_the_older_merges() -> None:
    base, *cks = three()
    for scale in (0.3, 1.0):
        ta = TaskArithmetic(scale=scale).merge(base, cks)
        assert same(Breadcrumbs(beta=0, gamma=0, scale=scale).merge(base, cks), ta, 1e-6)
        assert same(ConsensusTA(k=0, scale=scale).merge(base, cks), ta, 1e-6)
        assert same(BreadcrumbsTies(beta=0, gamma=0, scale=scale).merge(base, cks),
                    Ties(density=1, scale=scale).merge(base, cks), 1e-6)
        for density in (0.2, 1.0):
            assert same(ConsensusTies(k=0, density=density, scale=scale).merge(base, cks),
                        Ties(density=density, scale=scale).merge(base, cks), 1e-6)
    for p, seed in ((0.9, 0), (0.5, 3), (0.3, 7)):
        assert same(Della(p=p, epsilon=0, seed=seed, scale=1.5).merge(base, cks),
                    DareTies(p=p, seed=seed, scale=1.5).merge(base, cks))  # bit for bit
    # one task: every singular triplet kept (TSV); equal singular values (Iso-C)
    assert same(Tsv(scale=0.7).merge(base, cks[:1]), TaskArithmetic(scale=0.7).merge(
        base, cks[:1]), 1e-6)
    q, _ = torch.linalg.qr(torch.randn(9, 9, generator=torch.Generator().manual_seed(1)))
    rotated = {**base, "layer.weight": base["layer.weight"][:9] + 0.2 * q}
    base9 = {**base, "layer.weight": base["layer.weight"][:9]}
    assert same(IsoC(scale=0.7).merge(base9, [rotated]), TaskArithmetic(scale=0.7).merge(
        base9, [rotated]), 1e-6)
    # and the masks do something at their defaults
    assert not same(Breadcrumbs(scale=1.0).merge(base, cks), TaskArithmetic(scale=1.0).merge(
        base, cks), 1e-6)
    assert not same(Della(scale=1.0).merge(base, cks), DareTies(scale=1.0).merge(base, cks))


def test_order_invariant_bit_for_bit() -> None:
    base, *cks = three()
    g = torch.Generator().manual_seed(8)
    for ck in cks:  # magnitudes 1e-3..1e3, so float32 sums depend on their order
        for k, v in ck.items():
            ck[k] = v + torch.randn(v.shape, generator=g) * 10.0 ** torch.randint(
                -3, 4, v.shape, generator=g)
    for merge in FIXED:
        want = tensors(merge.merge(base, cks))
        for order in itertools.permutations(cks):
            assert same(merge.merge(base, list(order)), want), merge.name


def test_a_low_rank_delta_stays_low_rank() -> None:
    """A rank-2 delta in a 16×16 matrix, stored as base + delta in float32 (so the task
    vector carries rounding noise in every direction): TSV and Iso-C keep rank 2."""
    g = torch.Generator().manual_seed(6)
    base = {"w": torch.randn(16, 16, generator=g)}
    delta = torch.randn(16, 2, generator=g) @ torch.randn(2, 16, generator=g)
    ck = {"w": base["w"] + delta}
    noise = (ck["w"] - base["w"]).double() - delta.double()
    assert np.linalg.matrix_rank(noise.numpy()) == 16  # the noise spans everything
    for merge in (Tsv(), IsoC()):
        vector = merge.vectors(base, [ck], {})["w"]
        assert np.linalg.matrix_rank(vector.numpy()) == 2, merge.name
    # two tasks of rank 1 each: rank 2
    other = {"w": base["w"] + torch.outer(torch.randn(16, generator=g), torch.randn(
        16, generator=g))}
    half = {"w": base["w"] + delta[:, :1] @ torch.ones(1, 16)}
    for merge in (Tsv(), IsoC()):
        assert np.linalg.matrix_rank(merge.vectors(base, [half, other], {})["w"].numpy()) == 2
    # without the tolerance Iso-C's flat spectrum would lift the noise to full rank
    u, s, vh = np.linalg.svd((ck["w"] - base["w"]).double().numpy())
    assert np.linalg.matrix_rank((u * s.mean()) @ vh) == 16


def _lora_like(rows: int, cols: int, tasks: int, seed: int = 0
               ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    """A base weight and ``tasks`` fine-tunes of it by rank-8 updates, stored in float32."""
    g = torch.Generator().manual_seed(seed)
    base = {"w": 0.05 * torch.randn(rows, cols, generator=g)}
    return base, [{"w": base["w"] + (0.02 * torch.randn(rows, 8, generator=g))
                   @ (0.02 * torch.randn(8, cols, generator=g))} for _ in range(tasks)]


def _full_svd(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(m.double(), full_matrices=False)
    keep = int((s > s[0] * max(m.shape) * torch.finfo(torch.float32).eps).sum())
    return u[:, :keep], s[:keep], vh[:keep]


def test_low_rank_matrices_are_decomposed_through_their_range() -> None:
    """A LoRA-like task vector (rank 8 plus float32 rounding in every direction) and a sum of
    three: the range path keeps the full SVD's rank and singular values (to 1e-11 of the
    largest) and the same truncated matrix to the rounding noise already in the task vectors
    (1e-5 of its largest entry); a full-rank matrix takes the full SVD."""
    base, cks = _lora_like(160, 200, 3)
    deltas = [ck["w"] - base["w"] for ck in cks]
    for m in (deltas[0], sum(deltas)):
        fast, full = low_rank_svd(m.double()), _full_svd(m)
        assert fast is not None and fast[1].numel() == full[1].numel() in (8, 24)
        assert torch.allclose(fast[1], full[1], rtol=0, atol=1e-11 * float(full[1][0]))
        rebuilt = [(u * s) @ vh for u, s, vh in (fast, full)]
        assert float((rebuilt[0] - rebuilt[1]).abs().max()) < 1e-5 * float(
            rebuilt[1].abs().max())
    g = torch.Generator().manual_seed(1)
    dense = torch.randn(160, 200, generator=g)
    assert low_rank_svd(dense.double()) is None
    assert all(torch.equal(a, b) for a, b in zip(truncated_svd(dense), _full_svd(dense),
                                                 strict=True))
    assert low_rank_svd(torch.zeros(160, 200, dtype=torch.float64)) is None  # full SVD: rank 0
    assert truncated_svd(torch.zeros(160, 200))[1].numel() == 0


def test_spectral_merges_of_lora_like_updates_match_the_full_svd(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """TSV-M's and Iso-C's merged task vectors with the range path equal those of the full
    SVD to the task vectors' own rounding noise."""
    from harness.plugins import spectral_merges

    base, cks = _lora_like(160, 200, 3, seed=2)
    fast = {m.name: m.vectors(base, cks, {})["w"] for m in (Tsv(), IsoC())}
    monkeypatch.setattr(spectral_merges, "low_rank_svd", lambda m: None)
    for merge in (Tsv(), IsoC()):
        full = merge.vectors(base, cks, {})["w"]
        assert float((fast[merge.name] - full).abs().max()) < 1e-5 * float(full.abs().max())


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_contract(cls: type) -> None:
    check_merge(cls())
    grid = len(list(itertools.product(*cls.GRID.values())))  # type: ignore[attr-defined]
    assert grid <= 6  # every candidate costs an embedding pass
    assert not cls.in_all and not cls.identity_on_one  # type: ignore[attr-defined]
    for spec in cls.examples:  # type: ignore[attr-defined]
        check_merge(build(cls, "merge", dict(kv.split("=") for kv in spec.split(","))))


def test_tuned_on_held_out_data() -> None:
    base, *cks = three()
    target = {k: v + 0.4 * sum(c[k] - v for c in cks) for k, v in base.items()}

    def score(t: dict[str, torch.Tensor]) -> float:  # closest to λ = 0.4 of the sum
        return -float(sum((t[k] - target[k]).norm() for k in t))

    out = Breadcrumbs(beta=0, gamma=0).merge(base, cks, score=score)
    assert isinstance(out, Merged) and out.stats["chosen scale"] == pytest.approx(0.5)
    for merge in FIXED:  # the same candidates, in effective-coefficient units
        tuned = dataclasses.replace(merge, scale=None).merge(base, cks, score=score)
        assert tuned.stats["chosen effective coefficient"] in SCALES, merge.name
    with pytest.raises(ValueError, match="needs the harness's scorer"):
        Tsv().merge(base, cks)


@pytest.mark.parametrize("cls, spec, message", [
    (Breadcrumbs, {"beta": "0.5", "gamma": "0.5"}, "beta \\+ gamma < 1"),
    (BreadcrumbsTies, {"gamma": "-0.1"}, "must be >= 0"),
    (Della, {"p": "0.9", "epsilon": "0.3"}, "p \\+ epsilon/2 < 1"),
    (Della, {"epsilon": "-1"}, "epsilon must be >= 0"),
    (ConsensusTA, {"k": "-1"}, "must be >= 0"),
    (ConsensusTies, {"density": "0"}, "density must be in"),
    (Tsv, {"scale": "-1"}, "scale must be >= 0"),
])
def test_bad_parameters(cls: type, spec: dict[str, str], message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        build(cls, "merge", spec)


def test_registered(registry: Registry) -> None:
    owners = {c.name: "spectral" if c in (Tsv, IsoC) else "baselines" for c in ALL}
    for name, module in owners.items():
        assert registry.components["merges"][name].name == name
        assert registry.owner[("merges", name)] == f"numgeo-harness.merges.{module}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plugins"]) == 0
    for name in owners:
        assert f"\n  {name} (numgeo-harness.merges." in out.getvalue(), name
