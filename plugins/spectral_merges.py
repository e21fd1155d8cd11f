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

A matrix of low rank (a LoRA's task vector, or a sum of a few) is decomposed through its range:
Q, an orthonormal basis of M·Ω for a fixed Gaussian Ω of ``RANGE`` columns, and the SVD of the
small QᵀM. Where the part of M outside that range, ‖M − QQᵀM‖_F, is at most the tolerance,
every singular value it leaves out is below the tolerance (dropped anyway) and the ones kept
are M's to within it (Weyl): the same truncated SVD up to noise below the tolerance. Else (a
full-rank update) the full SVD runs. Measured on the AMX Xeon (family 6 model 207): 576 × 576,
rank 8, about 4 ms against 56-58 ms for the full float64 SVD; on SmolLM2's LoRA checkpoints of three
tasks, TSV-M's merged task vectors 1.8 s against 13.2 s and Iso-C's 0.9 against 4.7 s. Both keep
the same directions, with another share of the float32 rounding noise in the task vectors: TSV-M's
merged task vectors agree with the full SVD's to 1.2e-5 of their largest entry there, Iso-C's to
7e-3, because its flat spectrum gives the weakest kept direction (330 times the noise) the mean
weight; one float32 ulp of noise added to the checkpoints moves the full SVD's own Iso-C result by
2.2-2.6e-3.
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
#: columns of the range a low-rank matrix is decomposed through (``low_rank_svd``): room for
#: a sum of four rank-8 LoRA task vectors
RANGE = 32


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
    all-zero matrix): through the matrix's range where its rank is low (``low_rank_svd``)."""
    m = matrix.double()
    found = low_rank_svd(m)
    if found is not None:
        return found
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    return _kept(u, s, vh, tuple(matrix.shape))


def _kept(u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, shape: tuple[int, ...]
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rank = int((s > tolerance(s, shape)).sum()) if s.numel() and s[0] > 0 else 0
    return u[:, :rank], s[:rank], vh[:rank]


def low_rank_svd(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The truncated SVD of a float64 matrix through its range (see the module's docstring),
    or None where the matrix is not of low rank (or too small to gain from it)."""
    rows, cols = m.shape
    if 4 * RANGE > min(rows, cols):
        return None
    omega = torch.randn(cols, RANGE, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(0))
    q = torch.linalg.qr(m @ omega).Q
    small = q.T @ m
    u, s, vh = torch.linalg.svd(small, full_matrices=False)
    if not s.numel() or s[0] == 0 or \
            float(torch.linalg.norm(m - q @ small)) > tolerance(s, (rows, cols)):
        return None
    return _kept(q @ u, s, vh, (rows, cols))


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
    version: ClassVar[str] = "2"  # 2: low-rank task vectors decomposed through their range
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
    version: ClassVar[str] = "2"  # 2: low-rank sums decomposed through their range
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
