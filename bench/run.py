"""Every benchmark, one process each; prints one line per figure, `name: value (target)`, and
writes them with the machine they came from to bench/RESULTS.md (after a full run only, unless
``--results`` is given).

    python bench/run.py                      # all sections (~12-25 min on a 2-core CPU)
    python bench/run.py --only embed train   # some sections; RESULTS.md left alone
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = {
    "embed": "embedding throughput vs SentenceTransformer.encode and a plain fp32 forward",
    "train": "LoRA training throughput vs a plain fp32 loop",
    "merges": "merge time and memory on SmolLM2's changed tensors",
    "metrics": "metric time at 2,000 and 10,000 embeddings; silhouette sampling error",
    "grid": "harness run --all: cold, warm, one more merge",
}
FIGURE = re.compile(r"^\S.*?: .+ \(.+\)$")  # names may hold ':' (slerp:between=...)


def machine() -> list[str]:
    import torch

    from harness.plugins.hf import cpu_flags

    cpu = platform.processor() or "?"
    memory = "?"
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"model name\s*:\s*(.*)", info).group(1)  # type: ignore[union-attr]
        kb = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
        memory = f"{int(kb.group(1)) / 2**20:.0f} GiB" if kb else "?"
    except (OSError, AttributeError):
        pass
    flags = cpu_flags()
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip() or "?"
    return [f"- CPU: {cpu}, {os.cpu_count()} logical cores, {memory} memory",
            f"- SIMD: {', '.join(simd) or 'none of avx2/avx512/amx'}"
            f"{'' if 'amx_bf16' in flags else ' (no AMX: bf16 matmuls are emulated)'}",
            f"- GPU: {gpu}",
            f"- torch {torch.__version__} ({torch.get_num_threads()} threads), Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}",
            f"- harness commit {commit}, {dt.date.today().isoformat()}"]


def run_section(name: str) -> tuple[list[str], int, float]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py")], stdout=subprocess.PIPE,
                            text=True, cwd=HERE.parent)
    figures = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if FIGURE.match(line.rstrip("\n")):
            figures.append(line.rstrip("\n"))
    return figures, proc.wait(), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--skip", nargs="+", choices=list(SECTIONS), default=[])
    parser.add_argument("--results", type=Path, help="write the figures here (default after a "
                        "full run: bench/RESULTS.md)")
    args = parser.parse_args()
    sections = [s for s in args.only if s not in args.skip]
    results = args.results or (HERE / "RESULTS.md" if sections == list(SECTIONS) else None)
    lines = ["# Benchmark results", "", "Written by `make bench` (`python bench/run.py`); each "
             "figure is a median over several runs, and each ratio is measured side by side in "
             "one process. Targets come from issue #6; where one is missed, the FLOP-rate lines "
             "say what bounds it.", "", "## Machine", "", *machine()]
    failed = []
    for name in sections:
        print(f"## {name}: {SECTIONS[name]}", flush=True)
        figures, code, seconds = run_section(name)
        lines += ["", f"## {name}: {SECTIONS[name]}", "", "```", *figures]
        if code != 0:
            failed.append(name)
            lines.append(f"(section {name} failed with exit code {code})")
        lines += ["```", "", f"({seconds:.0f} s)"]
    if results is not None:
        tmp = results.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(results)
        print(f"results: {results}")
    if failed:
        print(f"bench: sections failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
