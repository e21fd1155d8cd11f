"""Encoder ``hf``: any transformers model by hub id or local folder, and the backbone that every
transformers-based encoder (``minilm``, ``smollm2``) shares."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Iterator
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from harness.api import Backbone, Encoder, HarnessError, Sequence, render
from harness.hookspecs import hookimpl
from harness.plugins.casts import FrozenCasts, cast_once

Pooling = Literal["mean", "last", "cls"]
Precision = Literal["auto", "fp32", "bf16"]


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them; empty where there is no such file."""
    try:
        info = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    return frozenset(flag for line in info.splitlines() if line.startswith("flags")
                     for flag in line.partition(":")[2].split())


#: CPU flags of native bf16 matmuls: AMX tiles, or AVX-512 bf16 dot products (AMD Zen 4/5,
#: Intel Cooper Lake). Measured (bench/RESULTS.md): a bf16 matmul 3.6x fp32 with AMX and
#: 2.3-4.7x with avx512_bf16 alone (2.3-2.7x on one EPYC, 3.8-4.7x on a Zen 5); without
#: either, bf16 is emulated (~50x slower than fp32).
NATIVE_BF16 = ("amx_bf16", "avx512_bf16")


def cpu_bf16_pays(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bf16 natively (``NATIVE_BF16`` among its flags), where bf16
    autocast runs the built-in encoders 2-3x faster than fp32 (bench/precision.py).

    Read from the CPU's flags, never timed: every process on one machine must settle the same
    precision (a timed choice picked fp32 in one process of six on an AMX machine); the
    settled value is part of every key (``SettlesPrecision``). A machine whose flags cannot be
    read keeps fp32.
    """
    return any(flag in cpu_flags(cpuinfo) for flag in NATIVE_BF16)


def auto_precision(device: str, bf16_on_cpu: bool = True) -> str:
    """What ``precision=auto`` settles to on ``device`` here: ``bf16`` on CUDA with bf16 (or
    a CUDA device this process cannot see, e.g. a Ray worker's) and, for a backbone that
    declares bf16 pays for it on a CPU (``bf16_on_cpu``), on CPUs with native bf16 matmuls;
    else ``fp32``. From the device kind, the CPU's flags and the backbone's declaration only:
    the same in every process."""
    if device.startswith("cuda"):  # native bf16 only (Ampere and later), not emulated
        return "bf16" if not torch.cuda.is_available() or \
            torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    return "bf16" if bf16_on_cpu and cpu_bf16_pays() else "fp32"


def autocast_dtype(device: str, precision: str) -> torch.dtype | None:
    """The autocast dtype for this device, or None for plain fp32."""
    if precision == "auto":
        precision = auto_precision(device)
    return torch.bfloat16 if precision == "bf16" else None


class SettlesPrecision:
    """For an encoder dataclass with a ``precision`` field (auto | fp32 | bf16): ``auto`` is
    settled per machine before keys are made (``Encoder.settled``), and a row name omits
    ``precision=fp32``."""

    label_defaults: ClassVar[dict[str, Any]] = {"precision": "fp32"}
    #: the backbone's declaration that bf16 autocast pays for it on a CPU with native bf16
    #: (its forward and training are matmul-bound): ``auto`` settles bf16 there only if True
    bf16_on_cpu: ClassVar[bool] = True

    def settled(self, device: str) -> Any:
        if self.precision != "auto":
            return self
        return dataclasses.replace(self, precision=self.precision_on(device))  # type: ignore

    def precision_on(self, device: str) -> str:
        """The precision this encoder computes in on ``device``: ``auto`` settled as
        ``settled`` does (so an encoder loaded without settling, e.g. by ``harness check``,
        runs as a run would)."""
        if self.precision != "auto":  # type: ignore[attr-defined]
            return self.precision  # type: ignore[attr-defined,no-any-return]
        return auto_precision(device, self.bf16_on_cpu)


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(batch, tokens, dim) -> (batch, dim) over the real (non-padding) tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":  # the last real token, whichever side the padding is on
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * mask).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class HFBackbone(Backbone):
    """A transformers base model (no LM head) + tokenizer, pooled into one vector per sequence."""

    default_lr = 2e-4

    def __init__(self, model: Any, tokenizer: Any, pooling: str, device: str,
                 precision: str = "auto", train_attention: str = "sdpa"):
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.module, self.tokenizer, self.pooling, self.device = model, tokenizer, pooling, device
        self.module.to(device)
        self.autocast = autocast_dtype(device, precision)
        #: sdpa (torch's choice of kernel) | math (torch's plain kernel) while training
        self.train_attention = train_attention
        self._frozen = FrozenCasts()

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.autocast is None:
            yield
        else:
            with torch.autocast(self.device.split(":")[0], dtype=self.autocast):
                yield

    def lengths(self, seqs: Seq[Sequence]) -> list[int]:
        return [len(ids) for ids in self.tokenizer([render(s) for s in seqs])["input_ids"]]

    def embed(self, seqs: Seq[Sequence], batch_size: int = 64) -> np.ndarray:
        """``Backbone.embed`` with each linear layer's weight cast to the autocast dtype once
        per call instead of once per batch (``casts``): the same embeddings bit for bit.
        SmolLM2's passes ran 13-18% faster on a 2-core AMX CPU (150 and 400 sequences)."""
        self._frozen.clear()
        if self.autocast is None:
            return super().embed(seqs, batch_size)
        with cast_once(self.module, self.autocast):
            return super().embed(seqs, batch_size)

    def save_sentence_transformer(self, folder: Path) -> None:
        """``Backbone.save_sentence_transformer`` (``harness.plugins.st_export``)."""
        from harness.plugins.st_export import save
        save(self.module, self.tokenizer, self.pooling, folder)

    def encode(self, seqs: Seq[Sequence]) -> torch.Tensor:
        """In training, the frozen weights (a LoRA's base layers) are cast to the autocast
        dtype once for all steps (``casts.FrozenCasts``: the same values), and attention runs
        in torch's plain kernel where ``train_attention`` is ``math``."""
        batch = self.tokenizer([render(s) for s in seqs], padding=True, return_tensors="pt")
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        training = self.module.training and torch.is_grad_enabled()
        with contextlib.ExitStack() as stack:
            stack.enter_context(self._autocast())
            if training and self.autocast is not None:
                stack.enter_context(self._frozen.applied(self.module, self.autocast))
            if training and self.train_attention == "math":
                from torch.nn.attention import SDPBackend, sdpa_kernel
                stack.enter_context(sdpa_kernel(SDPBackend.MATH))
            hidden = self.module(input_ids=ids, attention_mask=mask).last_hidden_state
        return pool(hidden.float(), mask, self.pooling)


def quiet_transformers() -> None:
    """No progress bars or advisory logging from transformers inside a run."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def load_pretrained(path: str, pooling: str, device: str, precision: str,
                    trust_remote_code: bool = False, train_attention: str = "sdpa"
                    ) -> HFBackbone:
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    try:  # safetensors, or a pickled checkpoint read as tensors only: never code
        model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code,
                                          dtype=torch.float32, weights_only=True)
    except Exception as err:
        if type(err).__name__ != "UnpicklingError":
            raise
        raise HarnessError(f"{path!r}: its pickled checkpoint holds more than tensors and "
                           "the harness loads weights only; convert it to safetensors from "
                           "a source you trust") from None
    model.eval()
    model.config.use_cache = False  # no KV cache for an encoder: the same numbers, less work
    return HFBackbone(model, tokenizer, pooling, device, precision, train_attention)


def infer_family(config: Any) -> str:
    """``llm`` for decoder-only language models, ``non-llm`` for encoders (BERT-like)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(config, "model_type", "")
    if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "non-llm"
    archs = getattr(config, "architectures", None) or []
    if kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or any(a.endswith("ForCausalLM") for a in archs):
        return "llm"
    return "non-llm"


def looks_local(model: str) -> bool:
    """Whether model= can only name a local path: a hub id is NAME or ORG/NAME, never with a
    leading /, . or ~, a backslash or a second /."""
    return model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """No hub retry warnings on stderr (five lines per unreachable file): the error is one line."""
    from huggingface_hub.utils import logging as hub_logging

    logger = hub_logging.get_logger()
    level = logger.level
    logger.setLevel(hub_logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_config(model: str, trust_remote_code: bool) -> Any:
    """The model's transformers config; a ValueError (a usage error) naming the folder or hub id
    when it does not exist, is a file, needs its own code (``auto_map``) without
    trust_remote_code, or cannot be read for any other reason."""
    if os.path.exists(model) and not os.path.isdir(model):
        raise ValueError(f"{model!r} is a file, not a model folder")
    if not os.path.exists(model) and looks_local(model):
        raise ValueError(f"folder {model!r} does not exist")
    from transformers import AutoConfig

    where = "folder" if os.path.isdir(model) else "model"
    quiet_transformers()
    try:
        with quiet_hub():
            return AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except Exception as err:  # a config field of the wrong type is the hub's own error class
        if "trust_remote_code" in str(err):
            raise ValueError(f"{where} {model!r} needs its own code to load; pass "
                             "trust_remote_code=true to run it (auto_map in its config; only "
                             "for a source you trust)") from None
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        first = " ".join(lines[:2] if lines and lines[0].endswith(":") else lines[:1])
        raise ValueError(f"cannot read the config of {where} {model!r}: "
                         f"{first or type(err).__name__}") from None


@dataclass(frozen=True)
class HF(SettlesPrecision, Encoder):
    """Any transformers model by hub id or local folder (hf:model=ID_OR_PATH)."""

    name: ClassVar[str] = "hf"
    version: ClassVar[str] = "1"
    in_all: ClassVar[bool] = False  # needs model=

    model: str = field(default="", metadata={"help": "hub id or local folder"})
    pooling: Pooling = field(default="mean", metadata={"help": "mean | last | cls"})
    family: str = field(default="", metadata={
        "help": "llm | non-llm; empty: inferred from the architecture"})
    precision: Precision = field(default="auto", metadata={
        "help": "auto (bf16 where it is faster: CUDA, CPUs with AMX or avx512_bf16) | fp32 | "
                "bf16"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "run the model repository's own code (only for sources you trust)"})

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("needs model=HUB_ID or model=LOCAL_FOLDER")
        if self.family not in ("", "llm", "non-llm"):
            raise ValueError(f"family={self.family!r} is not llm or non-llm")
        # one check of the model whether or not family is given: a missing folder or a model
        # that needs its own code is a usage error up front, not a failed cell later
        config = read_config(self.model, self.trust_remote_code)
        if not self.family:
            object.__setattr__(self, "family", infer_family(config))

    def load(self, device: str) -> Backbone:
        return load_pretrained(self.model, self.pooling, device, self.precision_on(device),
                               self.trust_remote_code)


@hookimpl
def register_encoders(register):  # type: ignore[no-untyped-def]
    register(HF)
