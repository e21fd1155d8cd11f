"""The harness's own reference components: adapter ``none`` (the base model) and merge ``none``
(the final checkpoint). Every comparison is made against them, so every plan holds them whether
or not they are named; they are registered by the core itself (plugin ``harness``), not by a
plugin that could be disabled, and their name is the core's word for "nothing applied"."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import ClassVar

from harness.api import Adapter, Backbone, Checkpoint, Merge, Profile, Scorer, Sequence
from harness.hookspecs import Register, hookimpl

#: what the store and the leaderboard call the absent adapter or merge of a reference variant
NONE = "none"


@dataclass(frozen=True)
class NoAdapter(Adapter):
    """No training: the encoder's base weights (always in a plan, as the reference)."""

    name: ClassVar[str] = NONE
    reference: ClassVar[bool] = True

    def fit(self, backbone: Backbone, train: Seq[Sequence], labels: Seq[int], seed: int,
            profile: Profile) -> list[Checkpoint]:
        return []


@dataclass(frozen=True)
class NoMerge(Merge):
    """No merge: the final checkpoint's weights (always in a plan, as the reference)."""

    name: ClassVar[str] = NONE
    reference: ClassVar[bool] = True

    def merge(self, base: dict, checkpoints: list[dict], score: Scorer | None = None) -> dict:
        return dict(checkpoints[-1])


@hookimpl
def register_adapters(register: Register) -> None:
    register(NoAdapter)


@hookimpl
def register_merges(register: Register) -> None:
    register(NoMerge)
