"""Claim 3's single-task comparisons, for one merge named by its label: against the soup of
the same training runs' stage checkpoints and the unmerged model of those runs (LLM runs only),
and, for context, against its control (``Merge.control``) with the same endpoints.

The caller (``paper.claim3``) names the merges; nothing here names a built-in component.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import numpy as np

from harness.report import power
from harness.report.figures import Figures, Judged, fmt_est
from harness.report.rows import Row
from harness.report.stats import (
    Detectable,
    Estimate,
    detectable,
    detectable_se,
    interval_se,
    mean_of,
)
from harness.report.tables import md

Trio = tuple[Row, Row, Row]  # (the merge, soup, unmerged) of one training run


def same_run(fig: Figures, row: Row) -> list[Row]:
    return [r for r in fig.rows
            if (r.encoder, r.adapter, r.train_task) == (row.encoder, row.adapter, row.train_task)]


def params(label: str) -> dict[str, str]:
    """The parameters a merge's label names (``slerp:t=0.3`` -> ``{"t": "0.3"}``)."""
    return dict(p.split("=", 1) for p in label.partition(":")[2].split(",") if "=" in p)


def control_of(row: Row, same: list[Row]) -> Row | None:
    """A merge's control in its run: the row of the merge its ``control`` role names whose
    label's parameters are all among the merge's own with the same values, the most of them
    (``linear:between=checkpoints`` for ``slerp:between=checkpoints,space=task-vectors``,
    ``linear`` for ``slerp``)."""
    wanted, mine = row.roles.get("control"), params(row.merge).items()
    found = [r for r in same if wanted and r.merged and r.merge_kind == wanted
             and params(r.merge).items() <= mine]
    return max(found, key=lambda r: len(params(r.merge)), default=None)


def trios(fig: Figures, label: str, soup: str) -> list[Trio]:
    """Each LLM training run merged with ``label`` and ``soup``, with its unmerged model, where
    all three have on-task gains (no gain: not evaluated on its task)."""
    found = []
    for row in fig.rows:
        if row.trained and row.family == "llm" and row.merged and row.merge == label:
            same = same_run(fig, row)
            none = next((r for r in same if not r.merged), None)
            other = next((r for r in same if r.merged and r.merge == soup), None)
            if none and other and all(fig.gain(r) is not None for r in (row, other, none)):
                found.append((row, other, none))
    return found


def fallback(stats: dict[str, dict[str, float]], found: list[Trio]) -> float | None:
    """The mean fraction of tensors the merge interpolated linearly, over its variants."""
    values = [stats[v]["linear fallback"] for t in found for v in sorted(t[0].variants)
              if "linear fallback" in stats.get(v, {})]
    return statistics.fmean(values) if values else None


def compare(fig: Figures, found: list[Trio], soup: str
            ) -> tuple[Judged, list[str], dict[str, Estimate]]:
    """The comparisons (gain kept over half the unmerged gain, balance against ``soup`` and
    against no merge, CKA to the base against no merge), their lines, and the balance
    differences by name (``soup``'s, ``unmerged``, ``control`` where every run has it)."""
    def gain(row: Row) -> Estimate:  # never None here: each trio has its gains
        return fig.gain(row) or Estimate(math.nan)

    def balance(row: Row) -> Estimate:
        return fig.balance(row) or Estimate(math.nan)

    def avg(f: Callable[[Trio], Estimate]) -> Estimate:
        return mean_of([f(t) for t in found])

    cka_s = [t[0].cka for t in found if t[0].cka]
    cka_n = [t[2].cka for t in found if t[2].cka]
    kept = avg(lambda t: gain(t[0]) - gain(t[2]).scaled(0.5))
    diffs = {soup: avg(lambda t: balance(t[0]) - balance(t[1])),
             "unmerged": avg(lambda t: balance(t[0]) - balance(t[2]))}
    gain_s, gain_n = avg(lambda t: gain(t[0])), avg(lambda t: gain(t[2]))
    signs = [kept.sign(), diffs[soup].sign(), diffs["unmerged"].sign()]
    seeds = Figures.seeds_of([r for t in found for r in t])
    named: list[tuple[str, Detectable | None]] = [
        ("gain kept over half", detectable(kept, seeds)),
        (f"balance vs {soup}", detectable(diffs[soup], seeds)),
        ("balance vs unmerged", detectable(diffs["unmerged"], seeds))]
    lines = []
    if cka_s and len(cka_s) == len(cka_n):
        s = [float(np.mean([c[i] for c in cka_s])) for i in range(3)]
        n = [float(np.mean([c[i] for c in cka_n])) for i in range(3)]
        signs.append(1 if s[1] > n[2] else -1 if s[2] < n[1] else 0)
        # CKA's half-sample intervals are not paired draws: SE from both intervals
        named.append(("CKA vs unmerged", detectable_se(math.hypot(
            interval_se(s[1], s[2]), interval_se(n[1], n[2])), seeds)))
        lines.append(f"structure: CKA to the base, SLERP {s[0]:.3f} [{s[1]:.2f}, {s[2]:.2f}]"
                     f" vs unmerged {n[0]:.3f} [{n[1]:.2f}, {n[2]:.2f}]")
    ratio = gain_s.value / gain_n.value if gain_n.value else math.nan
    lines += [f"task gain kept: SLERP {fmt_est(gain_s, signed=True)} vs unmerged "
              f"{fmt_est(gain_n, signed=True)} ({ratio:.0%} kept; \"most\" = over half: "
              f"SLERP gain − half the unmerged gain {fmt_est(kept, signed=True)})",
              f"balance, SLERP − {soup}: {fmt_est(diffs[soup], signed=True)}",
              f"balance, SLERP − unmerged: {fmt_est(diffs['unmerged'], signed=True)}"]
    controls = [balance(t[0]) - balance(c) for t in found
                if (c := control_of(t[0], same_run(fig, t[0]))) is not None]
    if len(controls) == len(found):  # context, not part of the verdict
        diffs["control"] = mean_of(controls)
        control = control_of(found[0][0], same_run(fig, found[0][0]))
        lines.append(f"balance, SLERP − its {md(control.merge if control else '')} control at "
                     f"the same t: {fmt_est(diffs['control'], signed=True)} (zero when every "
                     "tensor fell back to linear: that SLERP *is* the linear merge)")
    lines += [power.line(named, seeds), f"over {len(found)} LLM training run(s); mean over them"]
    return Judged(signs, [p for _, p in named], seeds), lines, diffs
