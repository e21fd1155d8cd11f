"""Multi-task merges that mask task vectors entry by entry: ``breadcrumbs``,
``breadcrumbs-ties``, ``della``, ``consensus-ta`` and ``consensus-ties`` (see ``merge_math``
for the notation; the spectral ones are in ``spectral_merges``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from harness.hookspecs import Register, hookimpl
from harness.plugins.task_vectors import DareTies, _elect, _trim, mask_seed
from harness.tuning import SCALES, TunedMerge


def _band(delta: torch.Tensor, top: float, bottom: float) -> torch.Tensor:
    """Zero the ⌊top·n⌋ largest and the ⌊bottom·n⌋ smallest magnitudes of a tensor of n
    entries (entries tied with a threshold go with it)."""
    n = delta.numel()
    n_top, n_bottom = int(top * n + 1e-9), int(bottom * n + 1e-9)
    if not n_top and not n_bottom:
        return delta
    magnitude = delta.abs()
    kth = [k for k in (n_bottom - 1, n - n_top) if 0 <= k < n]
    ordered = np.partition(magnitude.detach().cpu().flatten().numpy(), kth)
    keep = torch.ones_like(delta, dtype=torch.bool)
    if n_top:
        keep &= magnitude < float(ordered[n - n_top])
    if n_bottom:
        keep &= magnitude > float(ordered[n_bottom - 1])
    return torch.where(keep, delta, 0.0)


@dataclass(frozen=True)
class Breadcrumbs(TunedMerge):
    """Model Breadcrumbs (Davari & Belilovsky 2023): drop outliers and noise, sum the rest.

    arXiv 2312.06795. Per tensor and task vector, the largest-magnitude fraction ``beta``
    (outliers) and the smallest-magnitude fraction ``gamma`` (noise) are zeroed, the middle
    band kept; the masked task vectors are summed; result b + λ·Σ. β = γ = 0 is task
    arithmetic. Ranked over the whole tensor (one layer's weight, as the paper describes; the
    authors' code ranks within rows). Defaults: the starting point of the authors' released
    search (rezazzr/breadcrumbs, ``middle_keep``: drop the top 0.6%, keep the next 15%, so
    γ = 1 − 0.15 − 0.006). mergekit names these differently (its ``gamma`` is the outliers,
    ``density`` the kept share). λ is chosen on held-out data in effective-coefficient units
    from ``SCALES``, as every tuned merge (the authors search λ in 0.01–1), unless ``scale``
    is set."""

    name: ClassVar[str] = "breadcrumbs"
    version: ClassVar[str] = "1"
    identity_on_one: ClassVar[bool] = False
    in_all: ClassVar[bool] = False
    comparator: ClassVar[bool] = True
    examples: ClassVar[tuple[str, ...]] = ("scale=1", "scale=1,beta=0,gamma=0")
    GRID: ClassVar[dict[str, tuple[float, ...]]] = {"scale": SCALES}
    beta: float = field(default=0.006, metadata={
        "help": "fraction of each task vector's largest magnitudes zeroed (outliers)"})
    gamma: float = field(default=0.844, metadata={
        "help": "fraction of each task vector's smallest magnitudes zeroed"})
    scale: float | None = field(default=None, metadata={
        "help": "λ, applied to the sum of the masked task vectors; none: chosen on held-out "
                "data"})
    metric: str = field(default="silhouette", metadata={
        "help": "metric of the held-out score that chooses λ"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta < 0 or self.gamma < 0 or self.beta + self.gamma >= 1:
            raise ValueError(f"beta and gamma must be >= 0 with beta + gamma < 1, got "
                             f"{self.beta} and {self.gamma}")

    def masked(self, deltas: list[torch.Tensor]) -> list[torch.Tensor]:
        return [_band(d, self.beta, self.gamma) for d in deltas]

    def task_vector(self, deltas: list[torch.Tensor], key: str, **values: float
                    ) -> torch.Tensor:
        return sum(self.masked(deltas), torch.zeros_like(deltas[0]))


@dataclass(frozen=True)
class BreadcrumbsTies(Breadcrumbs):
    """Breadcrumbs-TIES: Model Breadcrumbs' masks, then TIES's elect and disjoint mean.

    As mergekit's ``breadcrumbs_ties``: result b + λ·that. β = γ = 0 is TIES at density 1. λ is
    chosen as ``breadcrumbs``'s unless set."""

    name: ClassVar[str] = "breadcrumbs-ties"
    comparator: ClassVar[bool] = False  # breadcrumbs' masks, as TIES: one of them ranks

    def task_vector(self, deltas: list[torch.Tensor], key: str, **values: float
                    ) -> torch.Tensor:
        return _elect(self.masked(deltas))


@dataclass(frozen=True)
class Della(DareTies):
    """DELLA (Deep et al. 2024): DARE-TIES whose drop rate falls with an entry's magnitude.

    DELLA-Merging with MagPrune, arXiv 2406.11617. Per task vector, entries are ranked by
    magnitude within their row (the tensor as rows of its first dimension; a 1-D tensor is one
    row), the paper's default and its authors' ``rank_magnitude_sampling``: every row then
    keeps 1 − p of its entries on average, whatever its scale. Drop probabilities spread
    linearly by rank over [p − ε/2, p + ε/2], the largest magnitude getting the lowest. ε is
    the paper's full window width (its authors' code passes ε/2 to mergekit, whose
    ``epsilon`` is the half-width); probabilities below 0 are clamped to 0, and p + ε/2 < 1 is
    required. Survivors are rescaled by 1/(1 − pᵢ); then TIES's sign election and disjoint
    mean; result b + λ·that, λ chosen on held-out data as ``dare-ties``'s unless set. Masks are
    drawn exactly as DARE's (the same generator and ``mask_seed``), so ε = 0 is ``dare-ties``
    at the same p, seed and λ, bit for bit. Defaults: p = 0.9 as ``dare``, ε = 0.1 (drop
    probabilities 0.85–0.95; the paper tunes both per experiment)."""

    name: ClassVar[str] = "della"
    version: ClassVar[str] = "1"
    #: not in the default ranking, one ``--merge della:over=tasks`` away: at ε = 0 it is
    #: ``dare-ties``, and at ε = 0.1 it ranked beside it (+0.002 mean retention, Holm p = 1.000,
    #: on the leaderboard of 7aa8855) for about a tenth of the cross-task track's time
    comparator: ClassVar[bool] = False
    examples: ClassVar[tuple[str, ...]] = ("scale=1", "scale=1,epsilon=0,p=0.5")
    epsilon: float = field(default=0.1, metadata={
        "help": "width of the window of drop probabilities around p (the paper's ε)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epsilon < 0 or self.p + self.epsilon / 2 >= 1:
            raise ValueError(f"epsilon must be >= 0 with p + epsilon/2 < 1, got epsilon="
                             f"{self.epsilon}, p={self.p}")

    def probabilities(self, delta: torch.Tensor) -> torch.Tensor:
        """Each entry's drop probability (float64), by its magnitude rank in its row."""
        rows = delta.reshape(delta.shape[0] if delta.ndim > 1 else 1, -1)
        n = rows.shape[1]
        order = torch.argsort(rows.abs(), dim=1, stable=True)  # ascending magnitude
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(n).expand_as(order).contiguous())
        share = rank.double() / (n - 1) if n > 1 else torch.full(rank.shape, 0.5,
                                                                   dtype=torch.float64)
        probs = self.p + self.epsilon / 2 - self.epsilon * share
        return probs.clamp(min=0.0).reshape(delta.shape)

    def dropped(self, deltas: list[torch.Tensor], key: str) -> list[torch.Tensor]:
        out = []
        for d in deltas:
            g = torch.Generator().manual_seed(mask_seed(self.seed, key, d))
            probs = self.probabilities(d)
            keep = torch.rand(d.shape, generator=g) >= probs.float()
            out.append(torch.where(keep, d, 0.0) / (1.0 - probs).float())
        return out


@dataclass(frozen=True)
class ConsensusTA(TunedMerge):
    """Consensus merging (Wang et al. 2024): task arithmetic where k TALL masks agree.

    "Localizing Task Information for Improved Model Merging and Compression", arXiv
    2405.07813. Per tensor, τ_MTL = Σ Δ_t; task t's TALL mask keeps the entries where
    |Δ_t| > λ_t·|τ_MTL − Δ_t| (strict, as the authors' code: a task that left an entry
    unchanged does not claim it); the consensus mask keeps the entries at least ``k`` masks
    claim (k = 2, the paper's default, drops "selfish" and "catastrophic" weights); result
    b + α·(mask ⊙ τ_MTL). k = 0 is task arithmetic. The paper picks λ_t per task on that
    task's validation data from 0.2–0.6; here one ``mask_lambda`` for all, 0.4 (the middle of
    that range). TALL masks alone (one mask per task, applied at inference) need the task's
    identity with every input, so they are not a merge of one model and not here. α is chosen
    on held-out data in effective-coefficient units from ``SCALES``, as every tuned merge,
    unless ``scale`` is set."""

    name: ClassVar[str] = "consensus-ta"
    version: ClassVar[str] = "1"
    identity_on_one: ClassVar[bool] = False
    in_all: ClassVar[bool] = False
    examples: ClassVar[tuple[str, ...]] = ("scale=1", "scale=1,k=0")
    GRID: ClassVar[dict[str, tuple[float, ...]]] = {"scale": SCALES}
    k: int = field(default=2, metadata={
        "help": "least number of task masks that must claim an entry for it to be kept"})
    mask_lambda: float = field(default=0.4, metadata={
        "help": "λ_t of the TALL masks: |Δ_t| > λ_t·|τ_MTL − Δ_t|"})
    scale: float | None = field(default=None, metadata={
        "help": "α, applied to the masked multi-task vector; none: chosen on held-out data"})
    metric: str = field(default="silhouette", metadata={
        "help": "metric of the held-out score that chooses α"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 0 or self.mask_lambda < 0:
            raise ValueError(f"k and mask_lambda must be >= 0, got {self.k} and "
                             f"{self.mask_lambda}")

    def multi_task(self, deltas: list[torch.Tensor], values: dict[str, float]) -> torch.Tensor:
        return sum(deltas, torch.zeros_like(deltas[0]))

    def task_vector(self, deltas: list[torch.Tensor], key: str, **values: float
                    ) -> torch.Tensor:
        merged = self.multi_task(deltas, values)
        if self.k == 0:
            return merged
        votes = torch.zeros(merged.shape, dtype=torch.int32, device=merged.device)
        for d in deltas:
            votes += (d.abs() > self.mask_lambda * (merged - d).abs()).int()
        return torch.where(votes >= self.k, merged, 0.0)


@dataclass(frozen=True)
class ConsensusTies(ConsensusTA):
    """Consensus merging over TIES: TIES's merged vector where k TALL masks agree.

    As ``consensus-ta`` with τ_MTL the TIES merged vector (trim to ``density``, elect,
    disjoint mean: the harness's ``ties``), which the TALL masks are built against too (the
    masks compare the untrimmed Δ_t with it, as the authors' code). k = 0 is TIES. The
    authors' code uses TIES's disjoint *sum* here; the disjoint mean keeps k = 0 equal to
    ``ties``. The density is fixed (default 0.2, the paper's) so that only α is swept (five
    candidates, each an embedding pass in a run); α as ``consensus-ta``'s."""

    name: ClassVar[str] = "consensus-ties"
    comparator: ClassVar[bool] = True
    examples: ClassVar[tuple[str, ...]] = ("scale=1", "scale=1,density=1,k=0")
    density: float = field(default=0.2, metadata={
        "help": "fraction of each task vector TIES keeps"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {self.density}")

    def multi_task(self, deltas: list[torch.Tensor], values: dict[str, float]) -> torch.Tensor:
        return _elect([_trim(d, self.density) for d in deltas])


@hookimpl
def register_merges(register: Register) -> None:
    for cls in (Breadcrumbs, BreadcrumbsTies, Della, ConsensusTA, ConsensusTies):
        register(cls)
