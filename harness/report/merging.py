"""The merge-method ranking: merges of several task-specific fine-tunes of one base
(``over=tasks``), each merged task scored on the merged model against its own fine-tune.

On the primary metric, in its direction (positive is better), per merged task k:

- *retention* = (merged − base) / (fine-tune − base) on k: the share of the fine-tune's own gain
  the merged model keeps (1: all of it; 0: none; below 0: worse than the base). Defined only
  where the fine-tune's gain on k has a 95% interval above zero; otherwise n/a with the reason (a
  ratio of scores breaks for silhouette near zero and for lower-is-better metrics, and a ratio
  to a gain that may be zero is noise);
- *vs fine-tune* = merged − fine-tune on k, in metric units, always defined.

Per merged model: mean retention over its merged tasks where defined, off-task change (mean over
the eval tasks it did not merge whose labels are independent of every merged task's, minus the
base's mean there) and CKA to the base. The ranking averages each method's figures over
encoders × task sets; its intervals are paired (every variant shares the bootstrap's row
resamples and, with the same seeds, its seed resamples), so ★ marks the best mean retention and
≈★ every method whose difference from it is not significant at 5%, Holm-corrected over every
pair of methods (``ranks``); each method's rank interval comes from the same draws.
The page's section is ``ranking_page``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from harness.report import power, ranks
from harness.report.figures import Figures, Judged, fmt_est
from harness.report.rows import Row
from harness.report.stats import Estimate, detectable, mean_of


def merged_tasks(row: Row) -> list[str]:
    """The tasks a cross-task merge combined (empty for every other row)."""
    return [str(t) for t in row.roles.get("tasks") or []]


def method(row: Row) -> str:
    """A cross-task merge's method: its label without ``over=tasks``."""
    name, _, params = row.merge.partition(":")
    kept = [p for p in params.split(",") if p and p != "over=tasks"] if params else []
    return name + (":" + ",".join(kept) if kept else "")


def ratio(num: Estimate, den: Estimate) -> Estimate:
    """num / den with paired draws (a draw whose denominator is 0 is NaN)."""
    value = num.value / den.value if den.value else math.nan
    if num.draws is None or den.draws is None:
        return Estimate(value)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = np.where(den.draws != 0, num.draws / den.draws, np.nan)
    return Estimate(value, draws)


@dataclass
class Merged:
    row: Row
    #: merged task -> (retention or None, why it is n/a, merged − fine-tune)
    per_task: dict[str, tuple[Estimate | None, str, Estimate | None]]
    retention: Estimate | None
    off: Estimate | None
    off_tasks: list[str]


@dataclass
class Ranked:
    """A method's row of the ranking: its figures averaged over its merged models (mean
    retention only where every one of them has it; *versus*, merged − fine-tune, over every
    merged task of every one)."""
    method: str
    retention: Estimate | None
    versus: Estimate | None
    off: Estimate | None
    cka: float | None
    models: int
    mark: str = ""
    #: (lowest, highest rank in 95% of the paired draws, share of draws ranked first)
    rank: tuple[int, int, float] | None = None
    #: the Holm-adjusted p-values (over every pair of methods) of its difference from the best
    #: (None for the best) and from the next method
    p: float | None = None
    p_next: float | None = None


class Ranking:
    """The ranking on ``metric`` (default: the figures' primary metric)."""

    def __init__(self, fig: Figures, metric: str | None = None):
        self.fig = fig
        self.metric = metric or fig.primary
        self.cross = [r for r in fig.rows if merged_tasks(r) and r.encoder in fig.bases]
        self.found = [self._of(r) for r in self.cross]

    def fine_tune(self, row: Row, task: str) -> Row | None:
        """The unmerged fine-tune on ``task`` of the same encoder and adapter."""
        return next((r for r in self.fig.rows if r.trained and not r.merged
                     and not merged_tasks(r) and r.encoder == row.encoder
                     and r.adapter == row.adapter and r.train_task == task), None)

    def _of(self, row: Row) -> Merged:
        fig, p = self.fig, self.metric
        base, sign = fig.bases[row.encoder], fig.direction(p)
        per_task: dict[str, tuple[Estimate | None, str, Estimate | None]] = {}
        for task in merged_tasks(row):
            tune = self.fine_tune(row, task)
            if tune is None or task not in fig.tasks:
                per_task[task] = (None, "no fine-tune on this task in the run", None)
                continue
            merged = fig.score(row, task, p)
            gain = (fig.score(tune, task, p) - fig.score(base, task, p)).scaled(sign)
            versus = (merged - fig.score(tune, task, p)).scaled(sign)
            ci = gain.interval()
            if ci is None or ci[0] <= 0:
                why = f"fine-tune gain {fmt_est(gain, signed=True)} not above zero"
                per_task[task] = (None, why, versus)
                continue
            kept = ratio((merged - fig.score(base, task, p)).scaled(sign), gain)
            per_task[task] = (kept, "", versus)
        defined = [e for e, _, _ in per_task.values() if e is not None]
        retention = mean_of(defined) if defined else None
        left_out = {d for t in merged_tasks(row) for d in fig.left_out(t)}
        others = [t for t in fig.tasks if t not in merged_tasks(row) and t not in left_out]
        off = (fig.over(row, others, p) - fig.over(base, others, p)).scaled(sign) \
            if others else None
        return Merged(row, per_task, retention, off, others)

    def methods(self) -> dict[str, list[Merged]]:
        out: dict[str, list[Merged]] = {}
        for m in self.found:
            out.setdefault(method(m.row), []).append(m)
        return out

    def table(self) -> list[Ranked]:
        """One row per method, best mean retention first."""
        rows = []
        for name, found in self.methods().items():
            kept = [m.retention for m in found if m.retention is not None]
            retention = mean_of(kept) if len(kept) == len(found) else None
            versus = [v for m in found for _, _, v in m.per_task.values() if v is not None]
            offs = [m.off for m in found if m.off is not None]
            ckas = [m.row.cka[0] for m in found if m.row.cka is not None]
            rows.append(Ranked(name, retention, mean_of(versus) if versus else None,
                               mean_of(offs) if offs else None,
                               statistics.fmean(ckas) if ckas else None, len(found)))
        ranked = sorted(rows, key=lambda r: -(r.retention.value if r.retention is not None
                                              and math.isfinite(r.retention.value)
                                              else -math.inf))
        top = ranked[0].retention if ranked else None
        intervals = ranks.rank_intervals([r.retention for r in ranked])
        pairs = ranks.pairwise([r.retention for r in ranked])
        for i, (r, interval) in enumerate(zip(ranked, intervals, strict=True)):
            r.rank, r.p, r.p_next = interval, pairs.get((0, i)), pairs.get((i, i + 1))
            if top is not None and r.retention is not None and math.isfinite(r.retention.value):
                r.mark = "★" if r.retention is top else \
                    "≈★" if not ranks.rejected(r.p) else ""
        return ranked


