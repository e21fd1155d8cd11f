"""The training loop adapters share: supervised-contrastive loss, stage checkpoints."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from collections.abc import Sequence as Seq

import torch
import torch.nn.functional as F

from harness.api import Backbone, Checkpoint, Profile, Sequence


def supcon_loss(z: torch.Tensor, y: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) over one batch.

    Each anchor is pulled toward every other sample of its class and pushed from the rest;
    anchors with no positive in the batch are ignored.
    """
    z = F.normalize(z.float(), dim=1)
    n = z.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = (z @ z.T / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positives = (y[:, None] == y[None, :]) & ~self_mask
    count = positives.sum(1)
    has = count > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = log_prob.masked_fill(~positives, 0.0).sum(1)[has] / count[has]
    return -per_anchor.mean()


def schedule(n: int, profile: Profile) -> tuple[int, list[int]]:
    """Total optimiser steps and the steps after which a checkpoint is taken."""
    per_epoch = max(1, math.ceil(n / profile.batch_size))
    total = max(1, min(profile.epochs * per_epoch, profile.max_train_steps))
    stages = min(profile.stages, total)
    return total, sorted({round(total * (i + 1) / stages) for i in range(stages)})


def batches(n: int, batch_size: int, steps: int, seed: int) -> Iterator[list[int]]:
    """The index batches of ``steps`` optimiser steps: a seeded permutation of ``n`` rows cut
    into batches, a fresh permutation whenever fewer than a batch remain."""
    gen = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(n, generator=gen), 0
        yield order[cursor:cursor + batch_size].tolist()
        cursor += batch_size


def train_contrastive(backbone: Backbone, train: Seq[Sequence], labels: Seq[int], seed: int,
                      profile: Profile, params: list[torch.nn.Parameter], lr: float,
                      weight_decay: float, temperature: float,
                      snapshot: Callable[[], dict[str, torch.Tensor]]) -> list[Checkpoint]:
    """AdamW on the supervised-contrastive loss; ``snapshot()`` taken at each stage end."""
    total, marks = schedule(len(train), profile)
    y_all = torch.tensor(list(labels))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    checkpoints: list[Checkpoint] = []
    backbone.module.train()
    for step, idx in enumerate(batches(len(train), profile.batch_size, total, seed), start=1):
        z = backbone.encode([train[i] for i in idx])
        loss = supcon_loss(z, y_all[idx].to(z.device), temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in marks:
            checkpoints.append(Checkpoint(len(checkpoints), seed, snapshot()))
    backbone.module.eval()
    return checkpoints
