"""Built-in merges that interpolate from the base toward the unmerged model: ``linear``
(WiSE-FT) and ``slerp``, whose control it is (see ``merge_math`` for the notation)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from harness.api import Merge, Merged, PooledMerge, Scorer
from harness.hookspecs import Register, hookimpl
from harness.plugins.merge_math import Tensors, check_unit

#: |cos| above this and SLERP falls back to linear interpolation (mergekit's DOT_THRESHOLD)
PARALLEL = 0.9995


@dataclass(frozen=True)
class Linear(Merge):
    """WiSE-FT / LERP toward the base: b + t·Δ_N (the control for every SLERP figure); with
    between=checkpoints, from the first stage checkpoint to the last: (1 − t)·θ_1 + t·θ_N, the
    control of SLERP between the same two (in weights and in task vectors alike, as linear
    interpolation of two task vectors added to the base is that of the two checkpoints)."""

    name: ClassVar[str] = "linear"
    identity_on_one: ClassVar[bool] = False
    interpolates: ClassVar[str] = "t"
    added_params: ClassVar[tuple[str, ...]] = ("between",)
    #: the default grid runs only the control of its stage SLERP (``Slerp.also_in_all``): the
    #: base-final linear is the base-final SLERP on every SmolLM2 tensor (its fallback), and
    #: leaving it to ``--merge linear`` keeps the grid's FLOP floor within its budget (#32)
    in_all: ClassVar[bool] = False
    also_in_all: ClassVar[tuple[str, ...]] = ("between=checkpoints",)
    t: float = field(default=0.5, metadata={"help": "0 = first endpoint, 1 = second"})
    between: Literal["base-final", "checkpoints"] = field(default="base-final", metadata={
        "help": "endpoints: base-final (the base and the final checkpoint) or checkpoints (the "
                "first and the last stage checkpoint), as SLERP's"})

    def __post_init__(self) -> None:
        check_unit("t", self.t)

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Tensors:
        first = checkpoints[0] if self.between == "checkpoints" else base
        # the very expression SLERP falls back to, so the two agree bit for bit there
        return {k: ((1 - self.t) * first[k].double() + self.t * checkpoints[-1][k].double()
                    ).to(b.dtype) for k, b in base.items()}


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


def spherical_mean(vectors: list[torch.Tensor], steps: int = 50
                   ) -> tuple[torch.Tensor, bool, float]:
    """SLERP generalised to k inputs with equal weights: the Karcher (Fréchet) mean of their
    directions on the unit sphere, found by fixed-point iterations from the normalised
    arithmetic mean, scaled by the mean of their norms (norms interpolated separately). For two
    inputs of equal norm it is ``slerp(a, b, 0.5)``. Falls back to the plain mean where every
    pair is nearly parallel (|cos| > ``PARALLEL``) or an input is zero. The result does not
    depend on the inputs' order beyond float rounding. Returns (result, fell back, mean pairwise
    angle in radians)."""
    shape = vectors[0].shape
    xs = [v.double().flatten() for v in vectors]
    norms = [torch.linalg.vector_norm(x) for x in xs]
    plain = (sum(xs[1:], xs[0].clone()) / len(xs)).reshape(shape)
    if any(n == 0 for n in norms):
        return plain, True, 0.0
    units = [x / n for x, n in zip(xs, norms, strict=True)]
    cosines = [float(torch.clamp(torch.dot(units[i], units[j]), -1.0, 1.0))
               for i in range(len(units)) for j in range(i + 1, len(units))]
    angle = sum(math.acos(c) for c in cosines) / len(cosines) if cosines else 0.0
    if all(abs(c) > PARALLEL for c in cosines):
        return plain, True, angle
    start = sum(units[1:], units[0].clone())
    size = torch.linalg.vector_norm(start)
    if size < 1e-12:  # antipodal inputs: no unique mean
        return plain, True, angle
    gram = torch.eye(len(units), dtype=torch.float64)
    pairs = iter(cosines)
    for i in range(len(units)):
        for j in range(i + 1, len(units)):
            gram[i, j] = gram[j, i] = next(pairs)
    x = None
    if float(torch.linalg.eigvalsh(gram)[0]) > SPAN_CONDITION:
        x = _mean_in_span(units, gram, float(size), steps)
    if x is None:  # inputs nearly linearly dependent: over the whole tensor
        x = _mean_in_full(units, start / size, steps)
    radius = sum(float(n) for n in norms) / len(norms)
    return (radius * x).reshape(shape), False, angle


#: the smallest eigenvalue of the inputs' cosine matrix above which ``spherical_mean`` iterates
#: on coefficients: below it (inputs nearly linearly dependent, e.g. three at 120° in a plane)
#: coefficients would cancel and lose the digits an iteration over the tensor keeps
SPAN_CONDITION = 1e-6


def _mean_in_span(units: list[torch.Tensor], gram: torch.Tensor, size: float, steps: int
                  ) -> torch.Tensor | None:
    """The Karcher mean of unit ``units`` (cosine matrix ``gram``) by iterating on the k
    coefficients of the iterate in their span, the tensor formed once at the end; the same
    fixed point and steps as ``_mean_in_full``, k x k work per step instead of k passes over
    the tensor. None when the result is not a unit vector to 1e-6 (lost digits)."""
    k = len(units)

    def length(c: torch.Tensor) -> float:  # of the vector with coefficients c
        return float(torch.sqrt(torch.clamp(c @ gram @ c, min=0.0)))

    c = torch.ones(k, dtype=torch.float64) / size  # the normalised sum, as in _mean_in_full
    for _ in range(steps):
        cos = torch.clamp(gram @ c, -1.0, 1.0)  # of the iterate with each input
        theta = torch.arccos(cos)
        weight = torch.where(theta > 1e-12, theta / torch.sin(theta), 0.0)
        # the mean of the log maps at the iterate
        step = (weight[:, None] * (torch.eye(k, dtype=torch.float64) - cos[:, None] * c)
                ).sum(0) / k
        size = length(step)
        if size < 1e-12:
            break
        c = math.cos(size) * c + (math.sin(size) / size) * step  # the exponential map
        c = c / length(c)
    x = sum((float(ci) * u for ci, u in zip(c, units, strict=True)), torch.zeros_like(units[0]))
    norm = float(torch.linalg.vector_norm(x))
    return x / norm if math.isfinite(norm) and abs(norm - 1.0) < 1e-6 else None


def _mean_in_full(units: list[torch.Tensor], x: torch.Tensor, steps: int) -> torch.Tensor:
    """The Karcher mean of unit ``units`` by fixed-point iterations over the whole tensor from
    the unit vector ``x``."""
    for _ in range(steps):
        step = torch.zeros_like(x)
        for u in units:  # the mean of the log maps at x
            cos = float(torch.clamp(torch.dot(x, u), -1.0, 1.0))
            theta = math.acos(cos)
            if theta > 1e-12:
                step += (theta / math.sin(theta)) * (u - cos * x)
        step /= len(units)
        size = float(torch.linalg.vector_norm(step))
        if size < 1e-12:
            break
        x = math.cos(size) * x + (math.sin(size) / size) * step  # the exponential map
        x = x / torch.linalg.vector_norm(x)
    return x


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
        check_unit("every schedule anchor", value)
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
    """SLERP per tensor, |cos| > 0.9995 falling back to linear; reports how many fell back.

    With over=tasks (k task-specific fine-tunes), the k-way generalisation: the base plus the
    spherical (Karcher) mean of the k task vectors with equal weights, their norms averaged
    separately (``spherical_mean``); for k = 2 task vectors of equal norm that is SLERP of
    the two at t=0.5."""

    name: ClassVar[str] = "slerp"
    identity_on_copies: ClassVar[bool] = True
    comparator: ClassVar[bool] = True
    identity_on_one: ClassVar[bool] = False
    interpolates: ClassVar[str] = "t"  # with between=base-final, its default
    control: ClassVar[str] = Linear.name
    #: the default grid runs, beside the base-final SLERP (which falls back to linear on nearly
    #: every tensor, the two endpoints being close to parallel), the paper's SLERP "across
    #: checkpoints or stages": of the task vectors of a run's first and last stage checkpoints
    also_in_all: ClassVar[tuple[str, ...]] = ("between=checkpoints,space=task-vectors",)
    #: ranked across tasks with the same choice of scale as the tuned merges, beside the paper's
    also_compared: ClassVar[tuple[str, ...]] = ("rescale=silhouette",)
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
        check_unit("t", self.t)
        if self.over == "tasks":
            if self.t != 0.5 or self.between != "base-final" or self.space != "weights" \
                    or self.schedule:
                raise ValueError("over=tasks takes the spherical mean of the task vectors "
                                 "(equal weights); t, between, space and schedule do not apply")
            return
        if self.space == "task-vectors" and self.between == "base-final":
            raise ValueError("space=task-vectors needs between=checkpoints (the base's own task "
                             "vector is zero, so there is no angle)")
        if self.schedule:
            parse_schedule(self.schedule)

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Merged:
        if self.over == "tasks":
            return self._across(base, checkpoints)
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

    def _across(self, base: Tensors, checkpoints: list[Tensors]) -> Merged:
        """over=tasks: b + the spherical mean of the task vectors (``spherical_mean``)."""
        out: Tensors = {}
        fell_back, angles = 0, []
        for key, b in base.items():
            delta, linear, theta = spherical_mean([ck[key].double() - b.double()
                                                   for ck in checkpoints])
            out[key] = (b.double() + delta).to(b.dtype)
            fell_back += int(linear)
            angles.append(math.degrees(theta))
        n = len(base)
        return Merged(out, {"linear fallback": fell_back / n if n else 0.0, "tensors": n,
                            "mean angle (deg)": sum(angles) / n if n else 0.0})


@hookimpl
def register_merges(register: Register) -> None:
    register(Slerp)
    register(Linear)
