"""Merge ``none``: the final checkpoint as it is (the unmerged reference of every merge)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from harness.api import Merge
from harness.hookspecs import hookimpl


@dataclass(frozen=True)
class NoMerge(Merge):
    """No merge: the final checkpoint's weights."""

    name: ClassVar[str] = "none"

    def merge(self, base: dict[str, torch.Tensor],
              checkpoints: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return dict(checkpoints[-1])


@hookimpl
def register_merges(register):  # type: ignore[no-untyped-def]
    register(NoMerge)
