"""How near its linear-layer FLOP floor (``grid.py``'s yardstick, #34) eager execution can get
at the grid's own shapes, per built-in encoder, in the precision it settles here.

- linear layers alone: every linear layer of the encoder timed on its own at the grid's shapes
  (embedding: batches of 64 sequences of the eval sample's mean length; training: batches of
  16, the forward and the backward to the inputs, as a LoRA's frozen layers need), as a
  multiple of the floor: what a pass would take if it were nothing but its linear layers;
- the real embedding pass over the quick grid's 1,000 eval sequences, split by forward hooks
  into the time inside its linear layers (autocast's casts of their inputs included) and the
  rest (attention, norms, activations, rotary embedding, residual sums, pooling, tokenising),
  each as a multiple of the pass's floor. The
  rest alone bounds the pass from below: with its linear layers at the peak it would still be
  ``1 + rest`` times its floor;
- LoRA training steps (batches of 16, the adapter's own ``fit``) as a multiple of their floor;
- with ``--compile``, each embedding pass under ``torch.compile`` too (its compile time, its
  speed-up, and whether its embeddings are the eager ones).

    python bench/ceiling.py [--steps 10] [--repeat 3] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from common import eval_texts, gflops, linear_layers, linear_params, peak_gflops, report

from harness.api import PROFILES, Profile
from harness.cli import load_registry
from harness.plugins.lora import Lora
from harness.plugins.training import batches
from harness.samples import train_sample

EMBED_BATCH, TRAIN_BATCH = 64, 16


def rate(fn: Callable[[], Any], flops: float) -> float:
    """GFLOP/s of ``fn`` after two warm-up calls (``common.gflops``)."""
    fn()
    fn()
    return gflops(fn, flops, 0.6, least=2)


def linear_shapes(module: torch.nn.Module) -> dict[tuple[int, int], int]:
    """(out, in) -> how many linear layers of that shape every token passes through."""
    shapes: dict[tuple[int, int], int] = {}
    for m in linear_layers(module):
        key = (m.out_features, m.in_features)
        shapes[key] = shapes.get(key, 0) + 1
    return shapes


def alone(shapes: dict[tuple[int, int], int], rows: int, dtype: torch.dtype,
          backward: bool) -> float:
    """GFLOP/s of the linear layers alone on ``rows`` tokens (and their input gradient)."""
    seconds, flops = 0.0, 0.0
    for (out, inn), count in shapes.items():
        W, x = torch.randn(out, inn, dtype=dtype), torch.randn(rows, inn, dtype=dtype)
        g = torch.randn(rows, out, dtype=dtype)
        one = 2 * rows * out * inn
        passes = [lambda x=x, W=W: F.linear(x, W)] + ([lambda g=g, W=W: g @ W] if backward else [])
        for fn in passes:
            seconds += count * one / (rate(fn, one) * 1e9)
            flops += count * one
    return flops / seconds / 1e9


class LinearClock:
    """Seconds spent inside the module's linear layers while installed (forward hooks; the CPU
    runs each layer before the hook after it returns)."""

    def __init__(self, module: torch.nn.Module):
        self.seconds, self._start = 0.0, 0.0
        self._handles = []
        for m in linear_layers(module):
            self._handles.append(m.register_forward_pre_hook(self._pre))
            self._handles.append(m.register_forward_hook(self._post))

    def _pre(self, *_: Any) -> None:
        self._start = time.perf_counter()

    def _post(self, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._start

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def compiled(name: str, backbone: Any, texts: list[Any], eager: np.ndarray, wall: float,
             floor: float) -> None:
    """The embedding pass with the module under ``torch.compile`` (dynamic shapes, the
    default inductor backend, which fuses the element-wise work): its first call (compiling),
    its speed-up once compiled and its cosine to the eager embeddings."""
    module = backbone.module
    backbone.module = torch.compile(module, dynamic=True)
    try:
        start = time.perf_counter()
        backbone.embed(texts)
        first = time.perf_counter() - start
        times = []
        for _ in range(2):
            start = time.perf_counter()
            found = backbone.embed(texts)
            times.append(time.perf_counter() - start)
    finally:
        backbone.module = module
    cos = (found * eager).sum(1) / np.linalg.norm(found, axis=1) / np.linalg.norm(eager, axis=1)
    best = min(times)
    report(f"{name} embedding pass under torch.compile", f"first call {first:.0f} s, then "
           f"{best:.2f} s = {best / floor:.2f}x the floor, {wall / best:.2f}x faster than eager; "
           f"cosine to eager min {cos.min():.6f}, "
           f"bit-identical {bool(np.array_equal(found, eager))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compile", action="store_true",
                        help="also each embedding pass under torch.compile (minutes)")
    args = parser.parse_args()
    reg = load_registry([])
    texts = eval_texts()
    task = reg.components["tasks"]["parity"]()
    train = train_sample(task, PROFILES["quick"], 0)
    labels = [int(task.label(s) or 0) for s in train]
    profile = Profile("bench", train_size=len(train), eval_size=1, epochs=100,
                      batch_size=TRAIN_BATCH, stages=1, max_train_steps=args.steps)
    peaks: dict[str, float] = {}
    for name in ("minilm", "smollm2"):
        encoder = reg.components["encoders"][name]().settled("cpu")  # precision=auto settled
        backbone = encoder.load("cpu")
        fmt = encoder.number_format()
        fmt = fmt if fmt in ("fp32", "bf16") else "fp32"
        if fmt not in peaks:
            peaks[fmt] = peak_gflops(fmt)
            report(f"{fmt} matmul peak (2048 x 2048, grid.py's yardstick)",
                   f"{peaks[fmt]:.0f} GFLOP/s")
        peak, dtype = peaks[fmt], torch.bfloat16 if fmt == "bf16" else torch.float32
        params, shapes = linear_params(backbone.module), linear_shapes(backbone.module)
        eval_len = statistics.mean(backbone.lengths(texts))
        train_len = statistics.mean(backbone.lengths(train))
        for what, rows, backward in (("embedding", EMBED_BATCH * eval_len, False),
                                     ("training", TRAIN_BATCH * train_len, True)):
            got = alone(shapes, round(rows), dtype, backward)
            report(f"{name} {fmt} linear layers alone, {what} batches ({round(rows)} tokens)",
                   f"{got:.0f} GFLOP/s = {peak / got:.2f}x the floor")

        floor = 2 * params * sum(backbone.lengths(texts)) / (peak * 1e9)
        backbone.embed(texts[:128])  # warm-up
        walls, inside = [], []
        for _ in range(args.repeat):  # the wall time without hooks; the hooks' in turn
            start = time.perf_counter()
            eager = backbone.embed(texts)
            walls.append(time.perf_counter() - start)
            clock = LinearClock(backbone.module)
            backbone.embed(texts)
            clock.remove()
            inside.append(clock.seconds)
        wall, lin = statistics.median(walls), statistics.median(inside)
        report(f"{name} {fmt} embedding pass, 1,000 eval sequences",
               f"{wall:.2f} s = {wall / floor:.2f}x its floor ({floor:.2f} s)")
        report(f"{name} {fmt} embedding pass, inside its linear layers",
               f"{lin:.2f} s = {lin / floor:.2f}x the floor")
        report(f"{name} {fmt} embedding pass, the rest (attention, norms, activations, ...)",
               f"{wall - lin:.2f} s = {(wall - lin) / floor:.2f}x the floor: "
               f">= {1 + (wall - lin) / floor:.2f}x with linear layers at the peak")

        if args.compile:
            compiled(f"{name} {fmt}", backbone, texts, eager, wall, floor)
        lora, snapshot = Lora(), {k: v.clone() for k, v in backbone.weights().items()}
        lengths = backbone.lengths(train)
        tokens = sum(lengths[i] for idx in batches(len(train), TRAIN_BATCH, args.steps, 0)
                     for i in idx)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            lora.fit(backbone, train, labels, 0, profile)
            times.append(time.perf_counter() - start)
            backbone.load_weights(snapshot)
        step_floor = 4 * params * tokens / (peak * 1e9)
        took = statistics.median(times)
        report(f"{name} {fmt} LoRA training, {args.steps} steps of {TRAIN_BATCH}",
               f"{took:.2f} s = {took / step_floor:.2f}x its floor ({step_floor:.2f} s)")
        del backbone
    return 0


if __name__ == "__main__":
    sys.exit(main())
