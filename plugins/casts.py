"""Linear weights cast to the autocast dtype once instead of on every call (``HFBackbone``).

Autocast casts a float32 weight to bf16 each time a linear layer runs, and keeps no cast of a
tensor that needs no gradient: an embedding pass of SmolLM2 made 5,401 casts of its weights, and
a LoRA training step casts every frozen weight again. A cast made once is the same rounding of
the same weights, so what the layers compute is the same bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def linears(module: torch.nn.Module, frozen_only: bool) -> list[torch.nn.Linear]:
    """The float32 linear layers of ``module`` (only those whose weight needs no gradient)."""
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)
            and m.weight.dtype == torch.float32 and not (frozen_only and m.weight.requires_grad)]


@contextlib.contextmanager
def swapped(layers: list[torch.nn.Linear], weights: list[torch.nn.Parameter]) -> Iterator[None]:
    """``weights`` in place of the layers' own for the duration; the own ones back after."""
    saved = [m.weight for m in layers]
    try:
        for m, weight in zip(layers, weights, strict=True):
            m.weight = weight
        yield
    finally:
        for m, weight in zip(layers, saved, strict=True):
            m.weight = weight


def cast(weight: torch.Tensor, dtype: torch.dtype) -> torch.nn.Parameter:
    return torch.nn.Parameter(weight.detach().to(dtype), requires_grad=False)


@contextlib.contextmanager
def cast_once(module: torch.nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """Every float32 linear weight of ``module`` in ``dtype`` for the duration (inference)."""
    layers = linears(module, frozen_only=False)
    with swapped(layers, [cast(m.weight, dtype) for m in layers]):
        yield


class FrozenCasts:
    """The ``dtype`` copies of a module's frozen linear weights (a LoRA's base layers), kept
    across training steps and made again for a weight that was replaced or changed in place
    (its version counter moved); the trained weights are cast by autocast as before."""

    def __init__(self) -> None:
        self._copies: dict[int, tuple[torch.Tensor, int, torch.nn.Parameter]] = {}

    def clear(self) -> None:
        self._copies.clear()

    @contextlib.contextmanager
    def applied(self, module: torch.nn.Module, dtype: torch.dtype) -> Iterator[None]:
        """The copies in place of the frozen float32 weights for one forward; autograd keeps
        what it saved of them for the backward. The float32 weights are back afterwards (what
        checkpoints and ``merge_and_unload`` read)."""
        layers = linears(module, frozen_only=True)
        copies = []
        for m in layers:
            found = self._copies.get(id(m))
            if found is None or found[0] is not m.weight or found[1] != m.weight._version:
                found = (m.weight, m.weight._version, cast(m.weight, dtype))
                self._copies[id(m)] = found
            copies.append(found[2])
        with swapped(layers, copies):
            yield
