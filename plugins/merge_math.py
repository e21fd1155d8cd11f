"""What the built-in merges share: float32 means, parameter checks, and the shared notation.

Notation: ``b`` the base value of a tensor, ``c_1 .. c_N`` its value in the N ingredients (by
default the stage checkpoints of one training run; ``over=seeds`` pools the final checkpoints
of several runs), ``Δ_i = c_i − b`` the task vectors. Every merge goes tensor by tensor (one
tensor's temporaries at a time, never several copies of the model), computes in float32 (SLERP
in float64) and returns the base's dtypes. Definitions follow ../shared/REFERENCE.md.
"""

from __future__ import annotations

import torch

Tensors = dict[str, torch.Tensor]


def check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def mean(tensors: list[torch.Tensor]) -> torch.Tensor:
    total = tensors[0].float().clone()
    for x in tensors[1:]:
        total += x.float()
    return total / len(tensors)
