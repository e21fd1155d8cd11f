"""The page's learnability table: per encoder + adapter and train task, the fine-tune's gain on
the eval sample and on its fit sample (part of its train sample), and the verdict of
``harness.learnability.verdict``."""

from __future__ import annotations

import math

from tabulate import tabulate

from harness.learnability import LEARNED, verdict
from harness.report.figures import Figures, fmt_est
from harness.report.rows import Row
from harness.report.stats import seed_pooled
from harness.report.tables import md


def fit_gain(fig: Figures, row: Row) -> tuple[float, float, float] | None:
    """The row's fit-sample gain in the primary metric, (value, low, high) pooled over its
    seeds (``stats.seed_pooled``); None where not measured."""
    found = [f for f in row.fit.get(fig.primary, []) if math.isfinite(f[0])]
    if not found or len(found) < len(row.seeds):
        return None
    return seed_pooled(found)


def verdicts(fig: Figures) -> dict[tuple[str, str, str], str]:
    """(encoder, adapter, train task) -> learned / memorised / not learned, for every unmerged
    single-task fine-tune whose eval-sample gain has an interval."""
    out = {}
    for row in fig.rows:
        if not row.trained or row.merged or row.train_task is None:
            continue
        gain = fig.gain(row)
        ci = gain.interval() if gain is not None else None
        if ci is None:
            continue
        fit = fit_gain(fig, row)
        out[(row.encoder, row.adapter, row.train_task)] = verdict(ci[0], fit[1] if fit else None)
    return out


def section(fig: Figures) -> list[str]:
    """The table, or nothing where no fine-tune is on the page."""
    rows = [r for r in fig.rows if r.trained and not r.merged and r.train_task is not None]
    if not rows:
        return []
    found = verdicts(fig)
    table = []
    for row in sorted(rows, key=lambda r: (str(r.train_task), r.encoder, r.adapter)):
        fit = fit_gain(fig, row)
        table.append([md(str(row.train_task)), md(row.encoder), md(row.adapter),
                      str(len(row.seeds)), fmt_est(fig.gain(row), signed=True),
                      f"{fit[0]:+.3f} [{fit[1]:.2f}, {fit[2]:.2f}]" if fit else "not measured",
                      _said(found.get((row.encoder, row.adapter, str(row.train_task)), "n/a"),
                            fit is not None)])
    counts = {v: sum(1 for x in found.values() if x == v)
              for v in ("learned", "memorised", "not learned")}
    head = ["train task", "encoder", "adapter", "seeds", f"gain on eval sample ({md(fig.primary)})",
            "gain on fit sample", "verdict"]
    return ["## Learnability of the train tasks", "",
            f"Each fine-tune's gain over its base on its train task, in `{md(fig.primary)}`: on "
            "the task's eval sample (sequences it never trained on) and on its *fit sample* "
            "(as many of the sequences it trained on, class-balanced). *learned*: the "
            f"eval-sample gain's lower 95% bound is at least {LEARNED} (a gain barely above "
            "zero gives a merge's retention a ratio of noise); *memorised*: not learned, but "
            f"the fit-sample gain's lower bound is at least {LEARNED}; *not learned*: neither. "
            "The rule was fixed in `harness.learnability` before the default train tasks were "
            "chosen on it (on the samples of another seed than this page's). With several "
            "seeds, the mean over seeds; the fit-sample interval pools each seed's.", "",
            f"Verdicts: {counts['learned']} learned, {counts['memorised']} memorised, "
            f"{counts['not learned']} not learned, of {len(found)} fine-tunes.", "",
            tabulate(table, head, tablefmt="github", disable_numparse=True), ""]


def _said(verdict: str, fit_known: bool) -> str:
    """A verdict as the table says it: not learned without a fit sample cannot say whether
    it memorised (a store from before fit samples)."""
    return verdict if fit_known or verdict != "not learned" else \
        "not learned (memorising not measured)"
