"""Rank uncertainty and multiplicity for the merge-method ranking.

With many methods, most differences between neighbours are within noise, and testing each
against the best (★ / ≈★) or each against its neighbour is many tests at once. So:

- *rank interval*: each method's rank in every paired bootstrap draw of the ranked figure (the
  draws the intervals are read from, training seeds resampled with them), summarised as the
  2.5–97.5% range of its rank and the share of draws in which it ranks first;
- *p*: a comparison's two-sided bootstrap p-value, twice the smaller share of its draws on one
  side of zero (at most 1; with R draws, 0 means below 1/R);
- *Holm*: every pair of methods is one family of comparisons, judged by Holm's step-down rule
  at 5% (family-wise error at most 5% whatever their dependence): sorted by p, the i-th
  smallest (from 1) is rejected while p ≤ 0.05 / (m − i + 1), and every one after the first
  that is not, is not. The comparisons with the best and between neighbours are read from that
  family. (Correcting only the comparisons with the observed best would not do: the best is
  chosen by the same data, and with six equal methods it is called better than some other
  one about 11% of the time, simulated in ``tests/test_ranks.py``.)
"""

from __future__ import annotations

import math

import numpy as np

from harness.report.stats import Estimate

ALPHA = 0.05


def p_value(diff: Estimate | None) -> float | None:
    """Two-sided bootstrap p-value of ``diff`` against zero (None without finite draws)."""
    if diff is None or diff.draws is None:
        return None
    finite = diff.draws[np.isfinite(diff.draws)]
    if not finite.size or not math.isfinite(diff.value):
        return None
    below, above = float(np.mean(finite <= 0)), float(np.mean(finite >= 0))
    return min(1.0, 2 * min(below, above))


def holm(ps: list[float | None], alpha: float = ALPHA) -> list[float | None]:
    """Holm-adjusted p-values (reject where ≤ ``alpha``): the i-th smallest of m becomes
    max over j ≤ i of min(1, (m − j + 1) · p_(j)); None stays None and is not counted."""
    order = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    m = len(order)
    out: list[float | None] = [None] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def rejected(adjusted: float | None, alpha: float = ALPHA) -> bool:
    return adjusted is not None and adjusted <= alpha


def pairwise(figures: list[Estimate | None]) -> dict[tuple[int, int], float | None]:
    """The Holm-adjusted p-value of every pair's paired difference (i < j; None where either
    figure has no draws), over the family of all pairs."""
    pairs = [(i, j) for i in range(len(figures)) for j in range(i + 1, len(figures))]
    diffs = [figures[i] - figures[j]  # type: ignore[operator]
             if figures[i] is not None and figures[j] is not None else None for i, j in pairs]
    adjusted = holm([p_value(d) for d in diffs])
    return dict(zip(pairs, adjusted, strict=True))


def rank_intervals(figures: list[Estimate | None]) -> list[tuple[int, int, float] | None]:
    """Per figure (higher is better): (lowest rank, highest rank, share ranked first) over the
    paired draws, ranks from 1, the 95% range; None for a figure without draws (the others
    are ranked among themselves)."""
    have = [i for i, e in enumerate(figures) if e is not None and e.draws is not None
            and math.isfinite(e.value)]
    out: list[tuple[int, int, float] | None] = [None] * len(figures)
    if not have:
        return out
    draws = np.stack([np.asarray(figures[i].draws, dtype=np.float64)  # type: ignore[union-attr]
                      for i in have])
    draws = np.where(np.isfinite(draws), draws, -np.inf)  # an undefined draw ranks last
    ranks = (-draws).argsort(axis=0, kind="stable").argsort(axis=0, kind="stable") + 1
    for row, i in enumerate(have):
        lo = np.quantile(ranks[row], (1 - 0.95) / 2, method="lower")
        hi = np.quantile(ranks[row], (1 + 0.95) / 2, method="higher")
        out[i] = (int(lo), int(hi), float(np.mean(ranks[row] == 1)))
    return out


def fmt_rank(interval: tuple[int, int, float] | None) -> str:
    if interval is None:
        return "n/a"
    lo, hi, first = interval
    return (f"{lo}" if lo == hi else f"{lo}–{hi}") + f" ({first:.2f})"


def fmt_p(p: float | None, draws: int) -> str:
    if p is None:
        return "n/a"
    return f"< {1 / draws:.3f}" if p == 0 else f"{p:.3f}"
