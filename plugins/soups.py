"""Built-in merges that average ingredients: ``soup`` and ``greedy-soup`` (see
``merge_math`` for the notation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from harness.api import Merged, PooledMerge, Scorer
from harness.hookspecs import Register, hookimpl
from harness.plugins.merge_math import Tensors, mean


@dataclass(frozen=True)
class Soup(PooledMerge):
    """Uniform soup (Wortsman et al. 2022): the mean of the ingredients."""

    name: ClassVar[str] = "soup"
    identity_on_copies: ClassVar[bool] = True
    comparator: ClassVar[bool] = True

    def merge(self, base: Tensors, checkpoints: list[Tensors],
              score: Scorer | None = None) -> Merged:
        out = {k: mean([ck[k] for ck in checkpoints]).to(b.dtype) for k, b in base.items()}
        return Merged(out, {"ingredients": len(checkpoints)})


@dataclass(frozen=True)
class GreedySoup(PooledMerge):
    """Greedy soup: add ingredients best first while the held-out on-task score does not drop.

    The harness scores on a sample of the train task disjoint from its train and eval samples."""

    name: ClassVar[str] = "greedy-soup"
    identity_on_copies: ClassVar[bool] = True
    drops_ingredients: ClassVar[str] = ("it keeps only the ingredients that do not lower the "
                                        "held-out score")
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
            candidate = {k: mean([checkpoints[j][k] for j in [*kept, i]]).to(b.dtype)
                         for k, b in base.items()}
            value = score(candidate)
            if value >= best:
                kept, best, soup = [*kept, i], value, candidate
            del candidate  # at most two soups in memory at once
        return Merged(soup, {"ingredients": len(checkpoints), "kept": len(kept),
                            "held-out score": best})


@hookimpl
def register_merges(register: Register) -> None:
    register(Soup)
    register(GreedySoup)
