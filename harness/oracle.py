"""The oracle of a tuned cross-task merge: what choosing λ (and density) on the eval sample
would have given, beside the honest choice on the validation sample.

Where the profile asks for it (``Profile.oracle``, ``harness run --oracle``), the held-out
scorer of a cross-task merge also scores every candidate it is given on the merged tasks' eval
samples, in an embedding pass of its own (so the held-out pass, and with it the honest choice,
is exactly what it is without the oracle). The candidates are recorded by content; the one the
merge returned (the honest choice) and the one with the best mean eval score over the merged
tasks (the oracle's choice: the same rule as the honest one, on the eval sample) are stored
as merge stats, per task, in the scorer's metric. Both come from the same pass, so their
difference is the cost of honest tuning on this run's data, not a difference of batching; the
leaderboard turns it into retention (``harness.report.ranking_page``).

Stored as ``oracle: METRIC on TASK`` and ``tuned: METRIC on TASK``. It costs a pass over the
merged tasks' eval samples per candidate (300 sequences on ``quick``, twice its held-out pass),
which the quick profile leaves out for its time budget (README's *The oracle column*).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

#: stat name prefixes: the eval score of the oracle's and of the honest choice, on a task
ORACLE, TUNED = "oracle: ", "tuned: "
#: the stat every merge the oracle scored has (its candidates' count), found or not
COUNT = "oracle candidates"


def wanted(profile: Any, variant: Any) -> bool:
    """Whether ``variant``'s merge is one the oracle scores under ``profile``: a cross-task
    merge that scores candidates (``Merge.scored_by`` or ``rescale=METRIC``)."""
    merge = variant.merge
    return bool(getattr(profile, "oracle", False) and variant.run_tasks and merge is not None
                and (merge.scored_by() is not None or getattr(merge, "rescale", "")))


def missing(profile: Any, variant: Any, stats: dict[str, float] | None) -> bool:
    """Whether stored merge ``stats`` lack the oracle ``profile`` asks of ``variant`` (then the
    merge runs again: its embeddings are reused, its candidates scored)."""
    return wanted(profile, variant) and COUNT not in (stats or {})


def stat(prefix: str, metric: str, task: str) -> str:
    return f"{prefix}{metric} on {task}"


def parse(name: str) -> tuple[str, str, str] | None:
    """(prefix, metric, task) of an oracle stat's name, or None for any other stat."""
    for prefix in (ORACLE, TUNED):
        if name.startswith(prefix) and " on " in name:
            metric, task = name[len(prefix):].split(" on ", 1)
            return prefix, metric, task
    return None


def digest(tensors: dict[str, Any]) -> str:
    """A content key of candidate weights (names, dtypes, shapes and bytes)."""
    import torch

    found = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        found.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        found.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return found.hexdigest()


class Oracle:
    """The eval-sample scores of one merge's candidates, per merged task, by content."""

    def __init__(self, metric: str, tasks: list[str], higher_is_better: bool = True):
        self.metric, self.tasks, self.higher = metric, tasks, higher_is_better
        self.scores: dict[str, list[float]] = {}
        self.order: list[str] = []

    def record(self, tensors: dict[str, Any], per_task: list[float]) -> None:
        key = digest(tensors)
        if key not in self.scores:
            self.order.append(key)
        self.scores[key] = per_task

    def stats(self, chosen: dict[str, Any]) -> dict[str, float]:
        """The honest choice's (``chosen``, what the merge returned) and the oracle's eval
        scores per task; nothing when ``chosen`` was never scored (a merge that changed its
        pick after scoring it) or no candidate has a finite mean."""
        tuned = self.scores.get(digest(chosen))
        finite = [k for k in self.order if all(math.isfinite(v) for v in self.scores[k])]
        if tuned is None or not finite:
            return {COUNT: float(len(self.order))}
        # the first best: ties keep the earlier candidate, as the tuned merges' own rule
        sign = 1.0 if self.higher else -1.0
        best = max(finite, key=lambda k: (sign * sum(self.scores[k]), -self.order.index(k)))
        out = {COUNT: float(len(self.order))}
        out.update({stat(TUNED, self.metric, t): v
                    for t, v in zip(self.tasks, tuned, strict=True)})
        out.update({stat(ORACLE, self.metric, t): v
                    for t, v in zip(self.tasks, self.scores[best], strict=True)})
        return out
