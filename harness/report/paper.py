"""The claims of the paper (arXiv 2511.21703), judged on a run's figures.

This is the one module of the core that names built-in components, and it says so here: the
paper's protocol is about particular methods (SLERP against soup and no merge; silhouette and
probe accuracy), so its claims, the metrics the headline prefers and the order and panels the
leaderboard shows them in are stated in their names. Everything else in ``harness/`` reads what
components declare about themselves (family, ``from_scratch``, ``parameter_efficient``,
``interpolates``, ``control``, ``higher_is_better``, ``compositional``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from harness.report import claim_rows, power
from harness.report.chance import is_accuracy
from harness.report.figures import Figures, fmt_est, fmt_power, judged
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

#: the headline's metric: the first of these the run has, else its first metric
PRIMARY = ("silhouette", "probe-accuracy", "knn-accuracy")
#: a second on-task column: the first of these the run has other than the primary
SECOND = ("probe-accuracy", "knn-accuracy")
#: claim 1's metric: the first of these the run has
CLAIM1_METRICS = ("probe-accuracy", "knn-accuracy", "silhouette")
#: the merges claim 3 compares and the projection plot shows beside the base and unmerged
SLERP, SOUP = "slerp", "soup"
PROJECTED = (SOUP, SLERP)
#: the leaderboard lists merges in this order after the unmerged row, then the others by name
MERGE_ORDER = (SOUP, "greedy-soup", SLERP, "linear")
#: the order of the leaderboard's family rows (a group starting with one of these)
GROUP_ORDER = ("non-LLM random init", "non-LLM from scratch", "non-LLM base",
               "non-LLM fine-tuned", "LLM base", "LLM + LoRA", "LLM + ")
MERGE_NOTE = ("*merge*: what the merge reported about itself, mean over seeds (`linear "
              "fallback`: the fraction of tensors whose SLERP endpoints were so nearly parallel, "
              "|cos| > 0.9995, that it interpolated linearly; at 1 that SLERP *is* averaging).")


def primary_metric(metrics: list[str]) -> str:
    return next((m for m in PRIMARY if m in metrics), metrics[0] if metrics else "")


def second_metric(metrics: list[str], primary: str) -> str | None:
    return next((m for m in SECOND if m in metrics and m != primary), None)


def is_base(row: Row, family: str) -> bool:
    """A pretrained encoder's base model of this family (not a random initialisation)."""
    return not row.trained and row.family == family and not row.from_scratch


def claims(fig: Figures, compositional: set[str]) -> list[tuple[str, str, list[str]]]:
    return [claim1(fig, compositional), claim2(fig), claim3(fig)]


def claim1(fig: Figures, compositional: set[str]) -> tuple[str, str, list[str]]:
    title = ("LLM backbones capture higher-order, compositional numeric patterns better "
             "than non-LLM encoders")
    comp = [t for t in fig.tasks if t in compositional]
    metric = next((m for m in CLAIM1_METRICS if m in fig.metrics), "")
    llm = [r for r in fig.rows if is_base(r, "llm")]
    other = [r for r in fig.rows if is_base(r, "non-llm")]
    if not (comp and metric and llm and other):
        return title, "not tested by this run", [
            "needs an LLM base, a pretrained non-LLM base and a compositional eval task"]
    lines, signs, powers, used = [], [], [], []
    for a in llm:
        for b in other:
            # the larger sample where both bases have it (``claim_rows``), else the eval rows
            found = claim_rows.difference(fig, a, b, comp, metric)
            diff = found[0] if found else (fig.over(a, comp, metric) - fig.over(
                b, comp, metric)).scaled(fig.direction(metric))
            used.append(found[1] if found else None)
            signs.append(diff.sign())
            powers.append(detectable(diff))  # base models: the eval rows alone
            rows = f"; {found[1]} {power.LARGER}" if found else ""
            lines.append(f"{md(a.encoder)} − {md(b.encoder)}, base models, mean "
                         f"`{md(metric)}` over {', '.join(map(md, comp))}: "
                         f"{fmt_est(diff, signed=True)} (detectable: {fmt_power(powers[-1])}"
                         f"{rows})")
    lines.append(power.base_models(fig, comp, metric, powers, used))
    if is_accuracy(metric) and (chance := power.chance_line(fig, comp)):
        lines.append(f"`{md(metric)}` {chance}")
    return title, judged(signs, powers), lines


def one_seed(rows: list[Row]) -> list[str]:
    """The caveat of a verdict by the training seeds behind it (``Figures.seeds_of``)."""
    seeds = Figures.seeds_of(rows)
    if seeds == 1:
        return ["one training seed: between-run variance not measured (`--seeds 2` or more "
                "puts it in the intervals)"]
    if seeds in (2, 3):
        return [f"{seeds} training seeds: the intervals resample them and are widened to a "
                f"t over {seeds} runs (`stats.widening`; simulated coverage 97.5% with 2, 97.8% "
                "with 3, for a nominal 95%: `bench/intervals.py --only seeds`)"]
    return []


