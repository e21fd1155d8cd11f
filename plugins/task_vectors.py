"""Built-in merges of task vectors: ``task-arithmetic``, ``ties``, ``dare`` and
``model-stock`` (see ``merge_math`` for the notation)."""

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


def mask_seed(seed: int, key: str, ingredient: int) -> int:
    """DARE's drop-mask seed for one tensor of one ingredient: its own formula (a change to the
    harness's content hashes must not change DARE's results)."""
    blob = json.dumps(["dare", seed, key, ingredient], separators=(",", ":"))
    return int(hashlib.sha256(blob.encode()).hexdigest()[:12], 16)


@dataclass(frozen=True)
class TaskArithmetic(PooledMerge):
    """Task arithmetic (Ilharco et al. 2023): b + λ·Σ Δ_i."""

    name: ClassVar[str] = "task-arithmetic"
    in_all: ClassVar[bool] = False
    scale: float = field(default=1.0, metadata={"help": "λ, applied to the sum of task vectors"})

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Tensors:
        out = {}
        for key, b in base.items():
            total = torch.zeros_like(b, dtype=torch.float32)
            for ck in checkpoints:
                total += ck[key].float() - b.float()
            out[key] = (b.float() + self.scale * total).to(b.dtype)
        return out


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
class Ties(PooledMerge):
    """TIES (Yadav et al. 2023): trim, elect a sign per entry, average the agreeing entries.

    Each Δ_i keeps its top-density magnitudes; the sign of their sum is elected per entry; the
    entries that agree with it are averaged; result b + λ·that."""

    name: ClassVar[str] = "ties"
    identity_on_one: ClassVar[bool] = False
    in_all: ClassVar[bool] = False
    density: float = field(default=0.2, metadata={"help": "fraction of each task vector kept"})
    scale: float = field(default=1.0, metadata={"help": "λ, applied to the merged task vector"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {self.density}")

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Tensors:
        out = {}
        for key, b in base.items():
            trimmed = [_trim(ck[key].float() - b.float(), self.density) for ck in checkpoints]
            sign = torch.sign(sum(trimmed, torch.zeros_like(trimmed[0])))
            total = torch.zeros_like(trimmed[0])
            count = torch.zeros_like(trimmed[0])
            for d in trimmed:
                agree = (torch.sign(d) == sign) & (d != 0)
                total += torch.where(agree, d, 0.0)
                count += agree.float()
            out[key] = (b.float() + self.scale * total / count.clamp(min=1.0)).to(b.dtype)
        return out


@dataclass(frozen=True)
class Dare(PooledMerge):
    """DARE (Yu et al. 2023): drop a fraction p of each task vector, rescale, average.

    The kept entries are rescaled by 1/(1−p); result b + λ·mean. Masks are seeded per tensor
    name and ingredient, so results do not depend on order."""

    name: ClassVar[str] = "dare"
    identity_on_one: ClassVar[bool] = False
    in_all: ClassVar[bool] = False
    p: float = field(default=0.9, metadata={"help": "drop rate, in [0, 1)"})
    seed: int = field(default=0, metadata={"help": "seed of the drop masks"})
    scale: float = field(default=1.0, metadata={"help": "λ, applied to the merged task vector"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {self.p}")

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Tensors:
        out = {}
        for key, b in base.items():
            total = torch.zeros_like(b, dtype=torch.float32)
            for i, ck in enumerate(checkpoints):
                g = torch.Generator().manual_seed(mask_seed(self.seed, key, i))
                keep = torch.rand(b.shape, generator=g) >= self.p
                total += torch.where(keep, ck[key].float() - b.float(), 0.0) / (1.0 - self.p)
            out[key] = (b.float() + self.scale * total / len(checkpoints)).to(b.dtype)
        return out


@dataclass(frozen=True)
class ModelStock(PooledMerge):
    """Model Stock (Jang et al. 2024): toward the ingredients' mean, by their task vectors' angle.

    Per tensor t = N·cos / (1 + (N−1)·cos), cos the mean pairwise cosine of the task vectors
    (clamped at 0); result t·mean(c_i) + (1−t)·b."""

    name: ClassVar[str] = "model-stock"
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
    for cls in (TaskArithmetic, Ties, Dare, ModelStock):
        register(cls)
