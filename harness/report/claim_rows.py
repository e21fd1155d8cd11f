"""Claim 1 on its larger sample: base models scored on more rows per compositional task
(``Profile.claim_rows``, ``harness.claim_sample``) than the eval sample every variant has.

Both bases of a comparison embed the same sequences and share the metric's random stream, so
the difference is paired: each task's rows are resampled jointly (``Bootstrap.indices`` of the
task and the sample's size, the same for both), as the eval sample's paired bootstrap does.
"""

from __future__ import annotations

from harness.report.figures import Figures
from harness.report.rows import Row
from harness.report.stats import Estimate, mean_of


def difference(fig: Figures, a: Row, b: Row, tasks: list[str], metric: str
               ) -> tuple[Estimate, int] | None:
    """``a − b`` in ``metric``'s direction, the mean over ``tasks`` on the larger sample, with
    its rows per task; None unless both rows have it for every task, on the same sample."""
    mine, theirs, rows = [], [], []
    for task in tasks:
        x, y = a.claim.get((task, metric)), b.claim.get((task, metric))
        if x is None or y is None or x[0] != y[0] or len(x[1]) != len(y[1]):
            return None
        mine.append(fig.boot.estimate(task, x[1]))
        theirs.append(fig.boot.estimate(task, y[1]))
        rows.append(len(x[1]))
    if not rows:
        return None
    return (mean_of(mine) - mean_of(theirs)).scaled(fig.direction(metric)), min(rows)
