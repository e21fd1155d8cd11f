"""fp32 against bf16 per built-in transformers encoder, on this CPU: embedding (bf16 autocast
over fp32 weights, as ``precision=bf16`` runs, and the weights themselves cast to bf16) and LoRA
training (fp32 and bf16 autocast), with the cosine of each bf16 embedding to fp32's. It says
which precision ``precision=auto`` settles to here and whether bf16 would pay.

Embedding uses the first ``--seqs`` of the 1,000 sequences a quick `harness run --all` embeds
per variant; training runs ``--steps`` optimiser steps of the harness's LoRA on the first quick
train sample of parity. Where bf16 matmuls run below a fifth of the fp32 rate (emulated: a CPU
without AMX or avx512_bf16) it measures 8 sequences, 1 step, once: rates, not a long wait.

    python bench/precision.py [--seqs 200] [--steps 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from typing import Any

import numpy as np
import torch
from common import eval_texts, peak_gflops, report, side_by_side

from harness.api import PROFILES
from harness.cli import load_registry
from harness.plugins.hf import auto_precision, cpu_flags
from harness.plugins.lora import Lora
from harness.plugins.pretrained import MiniLM, SmolLM2
from harness.plugins.training import batches
from harness.samples import train_sample


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def bf16_weights(backbone: Any) -> Any:
    """The backbone with its weights cast to bf16 and no autocast."""
    other = copy.copy(backbone)
    other.module = copy.deepcopy(backbone.module).to(torch.bfloat16)
    other.autocast = None
    return other


def train_step_rate(cls: type, precision: str, steps: int) -> float:
    """Real tokens per second of ``steps`` LoRA steps (the harness's adapter)."""
    import time

    reg = load_registry([])
    task = reg.components["tasks"]["parity"]()
    profile = PROFILES["quick"]
    seqs = train_sample(task, profile, 0)
    labels = [int(task.label(s) or 0) for s in seqs]
    short = dataclasses.replace(profile, max_train_steps=steps, stages=1)
    backbone = cls(precision=precision).load("cpu")
    lengths = backbone.lengths(seqs)
    tokens = sum(lengths[i] for idx in batches(len(seqs), short.batch_size, steps, 0)
                 for i in idx)  # the real tokens of the batches fit trains on (seed 0)
    start = time.perf_counter()
    Lora().fit(backbone, seqs, labels, 0, short)
    return tokens / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seqs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    flags = cpu_flags()
    kinds = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    report("cpu flags", ", ".join(kinds) or "none read")
    peak, bf16 = peak_gflops("fp32"), peak_gflops("bf16")
    report("matmul fp32 / bf16 (measured)", f"{peak:.0f} / {bf16:.0f} GFLOP/s = "
           f"{bf16 / peak:.2f}x", "bf16 pays above 1x")
    report("precision=auto settles to", auto_precision("cpu"))
    if bf16 < peak / 5:  # emulated bf16: a few sequences give its rate
        args.seqs, args.steps, args.repeat = 8, 1, 1
        report("bf16 is emulated here", "measured on 8 sequences, 1 training step, once")
    seqs = eval_texts()[:args.seqs]
    for cls in (MiniLM, SmolLM2):
        torch.set_grad_enabled(False)
        fp32 = cls(precision="fp32").load("cpu")
        auto = cls(precision="bf16").load("cpu")
        cast = bf16_weights(fp32)
        fp32.embed(seqs[:16]), auto.embed(seqs[:16]), cast.embed(seqs[:16])  # warm-up
        times, outs = side_by_side({"fp32": lambda b=fp32: b.embed(seqs),
                                    "bf16 autocast": lambda b=auto: b.embed(seqs),
                                    "bf16 weights": lambda b=cast: b.embed(seqs)}, args.repeat)
        for name in ("fp32", "bf16 autocast", "bf16 weights"):
            cos = cosine(np.asarray(outs[name], np.float64), np.asarray(outs["fp32"], np.float64))
            report(f"{cls.name} embed, {name}",
                   f"{len(seqs) / times[name]:.1f} seq/s = {times['fp32'] / times[name]:.2f}x "
                   f"fp32; cosine to fp32 mean {cos.mean():.6f}, min {cos.min():.6f}")
        torch.set_grad_enabled(True)
        rates = {p: train_step_rate(cls, p, args.steps) for p in ("fp32", "bf16")}
        report(f"{cls.name} lora train, fp32 / bf16 autocast",
               f"{rates['fp32']:.0f} / {rates['bf16']:.0f} tokens/s = "
               f"{rates['bf16'] / rates['fp32']:.2f}x fp32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
