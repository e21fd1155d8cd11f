"""The leaderboard's "Merge-method ranking" section, from ``merging.Ranking``: the ranking
with each method's rank interval, Holm-corrected comparison with the best and effective
coefficient, its adjacent pairs, and each merged model's figures (definitions in ``merging``,
``ranks`` and ``harness.tuning``)."""

from __future__ import annotations

import math
import statistics

from harness import oracle
from harness.report import power, ranks, tables
from harness.report.figures import Figures, fmt_est, fmt_power
from harness.report.merging import Merged, Ranked, Ranking, merged_tasks, method
from harness.report.rows import Row, coefficients, merge_note
from harness.report.stats import RESAMPLES, detectable
from harness.report.tables import md

INTRO = (
    "Several task-specific fine-tunes of one base merged into one model (`over=tasks`), each "
    "merged task scored on it against its own fine-tune, on `{metric}`. *retention* = (merged "
    "− base) / (fine-tune − base) on a merged task: the share of the fine-tune's gain kept (n/a "
    "where the fine-tune's own gain has an interval that includes zero); *vs fine-tune* = "
    "merged − fine-tune there, defined on every merged task (the ranking's *mean vs fine-tune* "
    "averages it over them). λ (and density) are chosen on validation samples of the merged "
    "tasks, disjoint from the eval samples (the chosen values are in *merge*), every method's "
    "λ from the same *effective coefficients* 0.25–1.25: the mean least-squares coefficient of "
    "its merged task vector on the task vectors it merged (task arithmetic's is λ itself, "
    "TIES's about λ/2, a soup's 1/K), so that methods differ by how they combine the task "
    "vectors, not by how much of them they add. Soup and SLERP are merged as the paper merges "
    "them, with no λ; `rescale=silhouette` gives any merge the same choice of scale (a "
    "rescaled soup *is* task arithmetic). *coefficient (outside)*: the mean effective "
    "coefficient and, in brackets, the share of the merged task vector outside the task "
    "vectors' span (what trimming, dropping or spectral methods add that no weighted sum of "
    "task vectors has). A random merge (DARE's masks) is the mean over its draws, which its "
    "intervals resample; *seeds (draws)* gives their spread. ★ best mean retention; ≈★ one the "
    "run cannot separate from it: its paired difference from the best is not significant once "
    "corrected for the number of comparisons (Holm's step-down rule at 5% over every pair of "
    "methods; *p vs ★*: the Holm-adjusted two-sided bootstrap p-value). *rank (P first)*: the "
    "range of its rank in 95% of the paired bootstrap draws, and the share of draws in which "
    "it ranks first. *Adjacent ranks*: each method against the next, the paired difference in "
    "mean retention; *separated* where it is significant at 5%, Holm-corrected over every pair "
    "of methods (*p (Holm)*), *tied* where it is not; *detectable*: the smallest difference it "
    "could detect (95% two-sided, 80% power, {power}).")


def draws(row: Row, metric: str) -> str:
    """Training seeds, and for a random merge (``Merge.replicates``) its draws per seed with the
    spread (standard deviation) over them of its mean over the merged tasks, in ``metric``."""
    seeds = max(len(row.seeds), 1)
    tasks = [t for t in merged_tasks(row) if (t, metric) in row.values]
    counts = {len(row.values[(t, metric)]) for t in tasks}
    if len(counts) != 1 or (n := counts.pop()) <= seeds:
        return str(len(row.seeds))
    means = [statistics.fmean(row.values[(t, metric)][i] for t in tasks) for i in range(n)]
    return f"{len(row.seeds)} × {n // seeds} draws (sd {statistics.stdev(means):.3f})"


def section(fig: Figures, stats: dict[str, dict[str, float]],
            ranking: Ranking | None = None) -> list[str]:
    """The leaderboard's "Merge-method ranking" section (empty without cross-task merges)."""
    ranking = ranking or Ranking(fig)
    if not ranking.found:
        return []
    seeds = Figures.seeds_of(ranking.cross)
    out = ["## Merge-method ranking", "",
           INTRO.format(metric=md(ranking.metric), power=power.method(seeds)), ""]
    if seeds == 1:
        out += ["One training seed: between-run variance is not in these intervals.", ""]
    elif seeds > 1:
        out += [f"{seeds} training seeds or more per merged model: the intervals resample "
                "them, a t-interval over the seeds where between-run spread dominates.", ""]
    out += _defined(ranking)
    ranked = ranking.table()
    scale = {name: _mean_coefficient([m.row for m in found], stats)
             for name, found in ranking.methods().items()}
    gap = {name: oracle_gap(ranking, found, stats) for name, found in ranking.methods().items()}
    body = [[md(r.method) + (f" {r.mark}" if r.mark else ""), fmt_est(r.retention),
             ranks.fmt_rank(r.rank), "—" if r.mark == "★" else ranks.fmt_p(r.p, RESAMPLES),
             gap[r.method], scale[r.method], fmt_est(r.versus, signed=True),
             fmt_est(r.off, signed=True),
             f"{r.cka:.3f}" if r.cka is not None else "n/a", str(r.models)]
            for r in ranked]
    out += _table(body, ["method", "mean retention", "rank (P first)", "p vs ★",
                         "oracle gap", "coefficient (outside)", "mean vs fine-tune",
                         "off-task change",
                         "CKA to base", "merged models"])
    pairs = adjacent(ranked, seeds)
    if pairs:
        split = sum(p[-1] == "separated" for p in pairs)
        out += ["", f"Adjacent ranks: the run separates {split} of {len(pairs)} pairs.", ""]
        out += _table(pairs, ["pair", "difference in mean retention", "detectable",
                              "p (Holm)", "separated / tied"])
    out += ["", "Per merged model (each merged task: retention, then merged − fine-tune):", ""]
    detail = []
    for m in sorted(ranking.found, key=lambda m: (m.row.encoder, m.row.adapter, method(m.row))):
        # each plugin string through md once; the figures' own brackets stay as they are
        tasks = "; ".join(
            f"{md(t)}: {fmt_est(e) if e is not None else 'n/a'} / {fmt_est(v, signed=True)}"
            for t, (e, _, v) in m.per_task.items())
        why = "; ".join(f"{md(t)} n/a: {w}" for t, (e, w, _) in m.per_task.items() if w)
        detail.append([md(m.row.encoder), md(m.row.adapter), md(method(m.row)),
                       draws(m.row, ranking.metric), tasks,
                       fmt_est(m.retention) if m.retention is not None else "n/a",
                       fmt_est(m.off, signed=True), md(_per_task(m.row, stats)),
                       md(merge_note(m.row, stats)), why or "—"])
    out += _table(detail, ["encoder", "adapter", "method", "seeds (draws)",
                           "per task (retention / vs fine-tune)", "mean retention",
                           "off-task change", "coefficient per task (outside)", "merge",
                           "n/a because"])
    return out + [""]


