"""Store -> ``leaderboard/README.md``. Deterministic: the same store gives the same bytes."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

from harness.findings import Figures, Row, fmt_est
from harness.plots import Loader, write_plots
from harness.store import Store, atomic_write_text

LoaderFactory = Callable[[str, int], Loader]  # (profile, eval seed) -> embeddings loader
PLOT_FILES = ("slerp-sweep.png", "train-eval.png", "projection.png")

LOWER_IS_BETTER = {"davies-bouldin"}  # for arrows only; values are never flipped
MERGE_ORDER = ("none", "soup", "greedy-soup", "slerp", "linear")  # then the others by name
GROUP_ORDER = ("non-LLM random init", "non-LLM from scratch", "non-LLM base",
               "non-LLM fine-tuned", "LLM base", "LLM + LoRA", "LLM + ")
MERGE_NOTE = ("*merge*: what the merge reported about itself, mean over seeds (`linear "
              "fallback`: the fraction of tensors whose SLERP endpoints were so nearly parallel, "
              "|cos| > 0.9995, that it interpolated linearly; at 1 that SLERP *is* averaging).")


def md(text: object) -> str:
    """Escape a plugin-provided string for a markdown table cell."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(s.split())


def sort_key(row: Row) -> tuple:
    rank = next((i for i, g in enumerate(GROUP_ORDER) if row.group.startswith(g)),
                len(GROUP_ORDER))
    kind = row.merge_kind
    merge_rank = MERGE_ORDER.index(kind) if kind in MERGE_ORDER else len(MERGE_ORDER)
    return (row.encoder, rank, row.adapter, merge_rank, row.merge, row.train_task or "")


