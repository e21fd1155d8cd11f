"""Shared pieces of the benchmark scripts: timing, the output line, the machine's fp32 ceiling.

Every figure is printed as one line, ``name: value (target)``; ``bench/run.py`` collects them.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def report(name: str, value: str, target: str = "no target") -> None:
    print(f"{name}: {value} ({target})", flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def side_by_side(fns: dict[str, Callable[[], Any]], repeat: int
                 ) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds of each function, the functions interleaved in every round so that
    drift of the machine (heat, neighbours) hits them alike; plus each one's last output."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            seconds, outs[name] = timed(fn)
            times[name].append(seconds)
    return {k: statistics.median(v) for k, v in times.items()}, outs


def linear_params(module: Any) -> int:
    """Weights every token passes through (a BERT pooler sees one token per sequence)."""
    return sum(m.weight.numel() for m in linear_layers(module))


def linear_layers(module: Any) -> list[Any]:
    """The linear layers every token passes through (not a BERT pooler's)."""
    import torch

    return [m for name, m in module.named_modules()
            if isinstance(m, torch.nn.Linear) and "pooler" not in name]


def peak_gflops(dtype: str = "fp32", seconds: float = 1.0) -> float:
    """The machine's measured matmul rate in ``dtype`` (fp32 | bf16; 2048 x 2048, every
    core): the ceiling a forward pass in that precision can approach. bf16 is fast only with
    native bf16 (AMX, avx512_bf16) or a GPU; elsewhere it is emulated and measured briefly."""
    import torch

    from harness.plugins.hf import cpu_bf16_pays

    size = 1024 if dtype == "bf16" and not cpu_bf16_pays() else 2048  # emulated: ~2 s each
    a, b = torch.randn(size, size), torch.randn(size, size)
    if dtype == "bf16":
        a, b = a.bfloat16(), b.bfloat16()
    a @ b
    return gflops(lambda: a @ b, 2 * size**3, seconds)


def gflops(fn: Callable[[], Any], flops: float, seconds: float, least: int = 1) -> float:
    """GFLOP/s of ``fn`` doing ``flops``: the median of three spells of ``seconds / 3`` (at
    least ``least`` calls each)."""
    rates = []
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3 or n < least:
            fn()
            n += 1
        rates.append(flops * n / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def eval_texts(profile: str = "quick", seed: int = 0) -> list[Any]:
    """The sequences a `harness run --all` embeds per variant: every built-in task's eval
    sample on the quick profile (1,000 sequences)."""
    from harness.api import PROFILES
    from harness.cli import load_registry
    from harness.samples import eval_sample

    reg = load_registry([])
    tasks = [reg.components["tasks"][name]() for name in sorted(reg.components["tasks"])]
    return [s for t in tasks for s in eval_sample(t, PROFILES[profile], seed)]


def fail(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr)
    sys.exit(1)
