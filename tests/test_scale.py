"""Equal footing on scale: effective coefficients (``harness.tuning.coefficients``), the tuned
merges' λ chosen in those units, and ``rescale=METRIC`` for a merge that has no λ of its own."""

from __future__ import annotations

import pytest
import torch

from harness.plugins.interpolation import Slerp
from harness.plugins.soups import Soup
from harness.plugins.task_vectors import TaskArithmetic, Ties
from harness.tuning import SCALES, coefficients, rescaled, unit

G = torch.Generator().manual_seed(11)
BASE = {"w": torch.randn(8, 6, generator=G), "b": torch.randn(6, generator=G)}
CKS = [{k: v + torch.randn(v.shape, generator=G) for k, v in BASE.items()} for _ in range(3)]


def delta(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: out[k].float() - b.float() for k, b in BASE.items()}


def test_coefficients_of_linear_combinations_by_hand() -> None:
    # 0.7·Δ1 − 0.2·Δ2 + 0·Δ3, all in the span: no share outside it
    mix = {k: 0.7 * (CKS[0][k] - b) - 0.2 * (CKS[1][k] - b) for k, b in BASE.items()}
    found, outside = coefficients(BASE, CKS, mix)
    assert found == pytest.approx([0.7, -0.2, 0.0], abs=1e-5) and outside < 1e-9
    # a direction orthogonal to every task vector is all outside
    ortho = torch.zeros(8, 6)
    ortho[0, 0] = 1.0
    tv = torch.stack([(c["w"] - BASE["w"]).flatten() for c in CKS])
    q, _ = torch.linalg.qr(torch.cat([tv.T, ortho.flatten()[:, None]], dim=1).double())
    away = {"w": q[:, 3].float().reshape(8, 6), "b": torch.zeros(6)}
    found, outside = coefficients(BASE, CKS, away)
    assert found == pytest.approx([0, 0, 0], abs=1e-5) and outside == pytest.approx(1, abs=1e-5)


def test_task_arithmetic_and_soup_coefficients() -> None:
    ta = TaskArithmetic(over="tasks", scale=0.75).merge(BASE, CKS)
    assert coefficients(BASE, CKS, delta(ta))[0] == pytest.approx([0.75] * 3, abs=1e-5)
    soup = Soup(over="tasks").merge(BASE, CKS).tensors
    assert coefficients(BASE, CKS, delta(soup))[0] == pytest.approx([1 / 3] * 3, abs=1e-5)
    assert unit(BASE, CKS, delta({k: b + sum(c[k] - b for c in CKS) for k, b in BASE.items()})
                ) == pytest.approx(1.0, abs=1e-8)  # a sum


def _target_score(g: float):  # type: ignore[no-untyped-def]
    """A held-out score that peaks at task arithmetic with λ = g."""
    target = {k: b + g * sum(c[k] - b for c in CKS) for k, b in BASE.items()}
    return lambda t: -float(sum((t[k].float() - target[k]).norm() for k in target))


def test_a_rescaled_soup_is_task_arithmetic() -> None:
    """A soup rescaled on the effective-coefficient grid is task arithmetic at the same
    coefficient (a soup of K rescaled by λ is task arithmetic at λ/K): a test, not a row."""
    for g in (0.5, 1.25):
        score = _target_score(g)
        soup = rescaled(BASE, CKS, Soup(over="tasks").merge(BASE, CKS), score)
        ta = TaskArithmetic(over="tasks").merge(BASE, CKS, score=score)
        assert soup.stats["chosen effective coefficient"] == g == \
            ta.stats["chosen effective coefficient"]
        assert soup.stats["rescale factor"] == pytest.approx(3 * g)
        for k in BASE:
            assert torch.allclose(soup.tensors[k], ta.tensors[k], atol=1e-6)


def test_tuned_merges_choose_lambda_in_effective_units() -> None:
    """TIES at λ = 1 puts about half of each task vector in (its disjoint mean): its swept
    scale is converted, so its chosen candidate has the chosen effective coefficient."""
    score = _target_score(0.75)
    ties = Ties(over="tasks", density=0.5).merge(BASE, CKS, score=score)
    g = ties.stats["chosen effective coefficient"]
    assert g in SCALES
    mean = sum(coefficients(BASE, CKS, delta(ties.tensors))[0]) / 3
    assert mean == pytest.approx(g, rel=1e-4)
    assert ties.stats["chosen scale"] != g  # λ itself differs: TIES is a mean


def test_rescale_is_a_parameter_of_pooled_merges() -> None:
    assert Slerp(over="tasks", rescale="silhouette").scored_by() == "silhouette"
    assert Slerp(over="tasks").scored_by() is None
    with pytest.raises(ValueError, match="rescale does not apply"):
        TaskArithmetic(rescale="silhouette")