def balance(fig: Figures, m: Merged) -> Estimate | None:
    """(mean gain over the merged tasks + off-task change) / 2: the single-task balance, with
    the on-task gain averaged over the tasks merged."""
    base, p = fig.bases[m.row.encoder], fig.primary
    tasks = [t for t in merged_tasks(m.row) if t in fig.tasks]
    if not tasks or m.off is None:
        return None
    gain = (fig.over(m.row, tasks, p) - fig.over(base, tasks, p)).scaled(fig.direction(p))
    return (gain + m.off).scaled(0.5)


def claim3_across(fig: Figures, stats: dict[str, dict[str, float]], soup: str,
                  slerp: str, ranking: Ranking | None = None
                  ) -> tuple[str, Judged, list[str]] | None:
    """Claim 3 judged on SLERP across tasks, where it is not linear: LLM cross-task SLERPs whose
    mean linear-fallback fraction is below 0.5, each against the soup of the same fine-tunes.
    (label, its comparisons, lines), or None where the run has no such SLERP."""
    ranking = ranking or Ranking(fig)
    pairs = []
    for m in ranking.found:
        if m.row.family != "llm" or method(m.row) != slerp:
            continue
        fallback = [stats[v]["linear fallback"] for v in sorted(m.row.variants)
                    if "linear fallback" in stats.get(v, {})]
        if not fallback or statistics.fmean(fallback) >= 0.5:
            continue
        other = next((o for o in ranking.found if method(o.row) == soup
                      and (o.row.encoder, o.row.adapter, o.row.train_task)
                      == (m.row.encoder, m.row.adapter, m.row.train_task)), None)
        if other is not None and m.retention is not None and other.retention is not None:
            pairs.append((m, other, statistics.fmean(fallback)))
    if not pairs:
        return None
    kept = mean_of([m.retention for m, _, _ in pairs if m.retention is not None])
    vs_soup = mean_of([b - c for m, o, _ in pairs
                       if (b := balance(fig, m)) is not None and (c := balance(fig, o))
                       is not None])
    retention_soup = mean_of([o.retention for _, o, _ in pairs if o.retention is not None])
    over_half = kept - Estimate(0.5, None if kept.draws is None else np.full_like(kept.draws, 0.5))
    signs = [over_half.sign(), vs_soup.sign()]
    seeds = Figures.seeds_of([r for m, o, _ in pairs for r in (m.row, o.row)])
    named = [("retention over 0.5", detectable(over_half, seeds)),
             ("balance vs soup", detectable(vs_soup, seeds))]
    mean_fallback = statistics.fmean(f for _, _, f in pairs)
    lines = [f"across tasks, on `{slerp}:over=tasks` (the spherical mean of the task vectors; "
             f"linear fallback {mean_fallback:.2f}): mean retention {fmt_est(kept)} (\"most\" = "
             f"over 0.5) vs soup's {fmt_est(retention_soup)}",
             f"across tasks, balance SLERP − soup: {fmt_est(vs_soup, signed=True)}"]
    ckas = [(m.row.cka[0], o.row.cka[0]) for m, o, _ in pairs if m.row.cka and o.row.cka]
    if ckas:
        lines.append(f"across tasks, CKA to the base: SLERP "
                     f"{statistics.fmean(c[0] for c in ckas):.3f} vs soup "
                     f"{statistics.fmean(c[1] for c in ckas):.3f}")
    lines.append("across tasks, " + power.line(named, seeds))
    return "across tasks", Judged(signs, [p for _, p in named], seeds), lines
