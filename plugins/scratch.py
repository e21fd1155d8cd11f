"""Encoder ``scratch``: a small transformer over the characters of the rendered sequence,
randomly initialised (its base is untrained) and trained from scratch by an adapter."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from harness.api import Backbone, Encoder, Sequence, render
from harness.hookspecs import hookimpl

VOCAB = {ch: i + 1 for i, ch in enumerate("0123456789,-")}  # 0 is padding
MAX_TOKENS = 128


class DigitTransformer(nn.Module):
    def __init__(self, dim: int, layers: int, heads: int):
        super().__init__()
        self.tokens = nn.Embedding(len(VOCAB) + 1, dim, padding_idx=0)
        self.positions = nn.Embedding(MAX_TOKENS, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != 0
        pos = torch.arange(ids.shape[1], device=ids.device)
        h = self.tokens(ids) + self.positions(pos)[None]
        h = self.norm(self.encoder(h, src_key_padding_mask=~mask))
        weights = mask.unsqueeze(-1).to(h.dtype)
        return (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # mean over real tokens


class ScratchBackbone(Backbone):
    default_lr = 1e-3
    def __init__(self, module: DigitTransformer, device: str):
        self.module, self.device = module.to(device), device

    def encode(self, seqs: Seq[Sequence]) -> torch.Tensor:
        rows = [[VOCAB[c] for c in render(s) if c in VOCAB][:MAX_TOKENS] or [VOCAB[","]]
                for s in seqs]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows], device=self.device)
        return self.module(ids)


@dataclass(frozen=True)
class Scratch(Encoder):
    """A tiny transformer over digit tokens, trained from scratch (non-LLM)."""

    name: ClassVar[str] = "scratch"
    version: ClassVar[str] = "1"
    family: ClassVar = "non-llm"
    from_scratch: ClassVar[bool] = True

    dim: int = field(default=64, metadata={"help": "model width"})
    layers: int = field(default=2, metadata={"help": "transformer layers"})
    heads: int = field(default=4, metadata={"help": "attention heads (must divide dim)"})
    init_seed: int = field(default=0, metadata={"help": "seed of the random initialisation",
                                                "min": 0, "max": 2**64 - 1})  # torch's seeds

    def __post_init__(self) -> None:
        if min(self.dim, self.layers, self.heads) < 1:
            raise ValueError("dim, layers and heads must be >= 1")
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} must divide dim={self.dim}")

    def load(self, device: str) -> Backbone:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.init_seed)
            module = DigitTransformer(self.dim, self.layers, self.heads)
        return ScratchBackbone(module, device)


@hookimpl
def register_encoders(register):  # type: ignore[no-untyped-def]
    register(Scratch)
