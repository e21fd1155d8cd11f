"""Every benchmark, one process each; prints one line per figure, `name: value (target)`, and
writes them with the machine they came from to bench/RESULTS.md (after a full run only, unless
``--results`` is given). RESULTS.md keeps one block per kind of CPU (``cpu_kind``: the model and
whether it has AMX, avx512_bf16 or only AVX2); a run replaces its own kind's block and leaves
the others as they were measured.

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
    "metrics": "metric time at 2,000 and 10,000 embeddings; silhouette sampling error; a "
               "cell's scoring with BLAS on every core or one thread",
    "precision": "fp32 against bf16 per encoder: embedding and LoRA training",
    "ceiling": "how near its linear-layer FLOP floor eager execution gets at the grid's shapes",
    "grid": "harness run --all: cold, warm, one more merge",
}
INTRO = ["# Benchmark results", "", "Written by `make bench` (`python bench/run.py`), one block "
         "per kind of CPU measured; each figure is a median over several runs, and each ratio "
         "is measured side by side in one process. Targets come from issues #6 and #20; where "
         "one is missed, the FLOP-rate lines say what bounds it."]
FIGURE = re.compile(r"^\S.*?: .+ \(.+\)$")  # names may hold ':' (slerp:between=...)


def machine() -> list[str]:
    import torch

    from harness.plugins.hf import cpu_bf16_pays, cpu_flags

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
            f"{'' if cpu_bf16_pays() else ' (no AMX or avx512_bf16: bf16 matmuls are emulated)'}",
            f"- GPU: {gpu}",
            f"- torch {torch.__version__} ({torch.get_num_threads()} threads), Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}",
            f"- harness commit {commit}, {dt.date.today().isoformat()}"]


def cpu_kind() -> str:
    """The kind of CPU a block of RESULTS.md is for: the model (with family and model numbers
    where the name alone does not tell generations apart) and its bf16 support."""
    from harness.plugins.hf import cpu_flags

    name, numbers = platform.processor() or "?", ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        name = re.search(r"model name\s*:\s*(.*)", info).group(1)  # type: ignore[union-attr]
        family = re.search(r"cpu family\s*:\s*(\d+)", info)
        model = re.search(r"^model\s*:\s*(\d+)", info, re.MULTILINE)
        if family and model:
            numbers = f" (family {family.group(1)} model {model.group(1)})"
    except (OSError, AttributeError):
        pass
    flags = cpu_flags()
    bf16 = ("AMX" if "amx_bf16" in flags else "avx512_bf16, no AMX" if "avx512_bf16" in flags
            else "AVX2 only" if "avx2" in flags else "no AVX2")
    return f"{name}{numbers}, {bf16}"


def merged(old: str, kind: str, block: list[str]) -> str:
    """RESULTS.md with ``kind``'s block replaced (or added); the other kinds' kept as is."""
    blocks: list[tuple[str, list[str]]] = []
    for line in old.splitlines():
        if line.startswith("## "):
            blocks.append((line[3:], []))
        elif blocks:
            blocks[-1][1].append(line)
    blocks = [b for b in blocks if b[0] != kind] + [(kind, block)]
    out = list(INTRO)
    for name, lines in blocks:
        while lines and not lines[0].strip():  # one blank line between blocks, however often
            lines = lines[1:]                   # the file is rewritten
        while lines and not lines[-1].strip():
            lines = lines[:-1]
        out += ["", f"## {name}", "", *lines]
    return "\n".join(out).rstrip("\n") + "\n"


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
    lines = ["", "### Machine", "", *machine()]
    failed = []
    for name in sections:
        print(f"## {name}: {SECTIONS[name]}", flush=True)
        figures, code, seconds = run_section(name)
        lines += ["", f"### {name}: {SECTIONS[name]}", "", "```", *figures]
        if code != 0:
            failed.append(name)
            lines.append(f"(section {name} failed with exit code {code})")
        lines += ["```", "", f"({seconds:.0f} s)"]
    if results is not None:
        tmp = results.with_suffix(".tmp")
        old = results.read_text(encoding="utf-8") if results.exists() else ""
        tmp.write_text(merged(old, cpu_kind(), lines), encoding="utf-8")
        tmp.replace(results)
        print(f"results: {results}")
    if failed:
        print(f"bench: sections failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
