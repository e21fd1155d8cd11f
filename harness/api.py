"""The contracts every plugin implements.

A component is a class whose instances are frozen dataclasses: its parameters are the dataclass
fields (with defaults and ``metadata={"help": ...}``), its identity is ``name`` + ``version``. The
harness instantiates it from ``name:key=value`` specs and hashes ``name``, ``version`` and the
field values into the content key of everything it produces.
"""

from __future__ import annotations

import random
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from harness.component import Component
from harness.errors import HarnessError, MetricUndefined
from harness.merges import REPLICATES, Merge, Merged, Over, PooledMerge, Scorer
from harness.profiles import PROFILES, Profile
from harness.sampling import balanced_sample
from harness.tuning import (
    DENSITIES,
    SCALES,
    TunedMerge,
    canonical_order,
    coefficients,
    task_vectors,
)

if TYPE_CHECKING:  # torch is heavy; the core imports it only where it runs models
    from pathlib import Path

    import torch

Sequence = tuple[int, ...]
Family = Literal["non-llm", "llm"]
KINDS = ("encoders", "adapters", "merges", "tasks", "metrics")

__all__ = ["DENSITIES", "KINDS", "PROFILES", "SCALES", "Adapter", "Backbone", "Checkpoint",
           "Component", "Encoder", "Family", "HarnessError", "Merge", "Merged", "Metric",
           "MetricUndefined", "Over", "PooledMerge", "Profile", "REPLICATES", "Scorer", "Sequence",
           "Task", "TunedMerge", "balanced_sample", "canonical_order", "coefficients", "render",
           "task_vectors"]


# ---------------------------------------------------------------------------------------- tasks


