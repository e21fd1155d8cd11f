"""The figures the leaderboard's analyses are made of: gains over the base, off-task change,
balance and the best marks. Pure functions of loaded rows.

Definitions, on the *primary* metric and in its direction (so that positive is always better:
a lower-is-better metric's change is base − variant):

- on-task: the variant's score on its train task; off-task: its mean over the other eval tasks
  whose labels are independent of the train task's (the task audit's Cramér's V below
  ``harness.audit.DEPENDENT``; ``dependent`` names the others, left out);
- gain = on-task(variant) − on-task(base); off-task change = off-task(variant) − off-task(base),
  the base's off-task mean taken over the same tasks;
- balance = (gain + off-task change) / 2: what training bought on its task, net of what it cost
  everywhere else, equally weighted.

Every figure carries paired bootstrap draws (``harness.report.stats``) where the metric stored
per-row values or its own draws on the shared resamples, over training seeds as well where a
row has several (a two-level bootstrap); a comparison counts only where its 95% interval
excludes zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.report.chance import Chance
from harness.report.rows import Row
from harness.report.stats import Bootstrap, Detectable, Estimate, mean_of
from harness.store.queries import Draws


class Figures:
    def __init__(self, rows: list[Row], tasks: list[str], metrics: list[str], seed: int,
                 primary: str, higher: dict[str, bool] | None = None,
                 dependent: dict[str, list[str]] | None = None,
                 dependence: dict[tuple[str, str], float] | None = None):
        self.rows, self.tasks, self.metrics = rows, tasks, metrics
        #: train task -> the eval tasks whose labels depend on its (not counted off-task);
        #: None where the store holds no task audit of these tasks
        self.dependent = dependent
        self.audited = dependent is not None
        #: (task, task) -> Cramér's V of their labels, where audited
        self.dependence = dependence or {}
        self.boot = Bootstrap(seed)
        self.primary = primary
        self.higher = higher or {}
        self.bases = {r.encoder: r for r in rows if not r.trained}
        self._scores: dict[tuple[int, str, str], Estimate] = {}
        #: eval task -> its chance level and eval rows, from the stored eval sample's labels
        #: (``chance.levels``; empty where the caller has no samples)
        self.chance: dict[str, Chance] = {}

    def direction(self, metric: str) -> float:
        """+1 where higher is better, -1 where lower is."""
        return 1.0 if self.higher.get(metric, True) else -1.0

    def score(self, row: Row, task: str, metric: str) -> Estimate:
        """A row's figure on one task, with its draws (computed once: every other figure and
        every comparison is built from these): the mean over the row's training seeds, drawn
        by a two-level bootstrap of its seeds and of each seed's eval rows (``stats``)."""
        key = (id(row), task, metric)
        if key not in self._scores:
            stored = row.values.get((task, metric), [])
            values = [v for v in stored if math.isfinite(v)]
            found = Estimate(float(np.mean(values)) if values else math.nan)
            per_seed = row.samples.get((task, metric))
            if per_seed and len(per_seed) == len(stored) and values:
                draws = [np.asarray(v) if isinstance(v, Draws)  # recomputed by the scorer
                         else self.boot.estimate(task, v).draws for v in per_seed]
                found = self.boot.over_seeds(
                    found.value, [d for d in draws if d is not None], tuple(row.seeds),
                    [p for p, d in zip(stored, draws, strict=True) if d is not None])
            self._scores[key] = found
        return self._scores[key]

    @staticmethod
    def seeds_of(rows: list[Row]) -> int:
        """The fewest training seeds a trained row among ``rows`` rests on (0: none is
        trained). 1: a figure of these rows has no between-run variance in its interval."""
        counts = [len(r.seeds) for r in rows if r.trained]
        return min(counts) if counts else 0

    def over(self, row: Row, tasks: list[str], metric: str) -> Estimate:
        return mean_of([self.score(row, t, metric) for t in tasks])

    def others(self, row: Row, independent: bool = True) -> list[str]:
        """The off-task tasks of a row: every eval task but its train task, less (with
        ``independent``) those whose labels depend on the train task's."""
        left_out = set(self.left_out(row.train_task)) if independent else set()
        return [t for t in self.tasks if t != row.train_task and t not in left_out]

    def change(self, row: Row, base: Row, task: str, metric: str | None = None) -> float:
        """How much better ``row`` is than ``base`` on one task, in the metric's direction."""
        metric = metric or self.primary
        return self.direction(metric) * (self.score(row, task, metric).value
                                         - self.score(base, task, metric).value)

    def on_task(self, row: Row, metric: str | None = None) -> Estimate | None:
        if row.train_task is None or row.train_task not in self.tasks:
            return None
        return self.score(row, row.train_task, metric or self.primary)

    def left_out(self, train_task: str | None) -> list[str]:
        """The eval tasks a variant trained on ``train_task`` does not count off-task."""
        return list((self.dependent or {}).get(train_task or "", []))

    def off_task(self, row: Row, metric: str | None = None, independent: bool = True
                 ) -> Estimate:
        return self.over(row, self.others(row, independent), metric or self.primary)

    def gain(self, row: Row) -> Estimate | None:
        base, on = self.bases.get(row.encoder), self.on_task(row)
        if base is None or on is None:
            return None
        return (on - self.score(base, str(row.train_task), self.primary)).scaled(
            self.direction(self.primary))

    def off_change(self, row: Row, independent: bool = True) -> Estimate | None:
        base = self.bases.get(row.encoder)
        if base is None or row.train_task is None:
            return None
        others = self.others(row, independent)
        if not others:
            return None
        return (self.over(row, others, self.primary) - self.over(base, others, self.primary)
                ).scaled(self.direction(self.primary))

    def balance(self, row: Row) -> Estimate | None:
        gain, off = self.gain(row), self.off_change(row)
        if gain is None or off is None:
            return None
        return (gain + off).scaled(0.5)

    def best_marks(self) -> dict[int, str]:
        """Per encoder and train task, the variant with the best balance (★) and those whose
        paired interval against it includes zero (≈★: the run cannot separate them)."""
        marks: dict[int, str] = {}
        groups: dict[tuple[str, str], list[Row]] = {}
        for row in self.rows:
            if row.train_task is not None:
                groups.setdefault((row.encoder, row.train_task), []).append(row)
        for members in groups.values():
            scored = [(b, r) for r in members if (b := self.balance(r)) is not None
                      and math.isfinite(b.value)]
            if len(scored) < 2:
                continue
            top_b, top = max(scored, key=lambda pair: pair[0].value)
            marks[id(top)] = "★"
            for b, r in scored:
                if r is not top and (top_b - b).sign() == 0:
                    marks[id(r)] = "≈★"
        return marks


