"""Paired bootstrap intervals over the evaluation samples, from the per-row metric values.

Every variant is scored on the same eval sample of each task, row for row, so one set of
resampled row indices per task serves every variant: differences between variants (a gain over
the base, one merge against another) get *paired* intervals, much tighter than comparing two
separate intervals. A figure that averages several tasks resamples each task's rows on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.keys import content_hash

RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A figure and its bootstrap draws (``draws`` is None where no per-row values exist)."""

    value: float
    draws: np.ndarray | None = None

    def interval(self) -> tuple[float, float] | None:
        if self.draws is None:
            return None
        finite = self.draws[np.isfinite(self.draws)]
        if not finite.size:
            return None
        lo, hi = np.quantile(finite, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
        return float(lo), float(hi)

    def __sub__(self, other: Estimate) -> Estimate:
        draws = self.draws - other.draws if self.draws is not None and \
            other.draws is not None else None
        return Estimate(self.value - other.value, draws)

    def __add__(self, other: Estimate) -> Estimate:
        draws = self.draws + other.draws if self.draws is not None and \
            other.draws is not None else None
        return Estimate(self.value + other.value, draws)

    def scaled(self, factor: float) -> Estimate:
        return Estimate(self.value * factor, None if self.draws is None else self.draws * factor)

    def sign(self) -> int:
        """+1 / -1 when the interval lies wholly above / below zero, else 0."""
        ci = self.interval()
        if ci is None:
            return 0
        return 1 if ci[0] > 0 else -1 if ci[1] < 0 else 0


def mean_of(estimates: list[Estimate]) -> Estimate:
    finite = [e for e in estimates if np.isfinite(e.value)]
    if not finite:
        return Estimate(float("nan"))
    value = float(np.mean([e.value for e in finite]))
    draws = [e.draws for e in finite if e.draws is not None]
    if len(draws) < len(finite):
        return Estimate(value)
    return Estimate(value, np.mean(draws, axis=0))


class Bootstrap:
    """Resampled row indices, one fixed set per eval task (seeded by its name and the seed)."""

    def __init__(self, seed: int, resamples: int = RESAMPLES):
        self.seed, self.resamples = seed, resamples
        self._idx: dict[tuple[str, int], np.ndarray] = {}

    def indices(self, task: str, n: int) -> np.ndarray:
        key = (task, n)
        if key not in self._idx:
            rng = np.random.default_rng(int(content_hash("bootstrap", task, n, self.seed)[:12],
                                            16))
            self._idx[key] = rng.integers(0, n, size=(self.resamples, n))
        return self._idx[key]

    def estimate(self, task: str, values: np.ndarray) -> Estimate:
        """The mean of the finite per-row values, with draws of the same mean on resamples."""
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.any():
            return Estimate(float("nan"))
        idx = self.indices(task, len(values))
        picked = values[idx]
        counts = np.isfinite(picked).sum(axis=1)
        sums = np.where(np.isfinite(picked), picked, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return Estimate(float(values[finite].mean()), draws)
