"""The merge contracts (re-exported by ``harness.api``): ``Merge``, ``PooledMerge``, ``Merged``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from harness.component import Component

if TYPE_CHECKING:  # torch is heavy; the core imports it only where it runs models
    import torch


@dataclass(frozen=True)
class Merged:
    """What a merge may return instead of a plain dict: the tensors plus figures about how the
    merge went (e.g. SLERP's fraction of tensors that fell back to linear), which the harness
    stores with the variant and the leaderboard shows."""

    tensors: dict[str, torch.Tensor]
    stats: dict[str, float] = field(default_factory=dict)


#: scores candidate weights (a dict like a merge's result) on held-out data of the variant's
#: train task, higher is better; given to merges whose ``scored_by()`` names a metric
Scorer = Callable[[dict[str, "torch.Tensor"]], float]

Over = Literal["stages", "seeds", "both", "tasks"]

#: draws of a merge's randomness (``Merge.replicates``) when its seed is left at the default
REPLICATES = 3


class Merge(Component):
    """A pure function of tensors: base weights + checkpoints (the *ingredients*) -> new weights.

    ``base`` holds the base value of every tensor any ingredient changed; every ingredient holds
    a value for every one of those names. By default the ingredients are the stage checkpoints
    of the variant's training run, in stage order (see ``ingredients``). Return a dict with a
    value for every name of ``base``, with the base's shape, or a ``Merged``.
    """

    #: with one checkpoint, the result is that checkpoint (checked by the contract tests)
    identity_on_one: ClassVar[bool] = True
    #: with k copies of one ingredient across tasks, the result is that ingredient (checked by
    #: the contract tests on the merge's ``over=tasks`` form)
    identity_on_copies: ClassVar[bool] = False
    #: why the result may not change when one ingredient changes (greedy soup keeps only the
    #: ingredients that help); empty: every ingredient across tasks counts (checked)
    drops_ingredients: ClassVar[str] = ""
    #: the name of the parameter that takes this merge from the base model (0) to the unmerged
    #: one (1) when its other parameters keep their defaults (``t`` for SLERP): the leaderboard
    #: plots such merges as a sweep; empty: not an interpolation
    interpolates: ClassVar[str] = ""
    #: the merge that is this one's control at the same value of ``interpolates`` (SLERP's is
    #: linear interpolation): plotted and compared beside it; empty: none
    control: ClassVar[str] = ""
    #: the harness's own "no merge" (the final checkpoint, always evaluated); plugins leave it
    #: False
    reference: ClassVar[bool] = False
    #: the name of an int parameter that only seeds the merge's randomness (DARE's mask
    #: ``seed``): left at its default, the harness merges with ``REPLICATES`` consecutive values
    #: of it and the leaderboard shows their mean (one row; its intervals resample them) and
    #: spread. Empty: the merge is deterministic
    replicates: ClassVar[str] = ""
    #: one of the merge-method ranking's comparators: ``harness run --all`` with a named
    #: merge also runs this one ``over=tasks``, so a new method is ranked against it; needs a
    #: ``PooledMerge``
    comparator: ClassVar[bool] = False
    #: parameter sets the ranking also runs across tasks (``over=tasks`` added), beside the
    #: comparator's defaults: SLERP's ``rescale=silhouette``, so that it is ranked with the same
    #: choice of scale as the tuned merges
    also_compared: ClassVar[tuple[str, ...]] = ()

    def ingredients(self) -> tuple[Over, int]:
        """Which checkpoints the harness passes, and from how many training runs (consecutive
        seeds from the variant's own): ``stages`` every stage of one run; ``seeds`` the final
        checkpoint of each run; ``both`` every stage of every run (runs in seed order);
        ``tasks`` the final checkpoint of one run per merged task (``merged_tasks``), all with
        the variant's seed, in task-name order (the runs count is ignored)."""
        return ("stages", 1)

    def merged_tasks(self) -> tuple[str, ...]:
        """With ``ingredients()`` ``tasks``: the names of the tasks whose runs are merged;
        empty (the default): the run's train tasks."""
        return ()

    def scored_by(self) -> str | None:
        """The metric the harness's ``Scorer`` uses for this merge; None: no scorer needed."""
        return None

    def merge(self, base: dict[str, torch.Tensor], checkpoints: list[dict[str, torch.Tensor]],
              score: Scorer | None = None) -> dict[str, torch.Tensor] | Merged:
        raise NotImplementedError


@dataclass(frozen=True)
class PooledMerge(Merge):
    """A merge whose ingredients the user picks with ``over=`` and ``runs=``."""

    added_params: ClassVar[tuple[str, ...]] = ("tasks", "rescale")
    over: Over = field(default="stages", metadata={
        "help": "ingredients: stages (every stage checkpoint of one training run), seeds (the "
                "final checkpoint of `runs` runs with consecutive seeds), both, or tasks (the "
                "final checkpoint of one run per task, one fine-tune per merged task)"})
    runs: int = field(default=2, metadata={
        "help": "training runs (consecutive seeds) pooled when over is seeds or both"})
    tasks: str = field(default="", metadata={
        "help": "with over=tasks: the tasks merged, joined by '+' (default: the run's train "
                "tasks)"})
    rescale: str = field(default="", metadata={
        "help": "a metric: rescale the merged task vector to the effective coefficient (of "
                "harness.tuning.SCALES) with the best held-out score in it, as the tuned "
                "merges choose theirs (e.g. rescale=silhouette); empty: as merged"})

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ValueError(f"runs must be >= 1, got {self.runs}")
        if self.tasks and self.over != "tasks":
            raise ValueError("tasks= chooses the tasks of over=tasks; add over=tasks")
        names = self.merged_tasks()
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"tasks={self.tasks!r}: expected distinct task names joined by '+'")
        if self.tasks and len(names) < 2:
            raise ValueError(f"tasks={self.tasks!r}: a cross-task merge needs two tasks or more")
        if names:  # a set: tasks=b+a is the same merge as tasks=a+b
            object.__setattr__(self, "tasks", "+".join(sorted(names)))

    def ingredients(self) -> tuple[Over, int]:
        return (self.over, 1 if self.over in ("stages", "tasks") else self.runs)

    def scored_by(self) -> str | None:
        return self.rescale or None

    def merged_tasks(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.tasks.split("+")) if self.tasks else ()
