"""Built-in merges: pure functions of (base tensors, ingredient checkpoints, parameters).

Definitions follow ../shared/REFERENCE.md. Notation: ``b`` the base value of a tensor, ``c_1 ..
c_N`` its value in the N ingredients (by default the stage checkpoints of one training run;
``over=seeds`` pools the final checkpoints of several runs), ``Δ_i = c_i − b`` the task vectors.
Every merge goes tensor by tensor (one tensor's temporaries at a time, never several copies of
the model) and computes in float32 (SLERP in float64), returning the base's dtypes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch

from harness.api import Merge, Merged, PooledMerge, Scorer
from harness.hookspecs import hookimpl
from harness.params import content_hash

Tensors = dict[str, torch.Tensor]

#: |cos| above this and SLERP falls back to linear interpolation (mergekit's DOT_THRESHOLD)
PARALLEL = 0.9995


def _unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _mean(tensors: list[torch.Tensor]) -> torch.Tensor:
    total = tensors[0].float().clone()
    for x in tensors[1:]:
        total += x.float()
    return total / len(tensors)


# ---------------------------------------------------------------------------------- averages


@dataclass(frozen=True)
class NoMerge(Merge):
    """No merge: the final checkpoint's weights."""

    name: ClassVar[str] = "none"

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Tensors:
        return dict(checkpoints[-1])


@dataclass(frozen=True)
class Soup(PooledMerge):
    """Uniform soup (Wortsman et al. 2022): the mean of the ingredients."""

    name: ClassVar[str] = "soup"

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Merged:
        out = {k: _mean([ck[k] for ck in checkpoints]).to(b.dtype) for k, b in base.items()}
        return Merged(out, {"ingredients": len(checkpoints)})


@dataclass(frozen=True)
class GreedySoup(PooledMerge):
    """Greedy soup: add ingredients best first while the held-out on-task score does not drop.

    The harness scores on a sample of the train task disjoint from its train and eval samples."""

    name: ClassVar[str] = "greedy-soup"
    in_all: ClassVar[bool] = False
    metric: str = field(default="silhouette", metadata={
        "help": "metric of the held-out on-task score (any registered metric)"})

    def scored_by(self) -> str | None:
        return self.metric

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Merged:
        if len(checkpoints) == 1:
            return Merged(dict(checkpoints[0]), {"ingredients": 1, "kept": 1})
        if score is None:
            raise ValueError("greedy-soup needs the harness's scorer (merge(..., score=...))")
        scores = [score(ck) for ck in checkpoints]
        # best first; ties keep the later (longer-trained) checkpoint first
        order = sorted(range(len(checkpoints)), key=lambda i: (-scores[i], -i))
        kept, best, soup = [order[0]], scores[order[0]], dict(checkpoints[order[0]])
        for i in order[1:]:
            candidate = {k: _mean([checkpoints[j][k] for j in [*kept, i]]).to(b.dtype)
                         for k, b in base.items()}
            value = score(candidate)
            if value >= best:
                kept, best, soup = [*kept, i], value, candidate
            del candidate  # at most two soups in memory at once
        return Merged(soup, {"ingredients": len(checkpoints), "kept": len(kept),
                            "held-out score": best})


@dataclass(frozen=True)
class Linear(Merge):
    """WiSE-FT / LERP toward the base: b + t·Δ_N (the control for every SLERP figure)."""

    name: ClassVar[str] = "linear"
    identity_on_one: ClassVar[bool] = False
    t: float = field(default=0.5, metadata={"help": "0 = base, 1 = final checkpoint"})

    def __post_init__(self) -> None:
        _unit("t", self.t)

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Tensors:
        # the very expression SLERP falls back to, so the two agree bit for bit there
        return {k: ((1 - self.t) * b.double() + self.t * checkpoints[-1][k].double()).to(b.dtype)
                for k, b in base.items()}


# ------------------------------------------------------------------------------------- SLERP


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> tuple[torch.Tensor, bool, float]:
    """Spherical interpolation of two tensors (flattened): ``t = 0`` gives ``a``, ``t = 1``
    gives ``b``. The angle comes from normalised copies; its weights apply to the unnormalised
    tensors. Returns (result, fell back to linear, angle in radians)."""
    x, y = a.double().flatten(), b.double().flatten()
    nx, ny = torch.linalg.vector_norm(x), torch.linalg.vector_norm(y)
    if nx == 0 or ny == 0:
        return ((1 - t) * x + t * y).reshape(a.shape), True, 0.0
    cos = float(torch.clamp(torch.dot(x, y) / (nx * ny), -1.0, 1.0))
    theta = math.acos(cos)
    if abs(cos) > PARALLEL:
        return ((1 - t) * x + t * y).reshape(a.shape), True, theta
    s = math.sin(theta)
    out = (math.sin((1 - t) * theta) / s) * x + (math.sin(t * theta) / s) * y
    return out.reshape(a.shape), False, theta


