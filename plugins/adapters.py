"""Adapter ``full``: every weight trained (the reference ``none`` is the core's own)."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import ClassVar

from harness.api import Adapter, Backbone, Checkpoint, Encoder, Profile, Sequence
from harness.hookspecs import hookimpl


@dataclass(frozen=True)
class Full(Adapter):
    """Full fine-tuning with a supervised-contrastive loss on the train task's labels."""

    name: ClassVar[str] = "full"
    version: ClassVar[str] = "1"

    lr: float = field(default=0.0, metadata={"help": "learning rate; 0: the encoder's default"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    temperature: float = field(default=0.1, metadata={"help": "contrastive temperature"})

    def __post_init__(self) -> None:
        if self.lr < 0 or self.weight_decay < 0:
            raise ValueError("lr and weight_decay must be >= 0")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")

    def supports(self, encoder: Encoder) -> bool | str:
        if encoder.family == "llm":
            return "full fine-tuning is for non-LLM encoders; LLMs take lora"
        return True

    def fit(self, backbone: Backbone, train: Seq[Sequence], labels: Seq[int], seed: int,
            profile: Profile) -> list[Checkpoint]:
        from harness.plugins.training import train_contrastive

        lr = self.lr or backbone.default_lr
        params = [p for p in backbone.module.parameters() if p.requires_grad]

        def snapshot() -> dict:
            return {k: v.detach().clone() for k, v in backbone.weights().items()}

        return train_contrastive(backbone, train, labels, seed, profile, params, lr,
                                 self.weight_decay, self.temperature, snapshot)


@hookimpl
def register_adapters(register):  # type: ignore[no-untyped-def]
    register(Full)
