"""Built-in merges of task vectors: ``task-arithmetic``, ``ties``, ``dare`` (DARE-TA),
``dare-ties`` and ``model-stock`` (see ``merge_math`` for the notation)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from harness.api import Merged, PooledMerge, Scorer
from harness.hookspecs import Register, hookimpl
from harness.plugins.merge_math import Tensors, mean
from harness.tuning import DENSITIES, SCALES, TunedMerge, task_vectors


def mask_seed(seed: int, key: str, delta: torch.Tensor) -> int:
    """DARE's drop-mask seed for one tensor of one ingredient, from the mask seed, the tensor's
    name and the bytes of the ingredient's task vector there: the same ingredient gets the same
    mask wherever it is listed (results do not depend on order), and a change to the harness's
    content hashes cannot change DARE's results."""
    digest = hashlib.sha256(json.dumps(["dare", seed, key], separators=(",", ":")).encode())
    digest.update(delta.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return int(digest.hexdigest()[:12], 16)

#: the name of the base class before it moved to the core (``harness.tuning``)
Tuned = TunedMerge
_ordered = task_vectors


def _elect(deltas: list[torch.Tensor]) -> torch.Tensor:
    """TIES's elect and disjoint mean: the sign of the sum per entry, then the mean of the
    entries that agree with it (zeros do not vote)."""
    sign = torch.sign(sum(deltas, torch.zeros_like(deltas[0])))
    total = torch.zeros_like(deltas[0])
    count = torch.zeros_like(deltas[0])
    for d in deltas:
        agree = (torch.sign(d) == sign) & (d != 0)
        total += torch.where(agree, d, 0.0)
        count += agree.float()
    return total / count.clamp(min=1.0)


@dataclass(frozen=True)
class TaskArithmetic(TunedMerge):
    """Task arithmetic (Ilharco et al. 2023): b + λ·Σ Δ_i, λ chosen on held-out data from
    ``SCALES`` (0.25–1.25; its effective coefficient is λ itself; the paper's range is 0–1)
    unless ``scale`` is set."""

    name: ClassVar[str] = "task-arithmetic"
    version: ClassVar[str] = "3"
    identity_on_one: ClassVar[bool] = False  # λ chosen on held-out data need not be 1
    in_all: ClassVar[bool] = False
    comparator: ClassVar[bool] = True
    GRID: ClassVar[dict[str, tuple[float, ...]]] = {"scale": SCALES}
    scale: float | None = field(default=None, metadata={
        "help": "λ, applied to the sum of task vectors; none: chosen on held-out data"})
    metric: str = field(default="silhouette", metadata={
        "help": "metric of the held-out score that chooses λ"})

    def task_vector(self, deltas: list[torch.Tensor], key: str, **values: float
                    ) -> torch.Tensor:
        return sum(deltas, torch.zeros_like(deltas[0]))


def _trim(delta: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the top ``density`` fraction of entries by magnitude, zero the rest."""
    if density >= 1.0:
        return delta
    magnitude = delta.abs()
    n = magnitude.numel()
    k = max(1, math.ceil(density * n))
    if magnitude.device.type == "cpu":  # introselect: several times faster than torch.topk
        threshold = float(np.partition(magnitude.flatten().numpy(), n - k)[n - k])
    else:
        threshold = float(torch.kthvalue(magnitude.flatten(), n - k + 1).values)
    return torch.where(magnitude >= threshold, delta, 0.0)


@dataclass(frozen=True)
class Ties(TunedMerge):
    """TIES (Yadav et al. 2023): trim, elect a sign per entry, average the agreeing entries.

    Each Δ_i keeps its top-density magnitudes; the sign of their sum is elected per entry; the
    entries that agree with it are averaged (the disjoint mean); result b + λ·that. λ and the
    density are chosen on held-out data (λ in effective-coefficient units from ``SCALES``: at
    λ = 1 TIES's coefficient is about 0.5, so 0.25–1.25 is λ ≈ 0.5–2.5; the paper tunes λ
    0.8–1.8; density 0.2 or 0.5) unless set."""

    name: ClassVar[str] = "ties"
    version: ClassVar[str] = "3"
    identity_on_one: ClassVar[bool] = False
    in_all: ClassVar[bool] = False
    comparator: ClassVar[bool] = True
    GRID: ClassVar[dict[str, tuple[float, ...]]] = {"scale": SCALES,
                                                    "density": DENSITIES}
    density: float | None = field(default=None, metadata={
        "help": "fraction of each task vector kept; none: chosen on held-out data"})
    scale: float | None = field(default=None, metadata={
        "help": "λ, applied to the merged task vector; none: chosen on held-out data"})
    metric: str = field(default="silhouette", metadata={
        "help": "metric of the held-out score that chooses λ and the density"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.density is not None and not 0.0 < self.density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {self.density}")

    def task_vector(self, deltas: list[torch.Tensor], key: str, **values: float
                    ) -> torch.Tensor:
        return _elect([_trim(d, values["density"]) for d in deltas])


@dataclass(frozen=True)
class Dare(TunedMerge):
    """DARE (Yu et al. 2023) before task arithmetic (DARE-TA): drop a fraction p of each task
    vector at random, rescale the rest by 1/(1−p), sum; result b + λ·Σ. λ is chosen on
    held-out data (in effective-coefficient units, as every tuned merge) unless set. Each
    ingredient's masks are seeded by ``seed``, the tensor's name and the ingredient's own
    values, so results do not depend on the order ingredients are listed in; left at 0, the
    harness draws ``REPLICATES`` masks (seeds 0, 1, 2) and reports their mean and spread."""

    name: ClassVar[str] = "dare"
    version: ClassVar[str] = "3"
    replicates: ClassVar[str] = "seed"
    identity_on_one: ClassVar[bool] = False
    in_all: ClassVar[bool] = False
    GRID: ClassVar[dict[str, tuple[float, ...]]] = {"scale": SCALES}
    p: float = field(default=0.9, metadata={"help": "drop rate, in [0, 1)"})
    seed: int = field(default=0, metadata={"help": "seed of the drop masks"})
    scale: float | None = field(default=None, metadata={
        "help": "λ, applied to the sum of the rescaled task vectors; none: chosen on held-out "
                "data"})
    metric: str = field(default="silhouette", metadata={
        "help": "metric of the held-out score that chooses λ"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {self.p}")

    def dropped(self, deltas: list[torch.Tensor], key: str) -> list[torch.Tensor]:
        out = []
        for d in deltas:
            g = torch.Generator().manual_seed(mask_seed(self.seed, key, d))
            keep = torch.rand(d.shape, generator=g) >= self.p
            out.append(torch.where(keep, d, 0.0) / (1.0 - self.p))
        return out

    def task_vector(self, deltas: list[torch.Tensor], key: str, **values: float
                    ) -> torch.Tensor:
        return sum(self.dropped(deltas, key), torch.zeros_like(deltas[0]))


@dataclass(frozen=True)
class DareTies(Dare):
    """DARE before TIES (DARE-TIES, as mergekit's ``dare_ties``): DARE's random drop and
    rescale in place of TIES's magnitude trim, then TIES's sign election and disjoint mean;
    result b + λ·that. λ is chosen on held-out data (in effective-coefficient units, as every
    tuned merge) unless set."""

    name: ClassVar[str] = "dare-ties"
    version: ClassVar[str] = "2"
    comparator: ClassVar[bool] = True
    GRID: ClassVar[dict[str, tuple[float, ...]]] = {"scale": SCALES}

    def task_vector(self, deltas: list[torch.Tensor], key: str, **values: float
                    ) -> torch.Tensor:
        return _elect(self.dropped(deltas, key))


@dataclass(frozen=True)
class ModelStock(PooledMerge):
    """Model Stock (Jang et al. 2024): toward the ingredients' mean, by their task vectors' angle.

    Per tensor t = N·cos / (1 + (N−1)·cos), cos the mean pairwise cosine of the task vectors
    (clamped at 0); result t·mean(c_i) + (1−t)·b."""

    name: ClassVar[str] = "model-stock"
    identity_on_copies: ClassVar[bool] = True
    in_all: ClassVar[bool] = False

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Merged:
        n = len(checkpoints)
        out, ts = {}, []
        for key, b in base.items():
            deltas = [(ck[key].double() - b.double()).flatten() for ck in checkpoints]
            cosines = []
            for i in range(n):
                for j in range(i + 1, n):
                    norm = torch.linalg.vector_norm(deltas[i]) * torch.linalg.vector_norm(
                        deltas[j])
                    cosines.append(float(torch.dot(deltas[i], deltas[j]) / norm) if norm > 0
                                   else 1.0)
            cos = max(0.0, sum(cosines) / len(cosines)) if cosines else 1.0
            t = n * cos / (1 + (n - 1) * cos)
            ts.append(t)
            centre = mean([ck[key] for ck in checkpoints])
            out[key] = (t * centre + (1 - t) * b.float()).to(b.dtype)
        stats = {"ingredients": n, "mean t": sum(ts) / len(ts) if ts else 1.0}
        return Merged(out, stats)


@hookimpl
def register_merges(register: Register) -> None:
    for cls in (TaskArithmetic, Ties, Dare, DareTies, ModelStock):
        register(cls)
