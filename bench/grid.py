"""`harness run --all` on the quick profile: cold, warm, and one more merge method.

- cold: an empty store and an empty model cache (SmolLM2's one-time GGUF conversion included),
  as on a fresh clone, with its ratio to its linear-layer FLOP floor, in all and per stage
  (training; embedding with the held-out passes), and the share of its wall time outside the
  floor (#34: <= 2.0x and <= 20%);
- warm: the same command again, everything cached (median of ``--repeat``);
- one more merge: the whole default grid (its merges and the cross-task comparators named)
  plus ``--add-merge`` (default ``ties``) on the finished store: its variants train nothing and
  reuse every checkpoint, and every other cell is reused.

Everything runs in a temporary folder, which is removed afterwards. ``--of-run`` runs nothing
and reports the floor of a cold `harness run --all --timing` made already.

    python bench/grid.py [--repeat 3] [--add-merge ties]
    python bench/grid.py --of-run LOG STORE CACHE
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def candidates(merge: Any) -> int | None:
    """Held-out passes a merge makes to choose its parameters (one per candidate): a tuned
    merge's grid over its free parameters, a rescaled merge's effective coefficients; None
    where the merge scores candidates in a way of its own (e.g. greedy soup): not counted."""
    from harness.tuning import SCALES, TunedMerge

    if merge is None or merge.scored_by() is None:
        return 0
    if isinstance(merge, TunedMerge):
        return math.prod(len(merge.GRID[name]) for name in merge.free())
    if getattr(merge, "rescale", ""):
        return len(SCALES)
    return None


def flop_floor(store_dir: Path, cache: Path, peaks: dict[str, float], args: list[str],
               before: set[str] | None = None) -> tuple[dict[str, float], str, set[str]]:
    """Seconds the linear layers of `harness run ARGS` need at the measured matmul peak of the
    precision each encoder settled (``peaks``: GFLOP/s by number format), by stage:
    ``embedding``, every distinct embedding pass (variants sharing weights share one, as in
    the store); ``training``, every training step (forward + backward: 4 FLOPs per weight and
    token with frozen weights, 6 for full fine-tuning); ``held-out``, the passes over held-out
    data of merges that choose their parameters there (``candidates``); all over the real
    (unpadded) tokens, and only for variants not in ``before`` and training runs none of them
    had. Scoring, analysis, loading, merging and the report come on top. Also returns the
    plan's variant keys."""
    from common import linear_params

    from harness.api import PROFILES
    from harness.cli import build_parser, load_registry, request_of
    from harness.keys import embedding_key, encoder_key, eval_key
    from harness.plan import plan_request
    from harness.plugins.training import schedule
    from harness.run import pick_device
    from harness.samples import eval_sample, train_sample, valid_sample
    from harness.store import Store

    os.environ["HARNESS_CACHE"] = str(cache)
    reg = load_registry([])
    profile = PROFILES["quick"]
    # settled for the device the measured run picked (`--device auto`), as its keys were
    plan = plan_request(reg, request_of(build_parser().parse_args(["run", *args])),
                        pick_device("auto"))
    store = Store(store_dir)
    floor = {"training": 0.0, "embedding": 0.0, "held-out": 0.0}
    passes, runs, held, uncounted = 0, 0, 0, 0
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
        rate = peaks[number_format] * 1e9
        params = linear_params(backbone.module)
        tokens = sum(sum(backbone.lengths(eval_sample(t, profile, 0))) for t in plan.tasks)
        first = eval_key(plan.tasks[0], profile, 0)
        done = {store.embeddings_path(embedding_key(v.key, first)).stat().st_ino for v in old}
        inodes = {store.embeddings_path(embedding_key(v.key, first)).stat().st_ino
                  for v in variants} - done
        passes += len(inodes)
        floor["embedding"] += 2 * params * tokens * len(inodes) / rate
        trained = {(key, v.adapter.name, v.train_task.name) for v in variants if v.adapter
                   and v.train_task for _, key in v.runs if key not in old_runs}
        for _, adapter, task in trained:
            seqs = train_sample(reg.components["tasks"][task](), profile, 0)
            per_seq = sum(backbone.lengths(seqs)) / len(seqs)
            steps = schedule(len(seqs), profile)[0]
            floor["training"] += (6 if adapter == "full" else 4) * params * per_seq * steps * \
                profile.batch_size / rate
        runs += len(trained)
        for v in variants:
            count = candidates(v.merge)
            if count is None:
                uncounted += 1
                continue
            tasks = v.run_tasks or ([v.train_task] if v.train_task else [])
            held_tokens = sum(sum(backbone.lengths(valid_sample(
                t, profile, plan.seed, size=profile.held_out_size))) for t in tasks)
            held += count
            floor["held-out"] += 2 * params * held_tokens * count / rate
    store.close()
    at = ", ".join(f"{f} {peaks[f]:.0f} GFLOP/s" for f in sorted(formats))
    what = f"{passes} embedding passes, {held} held-out passes, {runs} training runs"
    what += f" ({uncounted} merges' held-out passes not counted)" if uncounted else ""
    return floor, f"{what}; peak {at}", {v.key for v in plan.variants}


