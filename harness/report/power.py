"""The power of every verdict: the smallest effect each comparison could have detected.

A comparison's minimum detectable difference (MDE) at 95% two-sided and 80% power is
``(1.96 + 0.84) · SE``, SE the standard deviation of its paired bootstrap draws
(``stats.detectable``); where it rests on two or more training seeds, SE is the half-width of
its interval / 1.96, that interval being a t's over the seeds (``stats.widening``). A
comparison whose interval includes zero then says how large an effect it would have found: an
*inconclusive* verdict reads "no effect larger than X".
"""

from __future__ import annotations

import math

from harness.report.chance import scored, test_size
from harness.report.figures import Figures, fmt_power
from harness.report.stats import Detectable
from harness.report.tables import md
from harness.store.queries import Draws

#: the effect claim 1 should be able to detect; above it the page says the eval rows are few
TARGET = 0.05
#: what claim 1's lines say of the rows of its larger sample (``harness.claim_sample``)
LARGER = "eval rows per compositional task, base models only"


def method(seeds: int) -> str:
    """How the MDEs of comparisons over ``seeds`` training seeds are computed."""
    if seeds >= 2:
        return (f"MDE = (1.96 + 0.84) × SE, SE the half-width of its interval / 1.96, the "
                f"interval a t's with {seeds - 1} degree(s) of freedom over {seeds} training "
                "seeds")
    return "MDE = (1.96 + 0.84) × its bootstrap SE"


def line(named: list[tuple[str, Detectable | None]], seeds: int) -> str:
    """The claim's line naming the MDE of each of its comparisons."""
    return ("smallest effect each comparison could detect (95% two-sided, 80% power; "
            f"{method(seeds)}): " + ", ".join(f"{name} {fmt_power(p)}" for name, p in named))


def eval_rows(fig: Figures, tasks: list[str], metric: str) -> list[int]:
    """The eval rows of each task: its stored eval sample's, else a per-row sample's length."""
    found = []
    for t in tasks:
        if t in fig.chance:
            found.append(fig.chance[t].rows)
            continue
        n = next((len(a) for r in fig.rows for a in r.samples.get((t, metric), [])
                  if not isinstance(a, Draws)), None)
        if n is not None:
            found.append(n)
    return found


def base_models(fig: Figures, tasks: list[str], metric: str,
                powers: list[Detectable | None], used: list[int | None] | None = None) -> str:
    """Claim 1's power: base models have no training seeds, so only eval rows power it.
    ``used``: per comparison, the rows per task of claim 1's larger sample where it came from
    that sample (``Profile.claim_rows``), else None (the eval sample's)."""
    rows = eval_rows(fig, tasks, metric)
    shown = [(p, n) for p, n in zip(powers, used or [None] * len(powers), strict=True)
             if p is not None]
    sizes = sorted({test_size(fig.chance.get(t), scored(fig.rows, t, metric)) for t in tasks}
                   - {"n/a"})
    size = " / ".join(sizes) if sizes else (f"{min(rows)}–{max(rows)}" if rows else "n/a")
    if not shown:
        return (f"power: n/a (no bootstrap draws of `{md(metric)}`); {size} eval rows per "
                "compositional task")
    worst, larger = max(shown, key=lambda pair: pair[0].effect)
    where = (f"{size} eval rows per compositional task" if larger is None else
             f"{larger} {LARGER} (the profile's `claim_rows`; every variant's eval sample "
             f"has {size})")
    text = (f"power: base models have no training seeds, so only the eval rows power this "
            f"comparison, {where}: it could detect a difference "
            f"of {worst.effect:.3f} or more (95% two-sided, 80% power; {worst.how()})")
    if worst.effect > TARGET:
        now = larger if larger is not None else max(rows) if rows else None
        need = f"about {math.ceil(now * (worst.effect / TARGET) ** 2)}" if now else "more"
        text += (f"; above {TARGET}: the compositional tasks need more eval rows ({need} eval "
                 f"rows each for {TARGET}, as the SE shrinks with 1/√rows)")
    return text


def chance_line(fig: Figures, tasks: list[str]) -> str:
    """The chance level of an accuracy on each of ``tasks`` (empty where none is known)."""
    known = [t for t in tasks if t in fig.chance]
    if not known:
        return ""
    return ("chance (the majority share of each eval sample's labels): " +
            ", ".join(f"{md(t)} {fig.chance[t].text()}" for t in known))