def left_out(fig: Figures, rows: list[Row], arrow: str = ": ") -> str:
    """Which eval tasks the off-task figures of ``rows`` leave out, per train task."""
    if not fig.audited:
        return "none: no task audit is stored for these tasks"
    def named(t: str, d: str) -> str:
        v = fig.dependence.get((t, d))
        return f"{md(d)} (V {v:.2f})" if v is not None else md(d)

    parts = [f"{md(t)}{arrow}{', '.join(named(t, d) for d in fig.left_out(t))}"
             for t in sorted({str(r.train_task) for r in rows if r.train_task})
             if fig.left_out(t)]
    return "; ".join(parts) if parts else "none"


def claim2(fig: Figures) -> tuple[str, str, list[str]]:
    title = "LoRA adapters dominate the representation and degrade balanced generalization"

    def adapted(family: str) -> list[Row]:
        return [r for r in fig.rows if r.trained and not r.merged and r.family == family
                and r.parameter_efficient and r.encoder in fig.bases]

    lora = adapted("llm")
    if not lora:
        return title, "not tested by this run", ["needs an LLM trained with lora"]
    tasks = {r.train_task for r in lora}
    other = [r for r in adapted("non-llm") if r.train_task in tasks]
    p = fig.primary

    def mean(rows: list[Row], f: Callable[[Row], Estimate | None]) -> Estimate:
        return mean_of([e for r in rows if (e := f(r)) is not None])

    def per_task(f: Callable[[Row], Estimate | None]) -> Estimate:
        """LLM − non-LLM, per train task both have, averaged over those tasks."""
        both = sorted(str(t) for t in tasks if any(r.train_task == t for r in other))
        return mean_of([mean([r for r in lora if r.train_task == t], f)
                        - mean([r for r in other if r.train_task == t], f) for t in both])

    groups = " / ".join(md(g) for g in sorted({r.group for r in lora}))
    gain = mean(lora, fig.gain)
    off = mean(lora, fig.off_change)
    lines = [f"on-task gain in `{md(p)}` (mean over {len(lora)} {groups} variants): "
             f"{fmt_est(gain, signed=True)}",
             f"off-task change in `{md(p)}`, over the tasks independent of the train task: "
             f"{fmt_est(off, signed=True)} (left out as dependent: {left_out(fig, lora)}); "
             f"over all other tasks: "
             f"{fmt_est(mean(lora, lambda r: fig.off_change(r, False)), signed=True)}"]
    cka = [r.cka for r in lora if r.cka]
    if cka:
        lines.append(f"linear CKA to the base model: {_cka(cka)} (1 = unchanged geometry)")
    if not other:
        lines.append("not comparative: no non-LLM encoder was adapted with a "
                     "parameter-efficient adapter on the same tasks, so the verdict reads the "
                     "LLM figures alone")
        seeds = Figures.seeds_of(lora)
        powers = [detectable(gain, seeds), detectable(off, seeds)]
        lines.append(power.line([("on-task gain", powers[0]), ("off-task change", powers[1])],
                                seeds))
        return title, judged([gain.sign(), -off.sign()], powers, seeds), lines + one_seed(lora)
    rel = per_task(fig.off_change)
    names = ", ".join(md(e) for e in sorted({r.encoder for r in other}))
    lines += [f"the same for the non-LLM encoders adapted the same way ({names}): gain "
              f"{fmt_est(mean(other, fig.gain), signed=True)}, off-task change "
              f"{fmt_est(mean(other, fig.off_change), signed=True)} (independent tasks), "
              f"{fmt_est(mean(other, lambda r: fig.off_change(r, False)), signed=True)} (all)",
              f"LLM − non-LLM, per train task: gain {fmt_est(per_task(fig.gain), signed=True)}"
              f", off-task change {fmt_est(rel, signed=True)} (independent tasks; the "
              "verdict: supported when the LLM gains on task and loses more off task than "
              "the non-LLM encoders)",
              f"over all other tasks: "
              f"{fmt_est(per_task(lambda r: fig.off_change(r, False)), signed=True)}"]
    other_cka = [r.cka for r in other if r.cka]
    if cka and other_cka:
        lines.append(f"CKA to the base, non-LLM adapted the same way: {_cka(other_cka)}")
    seeds = Figures.seeds_of(lora + other)
    powers = [detectable(gain, seeds), detectable(rel, seeds)]
    lines += [power.line([("LLM on-task gain", powers[0]),
                          ("LLM − non-LLM off-task change", powers[1])], seeds),
              confound(lora, other)]
    return title, judged([gain.sign(), -rel.sign()], powers, seeds), lines + one_seed(
        lora + other)


