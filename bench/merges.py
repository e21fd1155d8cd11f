"""Merge time and memory on SmolLM2's changed tensors: one line per figure, `name: value (target)`.

The ingredients are a real SmolLM2 + LoRA training run from the store (`make run` leaves three in
`.harness`), or, when there is none, rank-8 deltas of 2% of the weight norm on SmolLM2's real
attention projections, three stages, as LoRA produces. Each figure is the median of several runs.

    python bench/merges.py [--store .harness] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from harness.api import Merged
from harness.params import label
from harness.plugins.interpolation import Linear, Slerp
from harness.plugins.pretrained import converted_smollm2
from harness.plugins.soups import GreedySoup, Soup
from harness.plugins.task_vectors import Dare, DareTies, ModelStock, TaskArithmetic, Ties
from harness.store import Store

Tensors = dict[str, torch.Tensor]


def smollm2_base() -> Tensors:
    from safetensors import safe_open

    with safe_open(str(converted_smollm2() / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)


def real_run(store_dir: Path, base: Tensors) -> list[Tensors] | None:
    """The stage checkpoints of a SmolLM2 LoRA run in the store, if there is one."""
    if not (store_dir / "results.sqlite").is_file():
        return None
    store = Store(store_dir)
    try:
        for folder in sorted((store_dir / "artifacts" / "checkpoints").glob("*/")):
            done = folder / "done.json"
            if not done.is_file():
                continue
            names = json.loads(done.read_text())["checkpoints"][0]["tensors"]
            if names and all(n in base and "self_attn" in n for n in names):
                loaded = store.load_checkpoints(folder.name)
                if loaded:
                    return [c["tensors"] for c in loaded]
    finally:
        store.close()
    return None


def synthetic_run(base: Tensors, stages: int = 3, rank: int = 8, rel: float = 0.02
                  ) -> list[Tensors]:
    g = torch.Generator().manual_seed(0)
    names = [k for k in base if "self_attn" in k and k.endswith("proj.weight")]
    out = []
    for stage in range(1, stages + 1):
        ck = {}
        for k in names:
            w = base[k]
            delta = torch.randn(w.shape[0], rank, generator=g) @ torch.randn(rank, w.shape[1],
                                                                             generator=g)
            ck[k] = w + (rel * stage / stages) * delta * (w.norm() / delta.norm())
        out.append(ck)
    return out


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc (VmRSS: now, VmHWM: peak), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> bool:
    """Return freed memory to the OS, then reset the peak-RSS mark: growth is then real."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# fixed λ (and density): one merge each; with λ left to the held-out choice, a merge is one call
# per grid point
MERGES = [Soup(), Slerp(), Slerp(between="checkpoints", space="task-vectors"), Linear(),
          TaskArithmetic(scale=1.0), Ties(scale=1.0, density=0.2), Dare(scale=1.0),
          DareTies(scale=1.0), ModelStock(), GreedySoup(), Slerp(over="tasks")]


def ingredients_of(store: str) -> tuple[Tensors, list[Tensors], str]:
    full = smollm2_base()
    ingredients = real_run(Path(store), full)
    source = "real SmolLM2 LoRA run from the store"
    if ingredients is None:
        ingredients = synthetic_run(full)
        source = "synthetic rank-8 deltas (2% of the weight norm) on SmolLM2's attention"
    # resident copies: safetensors maps files lazily, and first touches would count as the
    # merge's memory
    ingredients = [{k: v.clone() for k, v in ck.items()} for ck in ingredients]
    return {k: full[k].clone() for k in ingredients[0]}, ingredients, source


def call(merge, base: Tensors, ingredients: list[Tensors]):  # type: ignore[no-untyped-def]
    kwargs = {"score": lambda t: 0.0} if merge.scored_by() else {}
    return merge.merge(base, ingredients, **kwargs)


def memory_of(index: int, store: str) -> None:
    """In a fresh process: the peak memory one merge call adds over its inputs, in MB."""
    base, ingredients, _ = ingredients_of(store)
    reset_peak()
    before = status_mb("VmRSS")
    out = call(MERGES[index], base, ingredients)
    print(status_mb("VmHWM") - before)
    del out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=".harness")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-of", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.memory_of is not None:
        memory_of(args.memory_of, args.store)
        return 0
    base, ingredients, source = ingredients_of(args.store)
    size_mb = sum(v.numel() * v.element_size() for v in base.values()) / 2**20
    params = sum(v.numel() for v in base.values())
    print(f"merge ingredients: {len(ingredients)} checkpoints x {len(base)} tensors, "
          f"{params / 1e6:.1f}M parameters, {size_mb:.0f} MB per copy ({source})")
    for index, merge in enumerate(MERGES):
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = call(merge, base, ingredients)
            times.append(time.perf_counter() - start)
            stats = out.stats if isinstance(out, Merged) else {}
            del out
        probe = subprocess.run([sys.executable, __file__, "--store", args.store,
                                "--memory-of", str(index)], capture_output=True, text=True)
        try:
            extra = float(probe.stdout.strip().splitlines()[-1])
            memory = f", peak extra memory {extra:.0f} MB = {extra / size_mb:.1f} copies"
        except (ValueError, IndexError):
            memory = ", peak memory not measured"
        note = f"; linear fallback {stats['linear fallback']:.2f}" if "linear fallback" in stats \
            else ""
        what = " (mean of the kept ingredients; scoring them is embedding time)" \
            if merge.scored_by() else ""
        print(f"merge time {label(merge)}{what}: {statistics.median(times):.3f} s{memory}{note} "
              f"(target < 1 s, < 3 copies)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
