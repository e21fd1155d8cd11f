"""What a plugin needs to merge task vectors as the built-ins do (re-exported by
``harness.api``): their canonical order of ingredients, the λ and density grids, and
``TunedMerge``, the base class whose λ (and other parameters) are chosen on held-out data; and
the scale every merge is compared at: ``coefficients`` (the effective coefficients of a merged
task vector on the task vectors it merged) and ``rescaled`` (``PooledMerge.rescale``).

A merge built on these makes the same choices as the built-in task-vector merges bit for bit:
the same ingredients in the same order, the same candidates, the same tie rule.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import TYPE_CHECKING, ClassVar

from harness.merges import Merged, PooledMerge, Scorer

if TYPE_CHECKING:  # torch is heavy; imported where a merge runs
    import torch

Tensors = dict[str, "torch.Tensor"]

#: the scale candidates of every tuned merge, in effective-coefficient units: the mean
#: least-squares coefficient of the merged task vector on the ingredients' task vectors
#: (``coefficients``). Task arithmetic at λ has coefficient λ on each; a soup of K, 1/K; TIES at
#: λ about λ/2 (its disjoint mean). So every method's scale is chosen from the same amounts of
#: the task vectors, not from λ's that mean different amounts to a sum and to a mean.
SCALES: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.25)
#: density candidates of a merge that trims each task vector (TIES)
DENSITIES: tuple[float, ...] = (0.2, 0.5)


def canonical_order(deltas: list[torch.Tensor]) -> list[torch.Tensor]:
    """Tensors sorted by their bytes: a sum (or any fold) over them is the same bit for bit
    whatever order the ingredients came in (across tasks, an order with no meaning)."""
    import torch

    return sorted(deltas, key=lambda d: hashlib.sha256(
        d.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data).hexdigest())


def task_vectors(checkpoints: list[Tensors], key: str, base: torch.Tensor
                 ) -> list[torch.Tensor]:
    """The ingredients' float32 task vectors Δ_i = c_i − b of one tensor, in
    ``canonical_order``."""
    return canonical_order([ck[key].float() - base.float() for ck in checkpoints])


def coefficients(base: Tensors, checkpoints: list[Tensors], delta: Tensors
                 ) -> tuple[list[float], float]:
    """How a merged task vector ``delta`` (per tensor, merged − base) combines its ingredients'
    task vectors Δ_i = c_i − b: the least-squares coefficients a minimising
    ‖delta − Σ a_i Δ_i‖² over every tensor together (in the ingredients' order), and the share
    of ‖delta‖² outside their span (0 for any linear combination, e.g. task arithmetic at λ:
    a_i = λ; a soup of K: a_i = 1/K). Float64; copies of one ingredient share its weight
    equally (the minimum-norm solution)."""
    import numpy as np
    import torch

    k = len(checkpoints)
    gram, proj, total = np.zeros((k, k)), np.zeros(k), 0.0
    for key, b in base.items():
        d, b64 = delta[key].double().flatten(), b.double().flatten()
        tv = torch.stack([ck[key].double().flatten() - b64 for ck in checkpoints])
        gram += (tv @ tv.T).numpy()
        proj += (tv @ d).numpy()
        total += float(d @ d)
    if total == 0.0:
        return [0.0] * k, 0.0
    a = np.linalg.lstsq(gram, proj, rcond=None)[0]
    outside = max(0.0, total - float(a @ proj)) / total  # ‖d‖² − ‖projection‖², as a share
    return [float(x) for x in a], outside


def unit(base: Tensors, checkpoints: list[Tensors], delta: Tensors) -> float:
    """The mean effective coefficient of ``delta`` (``coefficients``); 1.0 where it is not
    positive (nothing to put in units: the swept values are then λ itself). A sum's is 1 to
    about 1e-9 (float64 least squares of float32 task vectors), so task arithmetic's λ is its
    grid value to float32 rounding."""
    found, _ = coefficients(base, checkpoints, delta)
    mean = sum(found) / len(found) if found else 0.0
    return mean if mean > 1e-12 else 1.0


def rescaled(base: Tensors, checkpoints: list[Tensors], merged: Tensors | Merged,
             score: Scorer) -> Merged:
    """A merge's result with its merged task vector rescaled to each effective coefficient of
    ``SCALES`` and the best by held-out ``score`` kept (``PooledMerge.rescale``): the same
    choice of scale the tuned merges make. Stats: the merge's own, the chosen effective
    coefficient and the factor applied."""
    tensors, stats = (merged.tensors, dict(merged.stats)) if isinstance(merged, Merged) \
        else (merged, {})
    delta = {k: tensors[k].float() - b.float() for k, b in base.items()}
    one = unit(base, checkpoints, delta)
    best: tuple[float, float, Tensors] | None = None
    for g in SCALES:
        candidate = {k: (b.float() + (g / one) * delta[k]).to(b.dtype) for k, b in base.items()}
        value = score(candidate)
        if best is None or value > best[0]:  # ties keep the smaller coefficient
            best = (value, g, candidate)
        del candidate
    assert best is not None
    stats.update({"chosen effective coefficient": best[1], "rescale factor": best[1] / one,
                  "held-out score": best[0]})
    return Merged(best[2], stats)


class TunedMerge(PooledMerge):
    """A merge whose λ (and density or drop rate) can be chosen on held-out data: each of its
    ``tuned`` parameters left at None is swept over ``GRID`` and the combination with the best
    held-out score (the harness's scorer: the merged tasks' validation samples, disjoint from
    train and eval) is kept; the chosen values are reported as merge stats. Set every one to a
    number for a fixed merge.

    A swept ``scale`` takes its values in effective-coefficient units (``EFFECTIVE``, the
    default): candidate g is λ = g / the merged task vector's mean effective coefficient at
    λ = 1 (``unit``), so every tuned method chooses among the same amounts of its task vectors;
    the stats give the chosen λ (``chosen scale``) and g. A ``scale`` set by hand is λ itself.
    """

    #: parameter -> the values swept when it is None
    GRID: ClassVar[dict[str, tuple[float, ...]]] = {}
    #: a swept ``scale``'s values are effective coefficients (False: λ itself)
    EFFECTIVE: ClassVar[bool] = True

    def free(self) -> list[str]:
        return [name for name in self.GRID if getattr(self, name) is None]

    def scored_by(self) -> str | None:
        """The ``metric`` field's value (every tuned merge declares one) while any parameter
        is left to be chosen."""
        return str(getattr(self, "metric", "")) if self.free() else None

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]
        if not isinstance(getattr(self, "metric", None), str):
            raise ValueError(f"{type(self).__name__} declares no `metric` field: the metric of "
                             "the held-out score that chooses its parameters")
        if self.rescale:
            raise ValueError("rescale does not apply: this merge chooses its scale on "
                             "held-out data already (leave scale unset)")
        scale = getattr(self, "scale", None)
        if scale is not None and scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")

    def task_vector(self, deltas: list[torch.Tensor], key: str, **values: float
                    ) -> torch.Tensor:
        """The merged task vector of one tensor from its ingredients' float32 task vectors (in
        ``canonical_order``), before λ: the method itself."""
        raise NotImplementedError

    def vectors(self, base: Tensors, checkpoints: list[Tensors], values: dict[str, float]
                ) -> Tensors:
        return {key: self.task_vector(task_vectors(checkpoints, key, b), key, **values)
                for key, b in base.items()}

    @staticmethod
    def scaled(base: Tensors, vectors: Tensors, scale: float) -> Tensors:
        """b + λ·τ, per tensor, in the base's dtypes."""
        return {key: (b.float() + scale * vectors[key]).to(b.dtype) for key, b in base.items()}

    def combine(self, base: Tensors, checkpoints: list[Tensors], **values: float) -> Tensors:
        return self.scaled(base, self.vectors(base, checkpoints, values), values["scale"])

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Tensors | Merged:
        fixed = {name: getattr(self, name) for name in self.GRID if name not in self.free()}
        if not self.free():
            return self.combine(base, checkpoints, **fixed)
        if score is None:
            raise ValueError(f"{self.name} chooses {', '.join(self.free())} on held-out data "
                             "and needs the harness's scorer, or set them (e.g. scale=1)")
        best: tuple[float, dict[str, float], Tensors] | None = None
        # λ only scales the merged task vector: it is computed once per value of the others
        vectors: dict[tuple[tuple[str, float], ...], tuple[Tensors, float]] = {}
        in_units = self.EFFECTIVE and "scale" in self.free()
        for combo in itertools.product(*(self.GRID[n] for n in self.free())):
            values = {**fixed, **dict(zip(self.free(), combo, strict=True))}
            rest = tuple(sorted((k, v) for k, v in values.items() if k != "scale"))
            if rest not in vectors:
                found = self.vectors(base, checkpoints, values)
                vectors[rest] = (found, unit(base, checkpoints, found) if in_units else 1.0)
            found, one = vectors[rest]
            chosen = {**values, "scale": values["scale"] / one}
            candidate = self.scaled(base, found, chosen["scale"])
            value = score(candidate)
            if best is None or value > best[0]:  # ties keep the earlier (smaller) value
                best = (value, {**chosen, "effective": values["scale"]}, candidate)
            del candidate  # at most two candidates in memory at once, beside the vectors
        assert best is not None
        stats = {f"chosen {n}": float(best[1][n]) for n in self.free()}
        if in_units:
            stats["chosen effective coefficient"] = float(best[1]["effective"])
        return Merged(best[2], {**stats, "held-out score": best[0]})