class Task(Component):
    """A number-theoretic property of a sequence."""

    classes: ClassVar[tuple[str, ...]]
    #: trained on by ``harness run --all`` (every task is always evaluated); tasks set this
    #: False to keep the default grid small
    trains_by_default: ClassVar[bool] = True
    #: the label depends on several elements together (higher-order patterns), not on each
    #: element alone; the leaderboard's claim about LLMs is judged on these tasks
    compositional: ClassVar[bool] = False
    #: the audit's nuisances (``harness.audit.NUISANCES``) that *are* the property, e.g.
    #: ("odd-share",) for parity: reported by ``harness tasks --audit``, never held against it
    exempt_nuisances: ClassVar[tuple[str, ...]] = ()

    def label(self, seq: Seq[int]) -> int | None:
        """The class index of ``seq``, or None where the property does not apply."""
        raise NotImplementedError

    def sample(self, n: int, rng: random.Random) -> list[Sequence]:
        """``n`` sequences, class-balanced (counts differ by at most one), deterministic in rng
        (``balanced_sample(self, n, rng, make)`` does the balancing for a proposal ``make``)."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------- encoders


class Backbone:
    """A loaded encoder: turns sequences into vectors and exposes its weights.

    Subclasses implement ``encode`` (differentiable, used by adapters) and set ``module``.
    ``embed`` (no grad, batched, numpy out) is built on ``encode``.
    """

    module: torch.nn.Module
    device: str = "cpu"
    #: learning rate adapters use when the user sets none (tiny models from scratch want more)
    default_lr: float = 1e-4

    def encode(self, seqs: Seq[Sequence]) -> torch.Tensor:
        """Embeddings of shape (len(seqs), dim), differentiable through ``module``."""
        raise NotImplementedError

    def lengths(self, seqs: Seq[Sequence]) -> list[int]:
        """The length of each sequence as the model sees it, for grouping batches (``embed``);
        by default its rendered characters. Tokenizer-based backbones return token counts."""
        return [len(render(s)) for s in seqs]

    def embed(self, seqs: Seq[Sequence], batch_size: int = 64) -> np.ndarray:
        """float32 embeddings in the input order; batches grouped by length to cut padding."""
        import torch

        lengths = self.lengths(seqs)
        order = sorted(range(len(seqs)), key=lambda i: (lengths[i], i))
        out: list[np.ndarray] = [np.empty(0)] * len(seqs)
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    idx = order[start:start + batch_size]
                    vecs = self.encode([seqs[i] for i in idx]).float().cpu().numpy()
                    for i, v in zip(idx, vecs, strict=True):
                        out[i] = v
        finally:
            self.module.train(was_training)
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(out).astype(np.float32, copy=False)

    def weights(self) -> dict[str, torch.Tensor]:
        """The tensors a merge may combine, by name."""
        return dict(self.module.state_dict())

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """Overwrite the named tensors in place (a subset is fine)."""
        import torch

        own = self.module.state_dict()
        unknown = sorted(set(tensors) - set(own))
        if unknown:
            raise ValueError(f"unknown tensor names {unknown[:3]}")
        with torch.no_grad():
            for key, value in tensors.items():
                if own[key].shape != value.shape:
                    raise ValueError(f"tensor {key}: shape {tuple(value.shape)} "
                                     f"!= {tuple(own[key].shape)}")
                own[key].copy_(value)

    def save_sentence_transformer(self, folder: Path) -> None:
        """Optional: write this backbone, with the weights loaded now, as a new folder that
        ``sentence_transformers.SentenceTransformer(folder)`` loads offline (no
        ``trust_remote_code``) and that embeds a sequence's text (``render``) as ``embed`` does;
        ``harness export-model`` calls it. A backbone without it is not exportable (one line)."""
        raise NotImplementedError


class Encoder(Component):
    family: ClassVar[Family]
    #: a non-LLM trained from scratch (its base is a random initialisation)
    from_scratch: ClassVar[bool] = False
    #: what a label omits: parameters at these values are not written in row names (e.g.
    #: ``{"precision": "fp32"}`` once ``settled`` has replaced ``auto``)
    label_defaults: ClassVar[dict[str, Any]] = {}

    def load(self, device: str) -> Backbone:
        raise NotImplementedError

    def settled(self, device: str) -> Encoder:
        """This encoder with every choice that depends on the machine made for ``device``
        (``cpu``, ``cuda``, ``cuda:1``) from facts that are the same in every process there
        (CPU flags, the device kind), never from timings: e.g. ``precision=auto`` replaced by
        ``fp32`` or ``bf16``. The harness calls it before any key is made, so the choice is
        part of every key and of the export; a Ray run uses the driver's choice on every
        node. Default: the encoder itself."""
        return self

    def number_format(self) -> str:
        """The number format of its forward passes once settled (``fp32``, ``bf16``): shown
        by ``harness export`` and the leaderboard. Default: its ``precision`` parameter if it
        has one (a string), else ``fp32``."""
        value = getattr(self, "precision", None)
        return value if isinstance(value, str) and value else "fp32"


def render(seq: Seq[int]) -> str:
    """The one text rendering of a sequence that every text encoder uses: ``3, 5, 7, 11``."""
    return ", ".join(str(int(x)) for x in seq)


# ------------------------------------------------------------------------------------- adapters


@dataclass(frozen=True)
class Checkpoint:
    """One stage of one training run: only the tensors that changed, as dense weights."""

    stage: int
    seed: int
    tensors: dict[str, torch.Tensor]


class Adapter(Component):
    #: how the leaderboard names this kind of training in its family rows ("LLM + LoRA");
    #: empty: the adapter's name
    kind: ClassVar[str] = ""
    #: trains a small set of added weights (LoRA and its kin) rather than the model's own: the
    #: kind of adapter the paper's claim about adapter dominance is judged on
    parameter_efficient: ClassVar[bool] = False
    #: the harness's own "no adapter" (the base model, always evaluated); plugins leave it False
    reference: ClassVar[bool] = False

    def supports(self, encoder: Encoder) -> bool | str:
        """True, or a string saying why this encoder is not supported."""
        return True

    def fit(self, backbone: Backbone, train: Seq[Sequence], labels: Seq[int], seed: int,
            profile: Profile) -> list[Checkpoint]:
        """Train ``backbone`` in place; return checkpoints in stage order (empty: no training)."""
        raise NotImplementedError


# -------------------------------------------------------------------------------------- metrics


class Metric(Component):
    higher_is_better: ClassVar[bool]

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        """A score of embeddings ``X`` (n, d) against integer labels ``y`` (n,).

        Raise ``MetricUndefined(reason)`` where the value is undefined (one class, constant
        embeddings, ...). The harness has already rejected NaN/inf embeddings and single-class y.
        """
        raise NotImplementedError

    def per_sample(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator
                   ) -> np.ndarray | None:
        """Optional: one value per row whose mean over the finite ones is ``score(X, y, rng)``
        (NaN for rows not scored, e.g. a probe's train rows). The harness then uses it instead
        of ``score`` and bootstraps confidence intervals over the evaluation sample from it.
        None (the default): the metric does not decompose over rows."""
        return None

    def resampled(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                  counts: np.ndarray) -> np.ndarray | None:
        """Optional: the metric recomputed on each bootstrap resample of the rows, for a metric
        whose per-row values (if any) understate its spread. ``counts`` (B, n) holds how often
        each row is in each resample (the leaderboard's shared resamples: comparisons stay
        paired); ``rng`` is seeded as the one ``score`` gets. Return B values (NaN where
        undefined); the harness stores them in place of per-row values. None: not offered."""
        return None