def adjacent(ranked: list[Ranked], seeds: int) -> list[list[str]]:
    """Each adjacent pair of a ranking: the paired difference of their mean retention with its
    interval, its MDE, its Holm-adjusted p-value (over every pair of methods), and whether the
    run separates them at 5% after that correction."""
    body = []
    for a, b in zip(ranked, ranked[1:], strict=False):
        ea, eb = a.retention, b.retention
        if ea is None or eb is None or not (math.isfinite(ea.value) and math.isfinite(eb.value)):
            body.append([f"{md(a.method)} − {md(b.method)}", "n/a", "n/a", "n/a", "n/a"])
            continue
        diff = ea - eb
        body.append([f"{md(a.method)} − {md(b.method)}", fmt_est(diff, signed=True),
                     fmt_power(detectable(diff, seeds)), ranks.fmt_p(a.p_next, RESAMPLES),
                     "separated" if ranks.rejected(a.p_next) else "tied"])
    return body


def _per_task(row: Row, stats: dict[str, dict[str, float]]) -> str:
    per, outside = coefficients(row, stats)
    if not per:
        return "n/a"
    return ", ".join(f"{t} {a:.2f}" for t, a in per.items()) + \
        (f" ({outside:.2f})" if outside is not None else "")


def oracle_gap(ranking: Ranking, found: list[Merged], stats: dict[str, dict[str, float]]
               ) -> str:
    """A method's *oracle gap*: the mean over its merged models (and their seeds) of how much
    more mean retention the candidate best on the eval samples has than the one chosen on the
    validation samples, both scored in the oracle's pass (``harness.oracle``), each task's
    difference over its fine-tune's gain, on the tasks where retention is defined. "—": the
    method chooses nothing; "n/a": a model of it has no oracle scores in this metric."""
    fig, metric = ranking.fig, ranking.metric
    per_model: list[float | None] = []
    for m in found:
        scored = [stats[v] for v in sorted(m.row.variants)
                  if oracle.COUNT in stats.get(v, {})]
        if not scored:
            per_model.append(None)
            continue
        gaps = []
        for s in scored:
            for task, (kept, _, _) in m.per_task.items():
                tune = ranking.fine_tune(m.row, task)
                best = s.get(oracle.stat(oracle.ORACLE, metric, task))
                chosen = s.get(oracle.stat(oracle.TUNED, metric, task))
                if kept is None or tune is None or best is None or chosen is None:
                    continue
                sign = fig.direction(metric)
                gain = sign * (fig.score(tune, task, metric).value
                               - fig.score(fig.bases[m.row.encoder], task, metric).value)
                gaps.append(sign * (best - chosen) / gain)
        per_model.append(statistics.fmean(gaps) if gaps else math.nan)
    if all(g is None for g in per_model):
        return "—"
    if any(g is None or not math.isfinite(g) for g in per_model):
        return "n/a"
    return f"{statistics.fmean(g for g in per_model if g is not None):+.3f}"


def _mean_coefficient(rows: list[Row], stats: dict[str, dict[str, float]]) -> str:
    """The mean over a method's merged models of their mean coefficient, with the mean share
    outside the task vectors' span."""
    found = [coefficients(r, stats) for r in rows]
    if not found or any(not per for per, _ in found):
        return "n/a"
    mean = statistics.fmean(statistics.fmean(per.values()) for per, _ in found)
    outside = [o for _, o in found if o is not None]
    return f"{mean:.2f}" + (f" ({statistics.fmean(outside):.2f})" if outside else "")


def _table(body: list[list[str]], header: list[str]) -> list[str]:
    return tables._table(body, header).splitlines()


def _defined(ranking: Ranking) -> list[str]:
    """How many merged tasks a retention is defined on (a fine-tune that gained nothing has
    nothing to keep: its task drops out of its model's mean)."""
    count: dict[str, list[int]] = {}
    for m in ranking.found:
        for task, (kept, _, _) in m.per_task.items():
            count.setdefault(task, [0, 0])[kept is not None] += 1
    missing = sum(n for n, _ in count.values())
    if not missing:
        return []
    per = ", ".join(f"{md(t)} {k} of {n + k}" for t, (n, k) in sorted(count.items()))
    return [f"Retention is defined on {sum(k for _, k in count.values())} of "
            f"{sum(n + k for n, k in count.values())} merged tasks (per task, the merged models "
            f"whose fine-tune's gain is above zero: {per}); each mean retention is over its "
            "model's defined tasks only, so where one task remains the ranking ranks the "
            "methods on that task alone.", ""]
