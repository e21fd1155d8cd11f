"""A variant's stored scores of one profile and eval seed, each with its 95% interval: what
``harness export-model``'s card and ``harness export --format mteb`` write about one model.

The interval is the leaderboard's paired bootstrap of the eval rows (``Bootstrap``, seeded by
the eval seed): one model, so it holds no between-run variance. Where a store holds several rows
of the same variant, task and metric, the newest stands (the leaderboard, which pools a
variant's cells of several eval samples of one task as replicates, differs there; ``keep``
chooses the rows of one sample).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.report.stats import Bootstrap, Estimate
from harness.store.queries import Draws
from harness.store.records import ResultsReader, ScoreRecord


@dataclass(frozen=True)
class Scored:
    """One stored score: its record and its 95% interval (None where it has no per-row values
    or draws, or is not finite)."""

    record: ScoreRecord
    interval: tuple[float, float] | None


def latest(store: ResultsReader, profile: str, seed: int, variants: set[str] | None = None,
           keep: Callable[[ScoreRecord], bool] = lambda s: True
           ) -> dict[tuple[str, str, str], ScoreRecord]:
    """(variant, task, metric) -> its newest score row of this profile and eval seed (of the
    rows ``keep`` keeps)."""
    out: dict[tuple[str, str, str], ScoreRecord] = {}
    for s in store.scores(profile, seed):  # in the order written: a newer one replaces
        if (variants is None or s.variant in variants) and keep(s):
            out[(s.variant, s.task, s.metric)] = s
    return out


def scored(store: ResultsReader, profile: str, seed: int, variants: set[str] | None = None,
           keep: Callable[[ScoreRecord], bool] = lambda s: True
           ) -> dict[tuple[str, str, str], Scored]:
    """``latest`` with each score's 95% interval."""
    rows = latest(store, profile, seed, variants, keep)
    samples = store.samples({s.cell for s in rows.values()})
    boot = Bootstrap(seed)
    out = {}
    for key, s in rows.items():
        values = samples.get((s.cell, s.metric_key))
        ci = None
        if values is not None and math.isfinite(s.value):
            draws = np.asarray(values) if isinstance(values, Draws) else \
                boot.estimate(s.task, values).draws
            ci = Estimate(s.value, draws).interval()
        out[key] = Scored(s, ci)
    return out
