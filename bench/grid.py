"""`harness run --all` on the quick profile: cold, warm, and one more merge method.

- cold: an empty store and an empty model cache (SmolLM2's one-time GGUF conversion included),
  as on a fresh clone;
- warm: the same command again, everything cached (median of ``--repeat``);
- one more merge: the default merges plus ``--add-merge`` (default ``ties``) on the finished
  store: its variants train nothing and reuse every checkpoint.

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

from common import fail, report, verdict

HARNESS = str(Path(sys.executable).parent / "harness")


def run(args: list[str], folder: Path) -> tuple[float, str]:
    env = {**os.environ, "HARNESS_CACHE": str(folder / "cache")}
    start = time.perf_counter()
    done = subprocess.run([HARNESS, "run", *args, "--store", str(folder / "store"),
                           "--out", str(folder / "leaderboard" / "README.md")],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        fail(f"harness run {' '.join(args)} exited {done.returncode}: "
             f"{done.stderr.strip().splitlines()[-1:]}")
    cells = re.search(r"cells: .*", done.stdout)
    return seconds, cells.group(0) if cells else "?"


def default_merges() -> list[str]:
    out = subprocess.run([HARNESS, "plugins", "--json"], capture_output=True, text=True,
                         check=True).stdout
    return [m["name"] for m in json.loads(out)["merges"] if m["in_all"]]


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--add-merge", default="ties")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        folder = Path(tmp)
        cold, cells = run(["--all"], folder)
        report("harness run --all (quick), cold", f"{minutes(cold)}; {cells}",
               f"target <= 10 min: {verdict(cold <= 600)}")
        warm = []
        for _ in range(args.repeat):
            seconds, warm_cells = run(["--all"], folder)
            warm.append(seconds)
        report("harness run --all (quick), warm", f"{statistics.median(warm):.1f} s; "
               f"{warm_cells}", f"target <= 10 s: {verdict(statistics.median(warm) <= 10)}")
        merges = [*default_merges(), args.add_merge]
        extra, extra_cells = run(["--all", *[a for m in merges for a in ("--merge", m)]],
                                 folder)
        report(f"harness run --all (quick), one more merge ({args.add_merge})",
               f"{minutes(extra)} = {extra / cold:.2f} of cold; {extra_cells}",
               f"target <= 1/5 of cold: {verdict(extra <= cold / 5)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
