"""The figures the leaderboard's analyses are made of: gains over the base, off-task change,
balance, CKA, and the three claims of the paper judged on them. Pure functions of loaded rows.

Definitions (on the *primary* metric, silhouette when the run has it):

- on-task: the variant's score on its train task; off-task: its mean over the other eval tasks;
- gain = on-task(variant) − on-task(base); off-task change = off-task(variant) − off-task(base),
  the base's off-task mean taken over the same tasks;
- balance = (gain + off-task change) / 2: what training bought on its task, net of what it cost
  everywhere else, equally weighted.

Every figure carries paired bootstrap draws (``harness.stats``) where the metric has per-row
values; a verdict counts a comparison only where its 95% interval excludes zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from harness.stats import Bootstrap, Estimate, mean_of

PRIMARY = ("silhouette", "probe-accuracy", "knn-accuracy")
CLAIM1_METRICS = ("probe-accuracy", "knn-accuracy", "silhouette")


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
    # (task, metric) -> values over seeds; per-row values over seeds where the metric has them
    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    samples: dict[tuple[str, str], list[np.ndarray]] = field(default_factory=dict)
    cka: tuple[float, float, float] | None = None  # (value, low, high), mean over seeds
    encoded: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        parts = [self.encoder]
        if self.train_task:
            parts.append(f"{self.adapter}@{self.train_task}")
        if self.merge != "none":
            parts.append(self.merge)
        return " + ".join(parts)

    @property
    def merge_kind(self) -> str:
        return self.merge.split(":", 1)[0]


class Figures:
    def __init__(self, rows: list[Row], tasks: list[str], metrics: list[str], seed: int):
        self.rows, self.tasks, self.metrics = rows, tasks, metrics
        self.boot = Bootstrap(seed)
        self.primary = next((m for m in PRIMARY if m in metrics), metrics[0] if metrics else "")
        self.bases = {r.encoder: r for r in rows if r.adapter == "none"}
        self._scores: dict[tuple[int, str, str], Estimate] = {}

    def score(self, row: Row, task: str, metric: str) -> Estimate:
        """A row's figure on one task, with its draws (computed once: every other figure and
        every comparison is built from these)."""
        key = (id(row), task, metric)
        if key not in self._scores:
            per_seed = row.samples.get((task, metric))
            if per_seed and len(per_seed) == len(row.values.get((task, metric), [])):
                found = mean_of([self.boot.estimate(task, v) for v in per_seed])
            else:
                values = [v for v in row.values.get((task, metric), []) if math.isfinite(v)]
                found = Estimate(float(np.mean(values)) if values else math.nan)
            self._scores[key] = found
        return self._scores[key]

    def over(self, row: Row, tasks: list[str], metric: str) -> Estimate:
        return mean_of([self.score(row, t, metric) for t in tasks])

    def others(self, row: Row) -> list[str]:
        return [t for t in self.tasks if t != row.train_task]

    def on_task(self, row: Row, metric: str | None = None) -> Estimate | None:
        if row.train_task is None or row.train_task not in self.tasks:
            return None
        return self.score(row, row.train_task, metric or self.primary)

    def off_task(self, row: Row, metric: str | None = None) -> Estimate:
        return self.over(row, self.others(row), metric or self.primary)

    def gain(self, row: Row) -> Estimate | None:
        base, on = self.bases.get(row.encoder), self.on_task(row)
        if base is None or on is None:
            return None
        return on - self.score(base, str(row.train_task), self.primary)

    def off_change(self, row: Row) -> Estimate | None:
        base = self.bases.get(row.encoder)
        if base is None or row.train_task is None:
            return None
        return self.off_task(row) - self.over(base, self.others(row), self.primary)

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

    # -------------------------------------------------------------------------------- claims

    def claims(self, compositional: set[str]) -> list[tuple[str, str, list[str]]]:
        return [self._claim1(compositional), self._claim2(), self._claim3()]

    def _claim1(self, compositional: set[str]) -> tuple[str, str, list[str]]:
        title = ("LLM backbones capture higher-order, compositional numeric patterns better "
                 "than non-LLM encoders")
        comp = [t for t in self.tasks if t in compositional]
        metric = next((m for m in CLAIM1_METRICS if m in self.metrics), "")
        llm = [r for r in self.rows if r.group == "LLM base"]
        other = [r for r in self.rows if r.group == "non-LLM base"]
        if not (comp and metric and llm and other):
            return title, "not tested by this run", [
                "needs an LLM base, a pretrained non-LLM base and a compositional eval task"]
        lines, signs = [], []
        for a in llm:
            for b in other:
                diff = self.over(a, comp, metric) - self.over(b, comp, metric)
                signs.append(diff.sign())
                lines.append(f"{a.encoder} − {b.encoder}, base models, mean `{metric}` over "
                             f"{', '.join(comp)}: {fmt_est(diff, signed=True)}")
        return title, verdict(signs), lines

    def _claim2(self) -> tuple[str, str, list[str]]:
        title = ("LoRA adapters dominate the representation and degrade balanced "
                 "generalization")
        lora = [r for r in self.rows if r.group == "LLM + LoRA" and r.merge == "none"]
        if not lora or not all(r.encoder in self.bases for r in lora):
            return title, "not tested by this run", ["needs an LLM trained with lora"]
        gain = mean_of([g for r in lora if (g := self.gain(r)) is not None])
        off = mean_of([o for r in lora if (o := self.off_change(r)) is not None])
        cka = [r.cka for r in lora if r.cka]
        lines = [f"on-task gain in `{self.primary}` (mean over {len(lora)} LLM + LoRA "
                 f"variants): {fmt_est(gain, signed=True)}",
                 f"off-task change in `{self.primary}`: {fmt_est(off, signed=True)}"]
        if cka:
            mean = [float(np.mean([c[i] for c in cka])) for i in range(3)]
            lines.append(f"linear CKA to the base model: {mean[0]:.3f} [{mean[1]:.2f}, "
                         f"{mean[2]:.2f}] (1 = unchanged geometry)")
        signs = [gain.sign(), -off.sign()]  # gain up and off-task down support it
        return title, verdict(signs), lines

    def _claim3(self) -> tuple[str, str, list[str]]:
        title = ("SLERP recovers the base model's structure while keeping most of the task "
                 "gain, with a better trade-off than soup or no merge")
        trios = []
        for row in self.rows:
            if row.group.startswith("LLM + ") and row.merge == "slerp":
                same = [r for r in self.rows if (r.encoder, r.adapter, r.train_task)
                        == (row.encoder, row.adapter, row.train_task)]
                none = next((r for r in same if r.merge == "none"), None)
                soup = next((r for r in same if r.merge == "soup"), None)
                if none and soup and all(self.gain(r) is not None for r in (row, soup, none)):
                    trios.append((row, soup, none))  # (no gain: not evaluated on its task)
        if not trios:
            return title, "not tested by this run", [
                "needs an LLM trained with an adapter and merged with `slerp` and `soup`"]

        def avg(f):  # type: ignore[no-untyped-def]
            return mean_of([f(t) for t in trios])

        cka_s = [t[0].cka for t in trios if t[0].cka]
        cka_n = [t[2].cka for t in trios if t[2].cka]
        kept = avg(lambda t: self.gain(t[0]) - self.gain(t[2]).scaled(0.5))
        vs_soup = avg(lambda t: self.balance(t[0]) - self.balance(t[1]))
        vs_none = avg(lambda t: self.balance(t[0]) - self.balance(t[2]))
        gain_s, gain_n = avg(lambda t: self.gain(t[0])), avg(lambda t: self.gain(t[2]))
        signs = [kept.sign(), vs_soup.sign(), vs_none.sign()]
        lines = []
        if cka_s and len(cka_s) == len(cka_n):
            s = [float(np.mean([c[i] for c in cka_s])) for i in range(3)]
            n = [float(np.mean([c[i] for c in cka_n])) for i in range(3)]
            signs.append(1 if s[1] > n[2] else -1 if s[2] < n[1] else 0)
            lines.append(f"structure: CKA to the base, SLERP {s[0]:.3f} [{s[1]:.2f}, {s[2]:.2f}]"
                         f" vs unmerged {n[0]:.3f} [{n[1]:.2f}, {n[2]:.2f}]")
        ratio = gain_s.value / gain_n.value if gain_n.value else math.nan
        lines += [f"task gain kept: SLERP {fmt_est(gain_s, signed=True)} vs unmerged "
                  f"{fmt_est(gain_n, signed=True)} ({ratio:.0%} kept; \"most\" = over half: "
                  f"SLERP gain − half the unmerged gain {fmt_est(kept, signed=True)})",
                  f"balance, SLERP − soup: {fmt_est(vs_soup, signed=True)}",
                  f"balance, SLERP − unmerged: {fmt_est(vs_none, signed=True)}"]
        controls = []
        for slerp_row, _, _ in trios:
            control = next((r for r in self.rows if r.merge == "linear" and
                            (r.encoder, r.adapter, r.train_task) ==
                            (slerp_row.encoder, slerp_row.adapter, slerp_row.train_task)), None)
            if control is not None:
                controls.append(self.balance(slerp_row) - self.balance(control))
        if len(controls) == len(trios):  # context, not part of the verdict
            lines.append(f"balance, SLERP − its linear control at the same t: "
                         f"{fmt_est(mean_of(controls), signed=True)} (zero when every tensor "
                         "fell back to linear: that SLERP *is* the linear merge)")
        lines.append(f"over {len(trios)} LLM training run(s); mean over them")
        return title, verdict(signs), lines


def verdict(signs: list[int]) -> str:
    if signs and all(s > 0 for s in signs):
        return "supported"
    if any(s < 0 for s in signs):
        return "not supported"
    return "inconclusive"


def fmt_est(e: Estimate | None, signed: bool = False) -> str:
    if e is None or not math.isfinite(e.value):
        return "n/a"
    text = f"{e.value:+.3f}" if signed else f"{e.value:.3f}"
    ci = e.interval()
    return f"{text} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else text