def fmt(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    mean = statistics.fmean(finite)
    if len(finite) > 1:
        return f"{mean:.3f} ± {statistics.stdev(finite):.3f}"
    return f"{mean:.3f}"


def arrow(metric: str) -> str:
    return f"{metric} {'↓' if metric in LOWER_IS_BETTER else '↑'}"


def load_rows(store: Store, profile: str, seed: int, only: set[str] | None = None
              ) -> tuple[list[Row], list[str], list[str]]:
    rows: dict[tuple, Row] = {}
    by_variant: dict[str, Row] = {}
    tasks: set[str] = set()
    metrics: set[str] = set()
    cells: dict[tuple[str, str], tuple[Row, str, str]] = {}
    latest: dict[tuple[str, str], object] = {}  # (cell, metric): a newer version replaces older
    for r in store.query(
            "SELECT s.cell, s.metric_key, s.variant, v.grp, v.encoder, v.adapter, v.train_task, "
            "v.merge, v.seed, s.task, s.metric, s.value FROM scores s JOIN variants v ON "
            "v.key = s.variant WHERE s.profile = ? AND s.eval_seed = ? ORDER BY s.run_id, "
            "s.rowid", (profile, seed)):
        if only is None or r["variant"] in only:
            latest[(r["cell"], r["metric"])] = r
    for r in sorted(latest.values(), key=lambda r: (r["seed"] if r["seed"] is not None else -1,
                                                    r["cell"], r["metric"])):
        key = (r["encoder"], r["adapter"], r["train_task"], r["merge"])
        row = rows.setdefault(key, Row(r["grp"], r["encoder"], r["adapter"], r["train_task"],
                                       r["merge"]))
        if r["seed"] is not None and r["seed"] not in row.seeds:
            row.seeds.append(r["seed"])
        row.variants.add(r["variant"])
        by_variant[r["variant"]] = row
        value = r["value"] if r["value"] is not None else math.nan
        row.values.setdefault((r["task"], r["metric"]), []).append(value)
        cells[(r["cell"], r["metric_key"])] = (row, r["task"], r["metric"])
        tasks.add(r["task"])
        metrics.add(r["metric"])
    for (cell, mk), values in sorted(store.samples({c for c, _ in cells}).items()):
        if (cell, mk) in cells:
            row, task, metric = cells[(cell, mk)]
            row.samples.setdefault((task, metric), []).append(values)
    task_set = json.dumps(sorted(tasks))
    cka: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    enc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for a in store.query("SELECT variant, tasks, kind, name, value, lo, hi FROM analyses "
                         "WHERE profile = ? AND eval_seed = ? ORDER BY variant, kind, name",
                         (profile, seed)):
        row = by_variant.get(a["variant"])
        if row is None or json.dumps(sorted(json.loads(a["tasks"]))) != task_set:
            continue  # analysed on another pool than the one shown
        value = a["value"] if a["value"] is not None else math.nan
        if a["kind"] == "cka":
            cka[a["variant"]].append((value, a["lo"], a["hi"]))
        else:
            enc[(a["variant"], a["name"])].append(value)
    for variant, row in by_variant.items():
        if variant in cka and row.cka is None:
            found = [c for v in sorted(row.variants) for c in cka.get(v, [])]
            row.cka = tuple(float(statistics.fmean(c[i] for c in found)) for i in range(3))
    for (variant, name), values in enc.items():
        by_variant[variant].encoded.setdefault(name, values[0])
    return sorted(rows.values(), key=sort_key), sorted(tasks), sorted(metrics)


def merge_note(row: Row, stats: dict[str, dict[str, float]]) -> str:
    """What a merge reported about itself (mean over seeds), e.g. SLERP's linear fallback."""
    found = [stats[v] for v in sorted(row.variants) if v in stats]
    if not found:
        return "—"
    parts = []
    for k in sorted({k for s in found for k in s}):
        values = [s[k] for s in found if k in s and math.isfinite(s[k])]
        parts.append(f"{k} {statistics.fmean(values):.3g}" if values else f"{k} n/a")
    return md(", ".join(parts)) or "—"


def source_hash() -> str:
    """A hash of the harness's own source (core, built-in plugins and tasks)."""
    import harness
    import harness.plugins
    import harness.tasks

    digest = hashlib.sha256()
    for package in (harness, harness.plugins, harness.tasks):
        root = Path(package.__file__).parent
        for path in sorted(root.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def render(store: Store, profile: str | None = None, seed: int | None = None,
           only: set[str] | None = None, compositional: set[str] | None = None,
           plot_dir: Path | None = None, loader: LoaderFactory | None = None) -> str:
    """The leaderboard of a profile and eval seed (default: the latest run's); ``only``
    restricts it to these variant keys (``harness run`` shows the variants of its own plan);
    ``compositional`` names the tasks claim 1 is judged on. With ``plot_dir``, the figures are
    written there and linked; ``loader(profile, seed)`` gives the stored embeddings they need."""
    latest = store.query("SELECT profile, seeds FROM runs ORDER BY id DESC LIMIT 1")
    if profile is None:
        profile = latest[0]["profile"] if latest else "quick"
    if seed is None:
        seed = store.query("SELECT eval_seed FROM scores WHERE profile = ? ORDER BY run_id DESC "
                           "LIMIT 1", (profile,))
        seed = seed[0]["eval_seed"] if seed else 0
    rows, tasks, metrics = load_rows(store, profile, int(seed), only)
    fig = Figures(rows, tasks, metrics, int(seed))
    p = fig.primary
    stats = {k: v for k, v in store.merge_stats().items() if only is None or k in only}
    show_stats = any(v in stats for row in rows for v in row.variants)
    out = ["# Leaderboard", "",
           f"Profile `{md(profile)}`, evaluation seed {seed}: {len(rows)} variants × "
           f"{len(tasks)} eval tasks. Generated by `harness run` / `harness leaderboard` from the "
           "results store; do not edit by hand.", ""]
    out += _claims(fig, compositional or set())
    out += ["## Headline", "",
            f"*On task*: scored on the task the variant was trained on; *off task*: mean over "
            f"the other eval tasks (for a base model, over all of them). *Gain* and *off-task "
            f"Δ*: the same figures minus its base model's on the same sequences; *balance* = "
            f"(gain + off-task Δ) / 2, in `{md(p)}`. *CKA*: linear CKA between the variant's "
            "and its base's embeddings of the whole evaluation pool (1 = the base's geometry). "
            "`v [lo, hi]`: the value and its 95% paired bootstrap interval over the evaluation "
            "sequences (CKA: half-sampling); with several seeds, the mean over seeds. *best*: "
            "★ the best balance per encoder and train task; ≈★ one whose interval against the "
            "★ includes zero, so this run cannot rank them." + (" " + MERGE_NOTE if show_stats
                                                                 else ""), ""]
    second = next((m for m in ("probe-accuracy", "knn-accuracy") if m in metrics and m != p),
                  None)
    header = ["family", "variant", "seeds", f"on-task {arrow(p)}"] + \
        ([f"on-task {arrow(second)}"] if second else []) + \
        [f"off-task {arrow(p)}", "gain", "off-task Δ", "balance", "CKA to base", "best"] + \
        (["merge"] if show_stats else [])
    marks = fig.best_marks()
    table = []
    for row in rows:
        trained = row.train_task is not None
        line = [md(row.group), md(row.name), str(len(row.seeds) or "-"),
                fmt_est(fig.on_task(row)) if trained else "—"]
        if second:
            line.append(fmt_est(fig.on_task(row, second)) if trained else "—")
        line += [fmt_est(fig.off_task(row)),
                 fmt_est(fig.gain(row), signed=True) if trained else "—",
                 fmt_est(fig.off_change(row), signed=True) if trained else "—",
                 fmt_est(fig.balance(row), signed=True) if trained else "—",
                 (f"{row.cka[0]:.3f} [{row.cka[1]:.2f}, {row.cka[2]:.2f}]"
                  if row.cka and math.isfinite(row.cka[0]) else "n/a"),
                 marks.get(id(row), "")]
        if show_stats:
            line.append(merge_note(row, stats))
        table.append(line)
    out += [tabulate(table, header, tablefmt="github", disable_numparse=True), ""]
    if plot_dir is not None:
        out += _plots(fig, plot_dir, loader(profile, int(seed)) if loader else None)
    out += _matrices(fig)
    out += _encoded(rows, tasks)
    out += ["## Every metric on every eval task", "",
            "`a ± b`: the mean ± standard deviation over seeds.", ""]
    for m in metrics:
        out += [f"### {md(arrow(m))}", ""]
        body = [[md(row.name)] + [fmt(row.values.get((t, m), [])) for t in tasks]
                for row in rows]
        out += [tabulate(body, ["variant"] + [md(t) for t in tasks], tablefmt="github",
                         disable_numparse=True), ""]
    out += _notes(store, profile, int(seed), only)
    out += _reproducibility(store, profile, int(seed), rows)
    return "\n".join(out).rstrip() + "\n"


def _plots(fig: Figures, folder: Path, load: Loader | None) -> list[str]:
    made = write_plots(fig, load, folder)
    for stale in set(PLOT_FILES) - {name for _, name in made}:
        (folder / stale).unlink(missing_ok=True)  # a figure this store no longer supports
    if not made:
        return []
    out = ["## Plots", ""]
    for title, name in made:
        out += [f"### {md(title)}", "", f"![{md(title)}]({name})", ""]
    return out


def _claims(fig: Figures, compositional: set[str]) -> list[str]:
    out = ["## The paper's claims, judged by this run", "",
           "Computed from the figures below, not written by hand: *supported* when every "
           "comparison listed goes the claimed way with its 95% interval excluding zero, *not "
           "supported* when one goes the other way with its interval excluding zero, "
           "*inconclusive* otherwise.", ""]
    for i, (title, verdict, lines) in enumerate(fig.claims(compositional), 1):
        out.append(f"{i}. **{md(title)}**: **{verdict}**.")
        out += [f"   - {line}" for line in lines]
    return out + [""]


def _matrices(fig: Figures) -> list[str]:
    groups: dict[tuple[str, str, str], dict[str, Row]] = {}
    for row in fig.rows:
        if row.train_task is not None and row.encoder in fig.bases:
            groups.setdefault((row.encoder, row.adapter, row.merge), {})[row.train_task] = row
    if not groups:
        return []
    out = ["## Train task × eval task", "",
           f"Change in `{md(fig.primary)}` against the base model, for each train task (rows) "
           "on each eval task (columns). The diagonal is the gain; the rest is what training on "
           "one task did to the others (adapter dominance shows as a bright diagonal and "
           "negative elsewhere).", ""]
    for (encoder, adapter, merge), by_task in groups.items():
        base = fig.bases[encoder]
        name = f"{encoder} + {adapter}" + ("" if merge == "none" else f" + {merge}")
        out += [f"### {md(name)}", ""]
        body = []
        for train in sorted(by_task):
            row = by_task[train]
            cells = []
            for t in fig.tasks:
                d = fig.score(row, t, fig.primary).value - fig.score(base, t, fig.primary).value
                text = f"{d:+.3f}" if math.isfinite(d) else "n/a"
                cells.append(f"**{text}**" if t == train else text)
            body.append([md(train)] + cells)
        out += [tabulate(body, ["train \\ eval"] + [md(t) for t in fig.tasks],
                         tablefmt="github", disable_numparse=True), ""]
    return out


def _encoded(rows: list[Row], tasks: list[str]) -> list[str]:
    with_data = [r for r in rows if r.encoded]
    if not with_data:
        return []
    names = [t for t in tasks if any(t in r.encoded for r in with_data)]
    names += sorted({n for r in with_data for n in r.encoded} - set(names))
    out = ["## What else is encoded", "",
           "Adjusted mutual information between k-means clusters of each variant's embeddings "
           "of the whole evaluation pool (k = the attribute's number of values) and every "
           "task's labels (where the task applies) or a nuisance attribute of the sequence "
           "(`length`, `magnitude`: tercile of its largest element, `leading digit` of its "
           "first element). 0 = chance, 1 = the clusters are the attribute.", ""]
    by_encoder: dict[str, list[Row]] = defaultdict(list)
    for row in with_data:
        by_encoder[row.encoder].append(row)
    for encoder, members in by_encoder.items():
        out += [f"### {md(encoder)}", ""]
        body = [[md(r.name)] + [f"{r.encoded[n]:.2f}" if math.isfinite(r.encoded.get(n, math.nan))
                                else "n/a" for n in names] for r in members]
        out += [tabulate(body, ["variant"] + [md(n) for n in names], tablefmt="github",
                         disable_numparse=True), ""]
    return out


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


def _reproducibility(store: Store, profile: str, seed: int, rows: list[Row]) -> list[str]:
    latest = store.query("SELECT packages FROM runs WHERE profile = ? ORDER BY id DESC LIMIT 1",
                         (profile,))
    packages = json.loads(latest[0]["packages"]) if latest else {}
    seeds = sorted({s for r in rows for s in r.seeds})
    out = ["## Reproducibility", "",
           f"- profile `{md(profile)}`, evaluation seed {seed}, training seeds "
           f"{', '.join(map(str, seeds)) or '—'}",
           f"- harness source hash `{source_hash()}` (core, built-in plugins and tasks)",
           "- packages: " + ", ".join(f"{md(k)} {md(v)}" for k, v in sorted(packages.items())),
           "- regenerate: `make run` (or `harness run --all`), then compare with `git diff "
           "leaderboard/`",
           "- the git commit and wall time of each run are in the store's `runs` table; they "
           "differ between otherwise identical runs, so this page, which must come out byte for "
           "byte the same, leaves them out", ""]
    return out


def write(store: Store, out: Path, profile: str | None = None, seed: int | None = None,
          only: set[str] | None = None, compositional: set[str] | None = None,
          loader: LoaderFactory | None = None) -> Path:
    """Render to ``out``, with the figures as PNG files beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render(store, profile, seed, only, compositional, out.parent, loader))
    return out