def verdict(signs: list[int]) -> str:
    if signs and all(s > 0 for s in signs):
        return "supported"
    if any(s < 0 for s in signs):
        return "not supported"
    return "inconclusive"


@dataclass(frozen=True)
class Judged:
    """Comparisons' signs with their powers, kept apart from the verdict's text (``judged``) so
    that the comparisons of two parts of a claim can be judged together (``+``)."""

    signs: list[int]
    powers: list[Detectable | None]
    seeds: int = 0

    @property
    def text(self) -> str:
        return judged(self.signs, self.powers, self.seeds)

    def __add__(self, other: Judged) -> Judged:
        seeds = 1 if 1 in (self.seeds, other.seeds) else max(self.seeds, other.seeds)
        return Judged(self.signs + other.signs, self.powers + other.powers, seeds)


def judged(signs: list[int], powers: list[Detectable | None], seeds: int = 0) -> str:
    """The verdict of comparisons (``signs``, each with its ``powers``, the same order); an
    inconclusive one says the largest effect its undecided comparisons could have missed,
    and, where they rest on one training seed (``seeds`` 1), that the bound holds for that
    seed only (between-run variance is in no interval)."""
    found = verdict(signs)
    missed = [p.effect for s, p in zip(signs, powers, strict=True) if s == 0 and p is not None]
    if found == "inconclusive" and missed:
        within = ", within one training seed" if seeds == 1 else ""
        return f"inconclusive: no effect larger than {max(missed):.3f} (80% power){within}"
    return found


def fmt_power(p: Detectable | None) -> str:
    return "n/a (no bootstrap draws)" if p is None else f"{p.effect:.3f}"


def fmt_est(e: Estimate | None, signed: bool = False) -> str:
    if e is None or not math.isfinite(e.value):
        return "n/a"
    text = f"{e.value:+.3f}" if signed else f"{e.value:.3f}"
    ci = e.interval()
    return f"{text} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else text