def confound(llm: list[Row], other: list[Row]) -> str:
    """What claim 2's family comparison is confounded with: with one backbone a family, its
    size and tokenizer."""
    a, b = sorted({r.encoder for r in llm}), sorted({r.encoder for r in other})
    if len(a) == 1 and len(b) == 1:
        return (f"family is confounded with size and tokenizer: one LLM backbone ({md(a[0])}) "
                f"against one non-LLM backbone ({md(b[0])}), so the difference may be theirs, "
                "not the family's")
    text = (f"across {len(a)} LLM backbone(s) ({', '.join(map(md, a))}) and {len(b)} non-LLM "
            f"backbone(s) ({', '.join(map(md, b))})")
    one = "LLM" if len(a) == 1 else "non-LLM" if len(b) == 1 else ""
    return text + (f"; with one {one} backbone, family is still confounded with its size and "
                   "tokenizer" if one else "")


def _cka(found: list[tuple[float, float, float]]) -> str:
    mean = [float(np.mean([c[i] for c in found])) for i in range(3)]
    return f"{mean[0]:.3f} [{mean[1]:.2f}, {mean[2]:.2f}]"


def _same_run(fig: Figures, row: Row) -> list[Row]:
    return [r for r in fig.rows
            if (r.encoder, r.adapter, r.train_task) == (row.encoder, row.adapter, row.train_task)]


def claim3(fig: Figures) -> tuple[str, str, list[str]]:
    title = ("SLERP recovers the base model's structure while keeping most of the task "
             "gain, with a better trade-off than soup or no merge")
    trios = []
    for row in fig.rows:
        if row.trained and row.family == "llm" and row.merged and row.merge == SLERP:
            same = _same_run(fig, row)
            none = next((r for r in same if not r.merged), None)
            soup = next((r for r in same if r.merged and r.merge == SOUP), None)
            if none and soup and all(fig.gain(r) is not None for r in (row, soup, none)):
                trios.append((row, soup, none))  # (no gain: not evaluated on its task)
    if not trios:
        return title, "not tested by this run", [
            "needs an LLM trained with an adapter and merged with `slerp` and `soup`"]

    def gain(row: Row) -> Estimate:  # never None here: each trio has its gains
        return fig.gain(row) or Estimate(math.nan)

    def balance(row: Row) -> Estimate:
        return fig.balance(row) or Estimate(math.nan)

    def avg(f: Callable[[tuple[Row, Row, Row]], Estimate]) -> Estimate:
        return mean_of([f(t) for t in trios])

    cka_s = [t[0].cka for t in trios if t[0].cka]
    cka_n = [t[2].cka for t in trios if t[2].cka]
    kept = avg(lambda t: gain(t[0]) - gain(t[2]).scaled(0.5))
    vs_soup = avg(lambda t: balance(t[0]) - balance(t[1]))
    vs_none = avg(lambda t: balance(t[0]) - balance(t[2]))
    gain_s, gain_n = avg(lambda t: gain(t[0])), avg(lambda t: gain(t[2]))
    signs = [kept.sign(), vs_soup.sign(), vs_none.sign()]
    seeds = Figures.seeds_of([r for t in trios for r in t])
    named: list[tuple[str, Detectable | None]] = [
        ("gain kept over half", detectable(kept, seeds)),
        ("balance vs soup", detectable(vs_soup, seeds)),
        ("balance vs unmerged", detectable(vs_none, seeds))]
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
              f"balance, SLERP − soup: {fmt_est(vs_soup, signed=True)}",
              f"balance, SLERP − unmerged: {fmt_est(vs_none, signed=True)}"]
    controls = []
    for slerp_row, _, _ in trios:
        wanted = slerp_row.roles.get("control")
        control = next((r for r in _same_run(fig, slerp_row)
                        if wanted and r.merged and r.merge == wanted), None)
        if control is not None:
            controls.append(balance(slerp_row) - balance(control))
    if len(controls) == len(trios):  # context, not part of the verdict
        lines.append(f"balance, SLERP − its {md(trios[0][0].roles.get('control'))} control at the "
                     f"same t: {fmt_est(mean_of(controls), signed=True)} (zero when every "
                     "tensor fell back to linear: that SLERP *is* the linear merge)")
    lines += [power.line(named, seeds),
              f"over {len(trios)} LLM training run(s); mean over them"]
    return title, judged(signs, [p for _, p in named], seeds), lines + one_seed(
        [r for t in trios for r in t])