_LAYER = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")


def layer_of(key: str) -> int | None:
    """The layer index in a tensor name (``model.layers.12.self_attn...`` -> 12), if any."""
    found = _LAYER.search(key)
    return int(found.group(1)) if found else None


def parse_schedule(text: str) -> list[float]:
    anchors = []
    for piece in text.split("+"):
        try:
            anchors.append(float(piece))
        except ValueError:
            raise ValueError(f"schedule {text!r}: {piece!r} is not a number; write anchors "
                             "joined by '+', e.g. 0+0.5+1") from None
    for value in anchors:
        _unit("every schedule anchor", value)
    return anchors


def scheduled_t(anchors: list[float], layer: int, depth: int) -> float:
    """mergekit's gradient: anchors spread evenly from the first layer to the last,
    linearly interpolated in between."""
    if len(anchors) == 1 or depth <= 1:
        return anchors[0]
    pos = layer / (depth - 1) * (len(anchors) - 1)
    i = min(int(pos), len(anchors) - 2)
    return anchors[i] + (pos - i) * (anchors[i + 1] - anchors[i])


@dataclass(frozen=True)
class Slerp(PooledMerge):
    """SLERP per tensor, |cos| > 0.9995 falling back to linear; reports how many fell back."""

    name: ClassVar[str] = "slerp"
    identity_on_one: ClassVar[bool] = False
    t: float = field(default=0.5, metadata={"help": "0 = first endpoint, 1 = second"})
    between: Literal["base-final", "checkpoints"] = field(default="base-final", metadata={
        "help": "endpoints: base-final (base and the final checkpoint) or checkpoints (the first "
                "and the last ingredient: two stages, or two seeds with over=seeds)"})
    space: Literal["weights", "task-vectors"] = field(default="weights", metadata={
        "help": "weights, or task-vectors (SLERP of the two deltas from the base, added back; "
                "needs between=checkpoints)"})
    schedule: str = field(default="", metadata={
        "help": "per-layer t: anchors joined by '+' spread over depth (e.g. 0+0.5+1); tensors "
                "outside numbered layers use t"})

    def __post_init__(self) -> None:
        super().__post_init__()
        _unit("t", self.t)
        if self.space == "task-vectors" and self.between == "base-final":
            raise ValueError("space=task-vectors needs between=checkpoints (the base's own task "
                             "vector is zero, so there is no angle)")
        if self.schedule:
            parse_schedule(self.schedule)

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Merged:
        first = checkpoints[0] if self.between == "checkpoints" else base
        last = checkpoints[-1]
        anchors = parse_schedule(self.schedule) if self.schedule else []
        layers = {k: layer_of(k) for k in base}
        depth = max((i for i in layers.values() if i is not None), default=-1) + 1
        out: Tensors = {}
        fell_back, angles = 0, []
        for key, b in base.items():
            layer = layers[key]
            t = scheduled_t(anchors, layer, depth) if anchors and layer is not None else self.t
            if self.space == "task-vectors":
                delta, linear, theta = slerp(first[key].double() - b.double(),
                                             last[key].double() - b.double(), t)
                out[key] = (b.double() + delta).to(b.dtype)  # one tensor at a time
            else:
                merged, linear, theta = slerp(first[key], last[key], t)
                out[key] = merged.to(b.dtype)
            fell_back += int(linear)
            angles.append(math.degrees(theta))
        n = len(base)
        stats = {"linear fallback": fell_back / n if n else 0.0, "tensors": n,
                 "mean angle (deg)": sum(angles) / n if n else 0.0}
        return Merged(out, stats)


# -------------------------------------------------------------------------- task vectors


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
                g = torch.Generator().manual_seed(int(content_hash("dare", self.seed, key, i)[:12],
                                                      16))
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
            mean = _mean([ck[key] for ck in checkpoints])
            out[key] = (t * mean + (1 - t) * b.float()).to(b.dtype)
        stats = {"ingredients": n, "mean t": sum(ts) / len(ts) if ts else 1.0}
        return Merged(out, stats)


@hookimpl
def register_merges(register):  # type: ignore[no-untyped-def]
    for cls in (NoMerge, Soup, GreedySoup, Slerp, Linear, TaskArithmetic, Ties, Dare,
                ModelStock):
        register(cls)
