"""Adapter ``lora`` (PEFT): low-rank adapters trained with the supervised-contrastive loss.

Each checkpoint holds dense weights of only the adapted tensors, with the adapter folded in
(W + B·A·alpha/r, the same sum ``merge_and_unload`` computes; the final stage comes from
``merge_and_unload`` itself), so merges see plain tensors and never LoRA factors: combining A and
B separately is not combining the deltas (PEFT issues #3004, #3761).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from harness.api import Adapter, Backbone, Checkpoint, Encoder, Profile, Sequence
from harness.hookspecs import hookimpl

FALLBACK_TARGETS = {"bert": ["query", "key", "value"], "llama": ["q_proj", "k_proj", "v_proj",
                                                                   "o_proj"]}


def default_targets(module: torch.nn.Module) -> list[str]:
    """Attention projections for known architectures; every Linear layer otherwise."""
    kind = getattr(getattr(module, "config", None), "model_type", None)
    if kind in FALLBACK_TARGETS:
        return FALLBACK_TARGETS[kind]
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
        if kind in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
            return list(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[kind])
    except ImportError:
        pass
    names = {name.rsplit(".", 1)[-1] for name, m in module.named_modules()
             if isinstance(m, torch.nn.Linear)}
    return sorted(names)


def folded(peft_model: Any) -> dict[str, torch.Tensor]:
    """W + ΔW for every adapted layer, under the base model's own tensor names."""
    from peft.tuners.lora import LoraLayer

    out = {}
    for name, layer in peft_model.base_model.model.named_modules():
        if isinstance(layer, LoraLayer) and "default" in layer.lora_A:
            base = layer.get_base_layer()
            delta = layer.get_delta_weight("default")
            out[f"{name}.weight"] = (base.weight + delta).detach().clone()
    return out


@dataclass(frozen=True)
class Lora(Adapter):
    """LoRA (PEFT) trained with a supervised-contrastive loss; the adapter is folded in."""

    name: ClassVar[str] = "lora"
    version: ClassVar[str] = "1"
    kind: ClassVar[str] = "LoRA"
    parameter_efficient: ClassVar[bool] = True

    rank: int = field(default=8, metadata={"help": "adapter rank r"})
    alpha: float = field(default=16.0, metadata={"help": "scaling alpha (delta = alpha/r B A)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter input"})
    targets: str = field(default="", metadata={
        "help": "module names joined by '+', e.g. q_proj+v_proj; empty: attention projections "
                "for known architectures, every Linear otherwise"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    temperature: float = field(default=0.1, metadata={"help": "contrastive temperature"})

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.alpha <= 0 or self.lr <= 0 or self.temperature <= 0:
            raise ValueError("alpha, lr and temperature must be > 0")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def supports(self, encoder: Encoder) -> bool | str:
        if encoder.from_scratch:  # nothing pretrained to adapt; `full` trains it
            return "LoRA adapts a pretrained model; a from-scratch encoder takes full"
        return True  # any torch module with Linear layers

    def fit(self, backbone: Backbone, train: Seq[Sequence], labels: Seq[int], seed: int,
            profile: Profile) -> list[Checkpoint]:
        from peft import LoraConfig, get_peft_model

        from harness.plugins.training import train_contrastive

        module = backbone.module
        targets = [t for t in self.targets.split("+") if t] or default_targets(module)
        grad_flags = {n: p.requires_grad for n, p in module.named_parameters()}
        config = LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                            target_modules=targets, bias="none")
        try:
            with warnings.catch_warnings():  # deprecation chatter between peft and transformers
                warnings.simplefilter("ignore", FutureWarning)
                peft_model = get_peft_model(module, config)  # adapts `module` in place
        except ValueError as err:
            raise ValueError(f"lora: {err}; set targets= to module names of this model") from None
        params = [p for n, p in peft_model.named_parameters() if "lora_" in n]
        try:
            checkpoints = train_contrastive(
                backbone, train, labels, seed, profile, params, self.lr, self.weight_decay,
                self.temperature, lambda: folded(peft_model))
        finally:
            # merge_and_unload folds the adapters in and puts the original layers back
            peft_model.merge_and_unload()
            for n, p in module.named_parameters():
                p.requires_grad_(grad_flags.get(n, True))
        final = {k: v.detach().clone() for k, v in module.state_dict().items()
                 if k in checkpoints[-1].tensors}
        checkpoints[-1] = Checkpoint(checkpoints[-1].stage, seed, final)
        return checkpoints


@hookimpl
def register_adapters(register):  # type: ignore[no-untyped-def]
    register(Lora)
