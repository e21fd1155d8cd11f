"""The task audit as tables: ``harness tasks --audit`` on a terminal and the leaderboard's
"Task design" section, from one ``harness.audit.Audit``."""

from __future__ import annotations

import math

from tabulate import tabulate

from harness.audit import BOUND, DEPENDENT, NUISANCES, Audit, TaskAudit
from harness.report.tables import md


def _auc(value: float, exempt: bool) -> str:
    text = "n/a" if not math.isfinite(value) else f"{value:.2f}"
    return f"({text})" if exempt else text


def _verdict(t: TaskAudit) -> str:
    if t.error:
        return "flagged: " + t.error
    if t.passes:
        return "passes"
    return "flagged" if t.strongest[1] > t.bound + t.margin else "flagged: joint"


def nuisance_table(audit: Audit) -> tuple[list[str], list[list[str]]]:
    """One row a task: the strongest single nuisance, the joint AUC (the better of the two
    joint models, named; "—" in an audit stored before it was measured), the verdict and every
    nuisance's AUC."""
    header = ["task", "draws", "strongest", "joint", "verdict", *NUISANCES]
    rows = []
    for t in audit.tasks:
        name, value = t.strongest
        model, joint = t.joint_best
        rows.append([t.task, str(t.draws), f"{name} {value:.2f}" if name else "—",
                     f"{joint:.2f} {model}" if model else "—", _verdict(t),
                     *(_auc(t.aucs.get(n, math.nan), n in t.exempt) for n in NUISANCES)])
    return header, rows


def dependence_table(audit: Audit, bold: bool = True) -> tuple[list[str], list[list[str]]]:
    """The pairwise Cramér's V matrix; dependent pairs in bold (markdown) where ``bold``."""
    names = [t.task for t in audit.tasks]
    rows = []
    for a in names:
        cells = []
        for b in names:
            v = audit.dependence.get((a, b), math.nan)
            cells.append("—" if a == b else "n/a" if not math.isfinite(v) else
                         f"**{v:.2f}**" if v >= DEPENDENT and bold else f"{v:.2f}")
        rows.append([a, *cells])
    return ["task", *names], rows


def terminal(audit: Audit) -> str:
    head, rows = nuisance_table(audit)
    dep_head, dep_rows = dependence_table(audit, bold=False)
    return "\n".join([
        f"Nuisance AUCs (cross-validated, 0.5 = chance; flagged above {BOUND} plus twice the "
        "sampling error of the draws; joint: all counted nuisances together, binned, the better "
        "of a linear model and boosted trees; (parenthesised): the property itself, exempt)",
        tabulate(rows, head, tablefmt="simple", disable_numparse=True), "",
        f"Label dependence (Cramér's V on the pooled draws where both labels apply; >= "
        f"{DEPENDENT}: dependent, left out of each other's off-task figures)",
        tabulate(dep_rows, dep_head, tablefmt="simple", disable_numparse=True)])


def markdown(audit: Audit | None) -> list[str]:
    out = ["## Task design", ""]
    if audit is None:
        return out + ["No task audit is stored for these tasks (a store made before audits "
                      "existed): `harness run` with the same tasks adds it, and "
                      "`harness tasks --audit` shows it.", ""]
    flagged = [md(t.task) for t in audit.tasks if not t.passes]
    out += [f"What else predicts each task's label: every simple feature of a sequence, alone, "
            f"as a cross-validated AUC on {audit.tasks[0].draws if audit.tasks else 0:,} draws "
            f"of the task's sampler (0.5 = chance), and all of them together (*joint*: the "
            "better of a logistic regression and small boosted trees, cross-validated the same "
            "way, on the features binned as the single-feature predictor bins them, so that "
            "no model reads the property off exact values). A task is flagged when one, or "
            f"the joint AUC, exceeds {BOUND} by more than twice a chance AUC's sampling error at "
            "that many draws; (parenthesised) figures are the property itself, exempt and left "
            "out of the joint models. "
            + (f"**Flagged: {', '.join(flagged)}** — a model can score on "
               f"{'it' if len(flagged) == 1 else 'them'} without the named property."
               if flagged else "Every task passes."), ""]
    out += [_table(*nuisance_table(audit)), ""]
    out += [f"Dependence between tasks' labels (Cramér's V on the pooled draws, on the "
            f"sequences where both apply). **Bold**: V >= {DEPENDENT}, fixed before any "
            "verdict was read: such a pair measures one skill, so a variant trained on one "
            "does not count the other as off-task.", ""]
    out += [_table(*dependence_table(audit)), ""]
    return out


def _table(head: list[str], rows: list[list[str]]) -> str:
    """A markdown table of the audit's cells, each escaped (task names, an error message)."""
    return tabulate([[md(c) for c in row] for row in rows], [md(h) for h in head],
                    tablefmt="github", disable_numparse=True)
