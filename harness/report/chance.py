"""Chance levels of the accuracies on the page, from the stored eval samples' labels.

No component declares that its metric is an accuracy, nor whether each row is predicted while
held out: an accuracy is a metric whose name ends in ``accuracy`` (``is_accuracy``), and its
test size is stated as the eval sample's rows and, where the metric's stored per-row values are
finite on fewer of them (a probe's held-out rows), how many it scored (``test_size``). Chance
is what always predicting the eval sample's most frequent label scores: 1 / classes where the
classes are balanced, else that majority share.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from harness.report.rows import Row
from harness.store.queries import Draws
from harness.store.records import EvalSampleRecord


@dataclass(frozen=True)
class Chance:
    """A task's chance accuracy on its eval sample: the majority share of its labels."""

    value: float
    classes: int
    rows: int
    balanced: bool

    def text(self) -> str:
        share = f"1/{self.classes}" if self.balanced else f"majority of {self.classes} classes"
        return f"{self.value:.3f} ({share})"


def is_accuracy(metric: str) -> bool:
    """Whether a metric is an accuracy, by its name (no component declares it)."""
    return metric.split(":", 1)[0].endswith("accuracy")


def of_labels(labels: list[int]) -> Chance | None:
    counts = Counter(labels)
    if not counts:
        return None
    top = max(counts.values())
    return Chance(top / len(labels), len(counts), len(labels), len(set(counts.values())) == 1)


def levels(samples: Mapping[str, EvalSampleRecord]) -> dict[str, Chance]:
    """Eval task -> the chance level of its stored eval sample."""
    return {t: c for t, s in samples.items() if (c := of_labels(list(s.labels))) is not None}


def scored(rows: list[Row], task: str, metric: str) -> list[int]:
    """How many eval rows the stored per-row values of ``metric`` on ``task`` score (finite),
    each distinct count over variants and seeds, ascending (empty where none are stored)."""
    return sorted({int(np.isfinite(np.asarray(a, dtype=np.float64)).sum()) for r in rows
                   for a in r.samples.get((task, metric), []) if not isinstance(a, Draws)})


def test_size(chance: Chance | None, counts: list[int]) -> str:
    """The eval rows, with the rows scored where they are fewer (``scored``)."""
    n = str(chance.rows) if chance is not None else "n/a"
    if counts and (len(counts) > 1 or chance is None or counts[0] != chance.rows):
        lo, hi = counts[0], counts[-1]
        return f"{n} ({lo if lo == hi else f'{lo}–{hi}'} scored)"
    return n
