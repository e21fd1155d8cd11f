"""`harness run --all` on the quick profile: cold, warm, and one more merge method.

- cold: an empty store and an empty model cache (SmolLM2's one-time GGUF conversion included),
  as on a fresh clone;
- warm: the same command again, everything cached (median of ``--repeat``);
- one more merge: the whole default grid (its merges and the cross-task comparators named)
  plus ``--add-merge`` (default ``ties``) on the finished store: its variants train nothing and
  reuse every checkpoint, and every other cell is reused.

Everything runs in a temporary folder, which is removed afterwards.

    python bench/grid.py [--repeat 3] [--add-merge ties]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import fail, peak_gflops, report, verdict

HARNESS = str(Path(sys.executable).parent / "harness")


def run(args: list[str], folder: Path) -> tuple[float, str, str]:
    """Wall seconds, the cells line and the stage line (``time: ...``) of one run."""
    env = {**os.environ, "HARNESS_CACHE": str(folder / "cache")}
    start = time.perf_counter()
    done = subprocess.run([HARNESS, "run", *args, "--timing", "--store", str(folder / "store"),
                           "--out", str(folder / "leaderboard" / "README.md")],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        fail(f"harness run {' '.join(args)} exited {done.returncode}: "
             f"{done.stderr.strip().splitlines()[-1:]}")
    cells = re.search(r"cells: .*", done.stdout)
    stages = re.search(r"^time: .*", done.stderr, re.MULTILINE)
    return seconds, cells.group(0) if cells else "?", stages.group(0) if stages else "?"


def default_merges() -> list[str]:
    """The merges `--all` runs, as specs: those marked in_all, and the ranking's comparators
    across tasks (named, so that naming merges leaves none of the default grid out)."""
    out = subprocess.run([HARNESS, "plugins", "--json"], capture_output=True, text=True,
                         check=True).stdout
    merges = json.loads(out)["merges"]
    return [m["name"] for m in merges if m["in_all"]] + \
        [f"{m['name']}:over=tasks" for m in merges if m.get("comparator")]


def flop_floor(folder: Path, peaks: dict[str, float], args: list[str],
               before: set[str] | None = None) -> tuple[float, str, set[str]]:
    """Seconds the linear layers of `harness run ARGS` need at the measured matmul peak of the
    precision each encoder settled (``peaks``: GFLOP/s by number format): every
    distinct embedding pass (variants sharing weights share one, as in the store) and every
    training step (forward + backward: 4 FLOPs per weight and token with frozen weights, 6 for
    full fine-tuning), over the real (unpadded) tokens; only for variants not in ``before``
    and training runs none of them had. Scoring, analysis, loading and the passes over
    held-out data of merges that choose their parameters there come on top. Also
    returns the plan's variant keys."""
    from common import linear_params

    from harness.api import PROFILES
    from harness.cli import build_parser, load_registry, request_of
    from harness.keys import embedding_key, encoder_key, eval_key
    from harness.plan import plan_request
    from harness.plugins.training import schedule
    from harness.run import pick_device
    from harness.samples import eval_sample, train_sample
    from harness.store import Store

    os.environ["HARNESS_CACHE"] = str(folder / "cache")
    reg = load_registry([])
    profile = PROFILES["quick"]
    # settled for the device the measured run picked (`--device auto`), as its keys were
    plan = plan_request(reg, request_of(build_parser().parse_args(["run", *args])),
                        pick_device("auto"))
    store = Store(folder / "store")
    seconds, passes, runs = 0.0, 0, 0
    formats: set[str] = set()
    old = [v for v in plan.variants if v.key in (before or set())]
    old_runs = {key for v in old for _, key in v.runs}
    by_encoder: dict[str, list] = {}
    for variant in plan.variants:
        if variant.key not in (before or set()):
            by_encoder.setdefault(encoder_key(variant.encoder), []).append(variant)
    for variants in by_encoder.values():
        backbone = variants[0].encoder.load("cpu")
        number_format = variants[0].encoder.number_format()
        number_format = number_format if number_format in peaks else "fp32"  # e.g. a plugin's
        formats.add(number_format)
        flops = 0.0
        params = linear_params(backbone.module)
        tokens = sum(sum(backbone.lengths(eval_sample(t, profile, 0))) for t in plan.tasks)
        first = eval_key(plan.tasks[0], profile, 0)
        done = {store.embeddings_path(embedding_key(v.key, first)).stat().st_ino for v in old}
        inodes = {store.embeddings_path(embedding_key(v.key, first)).stat().st_ino
                  for v in variants} - done
        passes += len(inodes)
        flops += 2 * params * tokens * len(inodes)
        trained = {(key, v.adapter.name, v.train_task.name) for v in variants if v.adapter
                   and v.train_task for _, key in v.runs if key not in old_runs}
        for _, adapter, task in trained:
            seqs = train_sample(reg.components["tasks"][task](), profile, 0)
            per_seq = sum(backbone.lengths(seqs)) / len(seqs)
            steps = schedule(len(seqs), profile)[0]
            flops += (6 if adapter == "full" else 4) * params * per_seq * steps * \
                profile.batch_size
        runs += len(trained)
        seconds += flops / (peaks[number_format] * 1e9)
    store.close()
    at = ", ".join(f"{f} {peaks[f]:.0f} GFLOP/s" for f in sorted(formats))
    return (seconds, f"{passes} embedding passes, {runs} training runs; peak {at}",
            {v.key for v in plan.variants})


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--add-merge", default="ties")
    parser.add_argument("--baseline", type=float, metavar="SECONDS", help="a cold run of the "
                        "grid before (e.g. before the cross-task track), measured on this "
                        "machine: the cold run is compared with it")
    parser.add_argument("--keep", metavar="FOLDER", help="run in FOLDER (new or empty) and "
                        "keep its store, e.g. to render the leaderboard from the cold run")
    args = parser.parse_args()
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        fail(f"--keep {args.keep}: give a new or empty folder (the run must be cold)")
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        # on the idle machine, before the runs
        peaks = {f: peak_gflops(f) for f in ("fp32", "bf16")}
        cold, cells, stages = run(["--all"], folder)
        report("harness run --all (quick), cold", f"{minutes(cold)}; {cells}",
               f"target <= 10 min: {verdict(cold <= 600)}")
        if args.baseline:
            report("harness run --all (quick), cold against the grid before",
                   f"{minutes(cold)} / {minutes(args.baseline)} = {cold / args.baseline:.2f}x",
                   f"target <= 1x on this CPU kind: {verdict(cold <= args.baseline)}; "
                   f"<= 1.5x: {verdict(cold <= 1.5 * args.baseline)}")
        report("harness run --all (quick), cold: stages", stages.removeprefix("time: "))
        floor, what, cold_variants = flop_floor(folder, peaks, ["--all"])
        report("harness run --all (quick), cold: linear-layer FLOPs at the matmul peak",
               f"{minutes(floor)} ({what}); cold = {cold / floor:.2f}x this floor",
               "no run in these precisions on this CPU can be faster; aim: cold <= 1.5x")
        warm = []
        for _ in range(args.repeat):
            seconds, warm_cells, _ = run(["--all"], folder)
            warm.append(seconds)
        report("harness run --all (quick), warm", f"{statistics.median(warm):.1f} s; "
               f"{warm_cells}", f"target <= 10 s: {verdict(statistics.median(warm) <= 10)}")
        merges = [*default_merges(), args.add_merge]
        grown = ["--all", *[a for m in merges for a in ("--merge", m)]]
        extra, extra_cells, extra_stages = run(grown, folder)
        report(f"harness run --all (quick), one more merge ({args.add_merge})",
               f"{minutes(extra)} = {extra / cold:.2f} of cold; {extra_cells}",
               f"target <= 1/5 of cold: {verdict(extra <= cold / 5)}")
        report(f"harness run --all (quick), one more merge ({args.add_merge}): stages",
               extra_stages.removeprefix("time: "))
        floor, what, _ = flop_floor(folder, peaks, grown, cold_variants)
        report(f"harness run --all (quick), one more merge ({args.add_merge}): linear-layer "
               "FLOPs at the matmul peak", f"{minutes(floor)} ({what})",
               "no run in these precisions on this CPU can be faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