def stage_seconds(line: str) -> dict[str, float]:
    """``time: 123 s; training 40 s (33%), ...`` as {stage: seconds} (``other`` included)."""
    return {name: float(value) for name, value in
            re.findall(r"(?:^|, |; )([a-z][a-z -]*?) (\d+) s \(", line)}


#: the measured stages each floor stage covers; every other stage is outside the floor
COVERED = {"training": ("training",), "embedding": ("embedding", "held-out scoring",
                                                      "oracle scoring")}


def report_floor(name: str, wall: float, stages: str, floor: dict[str, float], what: str
                 ) -> None:
    """The run's ratio to its linear-layer FLOP floor, in all and per stage (training;
    embedding with the held-out passes; the rest, which has no floor, as a share of wall)."""
    total = sum(floor.values())
    old = floor["training"] + floor["embedding"]  # the yardstick before #34: no held-out passes
    report(f"{name}: linear-layer FLOPs at the matmul peak",
           f"{minutes(total)} ({what}); cold = {wall / total:.2f}x this floor "
           f"({wall / old:.2f}x {minutes(old)} without the held-out passes)",
           f"no run in these precisions on this CPU can be faster; target <= 2.0x: "
           f"{verdict(wall <= 2.0 * total)}")
    seconds = stage_seconds(stages)
    covered = {stage: sum(seconds.get(s, 0.0) for s in COVERED[stage]) for stage in COVERED}
    parts = [f"training {covered['training']:.0f} s / {floor['training']:.0f} s = "
             f"{covered['training'] / max(floor['training'], 1e-9):.2f}x",
             f"embedding and held-out scoring {covered['embedding']:.0f} s / "
             f"{floor['embedding'] + floor['held-out']:.0f} s = "
             f"{covered['embedding'] / max(floor['embedding'] + floor['held-out'], 1e-9):.2f}x"]
    report(f"{name}: per stage against its floor", "; ".join(parts))
    outside = max(0.0, wall - sum(covered.values()))
    rest = ", ".join(f"{s} {v:.0f} s" for s, v in seconds.items()
                     if not any(s in names for names in COVERED.values()) and v >= 0.5)
    report(f"{name}: outside the floor", f"{outside:.0f} s = {outside / wall:.0%} of wall "
           f"({rest})", f"target <= 20%: {verdict(outside <= 0.2 * wall)}")


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
    parser.add_argument("--of-run", nargs=3, metavar=("LOG", "STORE", "CACHE"), help="run "
                        "nothing: the floor ratios of a cold `harness run --all --timing` made "
                        "already (e.g. in a fresh clone), from its output (with /usr/bin/time "
                        "-v's wall time if there), its store and its model cache")
    args = parser.parse_args()
    if args.of_run:
        return of_run(*map(Path, args.of_run))
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
        floor, what, cold_variants = flop_floor(folder / "store", folder / "cache", peaks,
                                                ["--all"])
        report_floor("harness run --all (quick), cold", cold, stages, floor, what)
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
        floor, what, _ = flop_floor(folder / "store", folder / "cache", peaks, grown,
                                    cold_variants)
        report(f"harness run --all (quick), one more merge ({args.add_merge}): linear-layer "
               "FLOPs at the matmul peak", f"{minutes(sum(floor.values()))} ({what})",
               "no run in these precisions on this CPU can be faster")
    return 0


def of_run(log: Path, store: Path, cache: Path) -> int:
    """The floor report of a cold run made already (``--of-run``)."""
    text = log.read_text()
    stages = re.search(r"^time: .*", text, re.MULTILINE)
    if not stages:
        fail(f"{log}: no `time:` line; run `harness run --all --timing`")
    elapsed = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", text)
    wall = (int(elapsed.group(1) or 0) * 3600 + int(elapsed.group(2)) * 60 +
            float(elapsed.group(3))) if elapsed else float(stages.group(0).split()[1])
    peaks = {f: peak_gflops(f) for f in ("fp32", "bf16")}  # on the idle machine
    report("harness run --all (quick), cold", f"{minutes(wall)}; stages "
           f"{stages.group(0).removeprefix('time: ')}")
    floor, what, _ = flop_floor(store, cache, peaks, ["--all"])
    report_floor("harness run --all (quick), cold", wall, stages.group(0), floor, what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
