"""Store -> ``leaderboard/README.md``. Deterministic: the same store gives the same bytes."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from harness.store import Store, atomic_write_text

HEADLINE_ON = ("silhouette", "davies-bouldin", "probe-accuracy", "kmeans-nmi")
HEADLINE_OFF = ("silhouette", "probe-accuracy")
LOWER_IS_BETTER = {"davies-bouldin"}  # for arrows only; values are never flipped
MERGE_NOTE = (" *merge*: what the merge reported about itself, mean over seeds (`linear "
              "fallback`: the fraction of tensors whose SLERP endpoints were so nearly parallel, "
              "|cos| > 0.9995, that it interpolated linearly; at 1 that SLERP *is* averaging).")
MERGE_ORDER = ("none", "soup", "greedy-soup", "slerp", "linear")  # then the others by name
GROUP_ORDER = ("non-LLM random init", "non-LLM from scratch", "non-LLM base",
               "non-LLM fine-tuned", "LLM base", "LLM + LoRA", "LLM + ")


def md(text: object) -> str:
    """Escape a plugin-provided string for a markdown table cell."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(s.split())


@dataclass
class Row:
    """One variant aggregated over seeds."""

    group: str
    encoder: str
    adapter: str
    train_task: str | None
    merge: str
    seeds: list[int] = field(default_factory=list)
    variants: set[str] = field(default_factory=set)
    # (task, metric) -> values over seeds
    values: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def name(self) -> str:
        parts = [self.encoder]
        if self.train_task:
            parts.append(f"{self.adapter}@{self.train_task}")
        if self.merge != "none":
            parts.append(self.merge)
        return " + ".join(parts)

    def sort_key(self) -> tuple:
        rank = next((i for i, g in enumerate(GROUP_ORDER) if self.group.startswith(g)),
                    len(GROUP_ORDER))
        kind = self.merge.split(":", 1)[0]
        merge_rank = MERGE_ORDER.index(kind) if kind in MERGE_ORDER else len(MERGE_ORDER)
        return (self.encoder, rank, self.adapter, merge_rank, self.merge, self.train_task or "")


