"""The claims of the paper (arXiv 2511.21703), judged on a run's figures.

This is the one module of the core that names built-in components, and it says so here: the
paper's protocol is about particular methods (SLERP against soup and no merge; silhouette and
probe accuracy), so its claims, the metrics the headline prefers and the order and panels the
leaderboard shows them in are stated in their names. Everything else in ``harness/`` reads what
components declare about themselves (family, ``from_scratch``, ``parameter_efficient``,
``interpolates``, ``control``, ``higher_is_better``, ``compositional``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.report import claim_rows, power, tradeoff
from harness.report.chance import is_accuracy
from harness.report.figures import Figures, Judged, fmt_est, fmt_power, judged
from harness.report.rows import Row
from harness.report.stats import (
    Estimate,
    detectable,
    mean_of,
)
from harness.report.tables import md

#: the headline's metric: the first of these the run has, else its first metric
PRIMARY = ("silhouette", "probe-accuracy", "knn-accuracy")
#: a second on-task column: the first of these the run has other than the primary
SECOND = ("probe-accuracy", "knn-accuracy")
#: claim 1's metric: the first of these the run has
CLAIM1_METRICS = ("probe-accuracy", "knn-accuracy", "silhouette")
#: the merges claim 3 compares
SLERP, SOUP = "slerp", "soup"
#: claim 3's single-task SLERP: of the task vectors of a run's first and last stage checkpoints
#: (the paper's SLERP "across checkpoints or stages"); ``SLERP``, between the base and the
#: final checkpoint, is shown as the degenerate case: its endpoints are nearly parallel
STAGE_SLERP = "slerp:between=checkpoints,space=task-vectors"
ENDPOINTS = {STAGE_SLERP: "SLERP of the task vectors of the first and the last stage "
                          "checkpoint of each training run, at t = 0.5",
             SLERP: "between the base and the final checkpoint"}
#: the merges the projection plot shows beside the base and the unmerged model
PROJECTED = (SOUP, STAGE_SLERP, SLERP)
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


def claims(fig: Figures, compositional: set[str], stats: dict[str, dict[str, float]] | None = None,
           across: tuple[str, Judged, list[str]] | None = None
           ) -> list[tuple[str, str, list[str]]]:
    return [claim1(fig, compositional), claim2(fig), claim3(fig, stats, across)]


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


def claim3(fig: Figures, stats: dict[str, dict[str, float]] | None = None,
           across: tuple[str, Judged, list[str]] | None = None) -> tuple[str, str, list[str]]:
    """Judged on the stage SLERP (``STAGE_SLERP``) and, where the run has it, SLERP across tasks
    (``across``: ``merging.claim3_across``) together; the base-final SLERP is shown as the
    degenerate case. A run without the stage SLERP is judged on the base-final one."""
    title = ("SLERP recovers the base model's structure while keeping most of the task "
             "gain, with a better trade-off than soup or no merge")
    stage, degenerate = tradeoff.trios(fig, STAGE_SLERP, SOUP), tradeoff.trios(fig, SLERP, SOUP)
    found = stage or degenerate
    if not found:
        return title, "not tested by this run", [
            "needs an LLM trained with an adapter and merged with `slerp` and `soup`"]
    single, lines, _ = tradeoff.compare(fig, found, SOUP)
    lines += one_seed([r for t in found for r in t])
    if not stage and across is None:  # a run from before the stage SLERP: as it was
        return title, single.text, lines
    label = STAGE_SLERP if stage else SLERP
    fell = tradeoff.fallback(stats or {}, found)
    head = (f"**single-task, on `{md(label)}`** ({ENDPOINTS[label]}; linear fallback "
            f"{'n/a' if fell is None else f'{fell:.2f}'}): **{single.text}**")
    out = [head] + [f"single-task, {line}" for line in lines]
    verdict = single
    if across is not None:
        verdict = single + across[1]
        out = ["the verdict is that of the single-task and the cross-task comparisons together: "
               "supported when every one goes the claimed way, not supported when one goes the "
               "other way, inconclusive otherwise"] + out
        out += [f"**{across[0]}: {across[1].text}**"] + across[2]
    if stage and degenerate:
        _, _, diffs = tradeoff.compare(fig, degenerate, SOUP)
        fell = tradeoff.fallback(stats or {}, degenerate)
        out.append(f"degenerate case, not in the verdict: `{SLERP}` ({ENDPOINTS[SLERP]}; linear "
                   f"fallback {'n/a' if fell is None else f'{fell:.2f}'}, its endpoints so "
                   "nearly parallel that it is mostly the linear merge): balance SLERP − "
                   + ", SLERP − ".join(f"{k} {fmt_est(e, signed=True)}"
                                       for k, e in diffs.items()))
    return title, verdict.text, out
