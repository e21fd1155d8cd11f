"""Merges that work on the singular value decomposition of each weight matrix's task vectors:
``tsv`` (TSV-M) and ``iso-c`` (see ``merge_math`` for the notation).

Both treat a tensor spectrally only where ``spectral`` says so: a 2-D weight that is not a
token or position embedding table (a lookup table, not a linear map: SVD directions mix
unrelated tokens). Every other tensor gets the papers' own fallback, the **mean** of the task
vectors (both papers' public code averages the tensors it does not decompose), before λ.

SVDs run in float64 and count only singular values above ``tolerance`` (numpy's
``matrix_rank`` rule with float32's epsilon, the precision of the task vectors), so a low-rank
delta (a merged LoRA) brings in no directions from rounding noise. That rule cannot tell a
LoRA folded into bfloat16 weights from a full-rank update: its rounding noise is about 2⁻⁹ of
the base weights, far above the tolerance, and stays in the spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from harness.hookspecs import Register, hookimpl
from harness.tuning import SCALES, TunedMerge

#: dotted name parts of embedding tables that do not say "embed": the ``scratch`` encoder's
#: ``tokens.weight`` and ``positions.weight``, GPT-2's ``wte`` and ``wpe``
EMBEDDING_PARTS = frozenset({"tokens", "positions", "wte", "wpe"})
EPS32 = float(torch.finfo(torch.float32).eps)


def is_embedding(key: str) -> bool:
    """A token, position or token-type embedding table, by name: a part of the dotted name
    contains "embed" (BERT's ``embeddings.word_embeddings.weight``, LLaMA's
    ``embed_tokens.weight``) or is one of ``EMBEDDING_PARTS``."""
    parts = key.lower().split(".")
    return any("embed" in part or part in EMBEDDING_PARTS for part in parts)


def spectral(key: str, tensor: torch.Tensor) -> bool:
    """Whether the spectral merges decompose this tensor: a 2-D weight matrix that is not an
    embedding table."""
    return tensor.ndim == 2 and not is_embedding(key)


def tolerance(s: torch.Tensor, shape: tuple[int, ...]) -> float:
    """The rank tolerance of a spectrum ``s`` (descending) of a matrix of ``shape``:
    s.max · max(m, n) · float32's epsilon (numpy's ``matrix_rank`` rule)."""
    return float(s[0]) * max(shape) * EPS32 if s.numel() else 0.0


def truncated_svd(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """U, S, Vᵀ in float64, keeping only the singular values above ``tolerance`` (none for an
    all-zero matrix)."""
    u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    rank = int((s > tolerance(s, tuple(matrix.shape))).sum()) if s.numel() and s[0] > 0 else 0
    return u[:, :rank], s[:rank], vh[:rank]


def polar(matrix: torch.Tensor) -> torch.Tensor:
    """The orthogonal polar factor P·Qᵀ of ``matrix`` = P Σ Qᵀ (the nearest matrix with
    orthonormal columns, as in Procrustes), over the directions above ``tolerance``."""
    p, _, qh = truncated_svd(matrix)
    return p @ qh


def mean(deltas: list[torch.Tensor]) -> torch.Tensor:
    return sum(deltas, torch.zeros_like(deltas[0])) / len(deltas)


@dataclass(frozen=True)
class Tsv(TunedMerge):
    """TSV-M (Gargiulo et al. 2025): tasks' top singular vectors, orthogonalised, per matrix.

    Task singular vectors merge, arXiv 2412.00081. Per weight matrix (``spectral``), each of
    the T task vectors is decomposed, Δ_t = U_t S_t V_tᵀ, and keeps its top ⌊min(m, n)/T⌋
    singular triplets (at least one; fewer where its rank above the tolerance is lower). The
    kept U's are put side by side, as are the V's and the singular values; each stack is
    replaced by its orthogonal polar factor (U = PΣQᵀ → PQᵀ, over the directions above the
    tolerance, so two equal task vectors are averaged, not padded with arbitrary directions),
    which removes the overlap between tasks' subspaces; merged = U⊥ diag(S) V⊥ᵀ. Other
    tensors (not 2-D, or embedding tables): the mean of the task vectors, as the paper's code.
    Result b + α·merged, α chosen on held-out data in effective-coefficient units from
    ``SCALES``, as every tuned merge (the paper's code sweeps α in 0.15–3), unless set.
    With one task every triplet is kept: task arithmetic."""

    name: ClassVar[str] = "tsv"
    version: ClassVar[str] = "1"
    identity_on_one: ClassVar[bool] = False
    in_all: ClassVar[bool] = False
    comparator: ClassVar[bool] = True
    examples: ClassVar[tuple[str, ...]] = ("scale=1",)
    GRID: ClassVar[dict[str, tuple[float, ...]]] = {"scale": SCALES}
    scale: float | None = field(default=None, metadata={
        "help": "α, applied to the merged task vector; none: chosen on held-out data"})
    metric: str = field(default="silhouette", metadata={
        "help": "metric of the held-out score that chooses α"})

    def task_vector(self, deltas: list[torch.Tensor], key: str, **values: float
                    ) -> torch.Tensor:
        if not spectral(key, deltas[0]):
            return mean(deltas)
        share = max(1, min(deltas[0].shape) // len(deltas))
        us, ss, vs = [], [], []
        for d in deltas:
            u, s, vh = truncated_svd(d)
            us.append(u[:, :share])
            ss.append(s[:share])
            vs.append(vh[:share])
        s = torch.cat(ss)
        if not s.numel():
            return torch.zeros_like(deltas[0])
        u, v = polar(torch.cat(us, 1)), polar(torch.cat(vs, 0).T)
        return ((u * s) @ v.T).float()


@dataclass(frozen=True)
class IsoC(TunedMerge):
    """Iso-C (Marczak et al. 2025): the task-arithmetic sum with a flat spectrum, per matrix.

    Isotropic merging in the common subspace, arXiv 2502.04959. Per weight matrix
    (``spectral``), the task-arithmetic sum M = Σ Δ_t = U S Vᵀ, over the singular values
    above the tolerance (the paper keeps all: the same for a full-rank M), is given a flat
    spectrum: σ̄·U Vᵀ, σ̄ the mean of those singular values. Other tensors (not 2-D, or
    embedding tables): the mean of the task vectors, as the paper's code (sum/T). Result
    b + α·that, α chosen on held-out data in effective-coefficient units from ``SCALES``, as
    every tuned merge (the paper's code sweeps α in 0.15–3), unless ``scale`` is set.
    Iso-CTS, which adds task-specific directions, is not here."""

    name: ClassVar[str] = "iso-c"
    version: ClassVar[str] = "1"
    identity_on_one: ClassVar[bool] = False
    in_all: ClassVar[bool] = False
    comparator: ClassVar[bool] = True
    examples: ClassVar[tuple[str, ...]] = ("scale=1",)
    GRID: ClassVar[dict[str, tuple[float, ...]]] = {"scale": SCALES}
    scale: float | None = field(default=None, metadata={
        "help": "α, applied to the isotropic merged task vector; none: chosen on held-out "
                "data"})
    metric: str = field(default="silhouette", metadata={
        "help": "metric of the held-out score that chooses α"})

    def task_vector(self, deltas: list[torch.Tensor], key: str, **values: float
                    ) -> torch.Tensor:
        if not spectral(key, deltas[0]):
            return mean(deltas)
        u, s, vh = truncated_svd(sum(deltas, torch.zeros_like(deltas[0])))
        if not s.numel():
            return torch.zeros_like(deltas[0])
        return (s.mean() * (u @ vh)).float()


@hookimpl
def register_merges(register: Register) -> None:
    register(Tsv)
    register(IsoC)