def fmt(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    mean = statistics.fmean(finite)
    if len(finite) > 1:
        return f"{mean:.3f} ± {statistics.stdev(finite):.3f}"
    return f"{mean:.3f}"


def merge_note(row: Row, stats: dict[str, dict[str, float]]) -> str:
    """What a merge reported about itself (mean over seeds), e.g. SLERP's linear fallback."""
    found = [stats[v] for v in sorted(row.variants) if v in stats]
    if not found:
        return "—"
    keys = sorted({k for s in found for k in s})
    parts = []
    for k in keys:
        values = [s[k] for s in found if k in s and math.isfinite(s[k])]
        parts.append(f"{k} {statistics.fmean(values):.3g}" if values else f"{k} n/a")
    return md(", ".join(parts)) or "—"


def arrow(metric: str) -> str:
    return f"{metric} {'↓' if metric in LOWER_IS_BETTER else '↑'}"


def load_rows(store: Store, profile: str, seed: int, only: set[str] | None = None
              ) -> tuple[list[Row], list[str], list[str]]:
    rows: dict[tuple, Row] = {}
    tasks: set[str] = set()
    metrics: set[str] = set()
    for r in store.query(
            "SELECT s.variant, v.grp, v.encoder, v.adapter, v.train_task, v.merge, v.seed, s.task, "
            "s.metric, s.value FROM scores s JOIN variants v ON v.key = s.variant "
            "WHERE s.profile = ? AND s.eval_seed = ?", (profile, seed)):
        if only is not None and r["variant"] not in only:
            continue
        key = (r["encoder"], r["adapter"], r["train_task"], r["merge"])
        row = rows.setdefault(key, Row(r["grp"], r["encoder"], r["adapter"], r["train_task"],
                                       r["merge"]))
        if r["seed"] is not None and r["seed"] not in row.seeds:
            row.seeds.append(r["seed"])
        row.variants.add(r["variant"])
        value = r["value"] if r["value"] is not None else math.nan
        row.values[(r["task"], r["metric"])].append(value)
        tasks.add(r["task"])
        metrics.add(r["metric"])
    return sorted(rows.values(), key=Row.sort_key), sorted(tasks), sorted(metrics)


def _mean_over(row: Row, tasks: list[str], metric: str) -> list[float]:
    """Per seed-slot means over tasks (values are aligned by seed order)."""
    series = [row.values.get((t, metric), []) for t in tasks]
    series = [s for s in series if s]
    if not series:
        return []
    n = min(len(s) for s in series)
    out = []
    for i in range(n):
        vals = [s[i] for s in series if math.isfinite(s[i])]
        out.append(statistics.fmean(vals) if vals else math.nan)
    return out


def render(store: Store, profile: str | None = None, seed: int | None = None,
           only: set[str] | None = None) -> str:
    """The leaderboard of a profile and eval seed (default: the latest run's); ``only``
    restricts it to these variant keys (``harness run`` shows the variants of its own plan)."""
    latest = store.query("SELECT profile, seeds FROM runs ORDER BY id DESC LIMIT 1")
    if profile is None:
        profile = latest[0]["profile"] if latest else "quick"
    if seed is None:
        seed = store.query("SELECT eval_seed FROM scores WHERE profile = ? ORDER BY run_id DESC "
                           "LIMIT 1", (profile,))
        seed = seed[0]["eval_seed"] if seed else 0
    rows, tasks, metrics = load_rows(store, profile, int(seed), only)
    stats = {k: v for k, v in store.merge_stats().items() if only is None or k in only}
    show_stats = any(v in stats for row in rows for v in row.variants)
    on = [m for m in HEADLINE_ON if m in metrics] or metrics[:3]
    off = [m for m in HEADLINE_OFF if m in metrics] or metrics[:2]
    out = ["# Leaderboard", "",
           f"Profile `{md(profile)}`, evaluation seed {seed}: {len(rows)} variants × "
           f"{len(tasks)} eval tasks. Generated by `harness run` / `harness leaderboard` from the "
           "results store; do not edit by hand.", "",
           "*On task*: scored on the task the variant was trained on. *Off task*: mean over the "
           "other eval tasks (for a base model, over all tasks). ↑ higher is better, "
           "↓ lower is better; `a ± b` is the mean ± standard deviation over seeds; n/a: "
           "undefined (see the notes)." + (MERGE_NOTE if show_stats else ""), "",
           "## Headline", ""]
    header = ["family", "variant", "seeds"] + [f"on-task {arrow(m)}" for m in on] + \
        [f"off-task {arrow(m)}" for m in off] + (["merge"] if show_stats else [])
    table = []
    for row in rows:
        line = [md(row.group), md(row.name), str(len(row.seeds) or "-")]
        for m in on:
            line.append(fmt(row.values.get((row.train_task, m), [])) if row.train_task else "—")
        for m in off:
            others = [t for t in tasks if t != row.train_task]
            line.append(fmt(_mean_over(row, others, m)))
        if show_stats:
            line.append(merge_note(row, stats))
        table.append(line)
    out += [tabulate(table, header, tablefmt="github", disable_numparse=True), ""]
    out += ["## Every metric on every eval task", ""]
    for m in metrics:
        out += [f"### {md(arrow(m))}", ""]
        body = [[md(row.name)] + [fmt(row.values.get((t, m), [])) for t in tasks]
                for row in rows]
        out += [tabulate(body, ["variant"] + [md(t) for t in tasks], tablefmt="github",
                         disable_numparse=True), ""]
    out += _notes(store, profile, int(seed), only)
    return "\n".join(out).rstrip() + "\n"


def _notes(store: Store, profile: str, seed: int, only: set[str] | None) -> list[str]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for n in store.query("SELECT variant, metric, note FROM scores WHERE profile = ? AND "
                         "eval_seed = ? AND note != ''", (profile, seed)):
        if only is None or n["variant"] in only:
            counts[(n["metric"], n["note"])] += 1
    notes = [{"metric": m, "note": t, "n": c} for (m, t), c in sorted(counts.items())]
    failures = store.query("SELECT f.variant, v.encoder, v.adapter, v.train_task, v.merge, "
                           "f.task, f.error "
                           "FROM failures f JOIN variants v ON v.key = f.variant "
                           "WHERE f.profile = ? AND f.eval_seed = ? ORDER BY v.encoder, "
                           "v.adapter, v.train_task, v.merge, f.task", (profile, seed))
    out: list[str] = []
    if notes:
        out += ["## Notes", ""] + [f"- `{md(n['metric'])}` n/a in {n['n']} cells: "
                                   f"{md(n['note'])}" for n in notes] + [""]
    failures = [f for f in failures if only is None or f["variant"] in only]
    if failures:
        out += ["## Failed cells", ""]
        for f in failures:
            first = f["error"].splitlines()[0] if f["error"] else ""
            out.append(f"- {md(f['encoder'])} {md(f['adapter'])}@{md(f['train_task'])} "
                       f"{md(f['merge'])} on {md(f['task'])}: {md(first)}")
        out.append("")
    return out


def write(store: Store, out: Path, profile: str | None = None, seed: int | None = None,
          only: set[str] | None = None) -> Path:
    atomic_write_text(out, render(store, profile, seed, only))
    return out
