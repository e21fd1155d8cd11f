"""Paired bootstrap intervals over the evaluation samples and the training seeds.

Every variant is scored on the same eval sample of each task, row for row, so one set of
resampled row indices per task serves every variant: differences between variants (a gain over
the base, one merge against another) get *paired* intervals, much tighter than comparing two
separate intervals. A figure that averages several tasks resamples each task's rows on its own.

A draw is either the mean of a metric's per-row values on a resample (``Bootstrap.estimate``)
or the metric recomputed on that resample by the scorer (``Bootstrap.counts`` gives it the
resamples as row multiplicities; stored as ``samples.kind = 'draws'``). A figure over several
training seeds is a two-level bootstrap (``Bootstrap.over_seeds``): each draw also resamples the
seeds, so between-run spread enters the interval; with one seed it is the one-level bootstrap.
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
        self._picks: dict[tuple[tuple[int, ...], int], np.ndarray] = {}

    def indices(self, task: str, n: int) -> np.ndarray:
        key = (task, n)
        if key not in self._idx:
            rng = np.random.default_rng(int(content_hash("bootstrap", task, n, self.seed)[:12],
                                            16))
            self._idx[key] = rng.integers(0, n, size=(self.resamples, n))
        return self._idx[key]

    def counts(self, task: str, n: int) -> np.ndarray:
        """(resamples, n): how often each row is in each resample of ``indices(task, n)``: what
        a metric recomputed on the resamples (``Metric.resampled``) is given."""
        idx = self.indices(task, n)
        flat = (idx + n * np.arange(len(idx))[:, None]).ravel()
        return np.bincount(flat, minlength=idx.size).reshape(idx.shape).astype(np.float64)

    def seed_picks(self, seeds: tuple[int, ...], count: int) -> np.ndarray:
        """(resamples, count) positions in 0..count-1 drawn with replacement: the training
        seeds each draw takes. The same for every row with the same seeds (paired); all zeros
        for one seed."""
        key = (seeds, count)
        if key not in self._picks:
            rng = np.random.default_rng(int(content_hash("seeds", [int(s) for s in seeds], count,
                                                         self.seed)[:12], 16))
            self._picks[key] = rng.integers(0, count, size=(self.resamples, count))
        return self._picks[key]

    def over_seeds(self, value: float, draws: list[np.ndarray], seeds: tuple[int, ...],
                   points: list[float] | None = None) -> Estimate:
        """A figure over training seeds: ``value`` with two-level draws. Each draw is the mean
        over every seed of that row resample's draws (``draws``: one array per seed, each a
        draw per resample of the rows), plus the seed resample's part: the deviation of the
        mean of a resample of the seeds' full-sample values (``points``, one per seed) from
        their mean, widened by ``widening(seeds)`` so that the interval is a t's over so few
        runs. Only the seeds' full-sample values are widened, not each row resample's
        difference between seeds, whose row noise the first part already holds (without
        ``points``, the seeds' mean draws stand in for them). Seeds whose draws are all NaN
        (undefined there) are left out, as ``mean_of`` leaves them out of the value. Linear in
        each seed's draws and values, with the same seed picks for every row with the same
        seeds: differences stay paired."""
        use = [len(d) == self.resamples and bool(np.isfinite(d).any()) for d in draws]
        kept = [np.asarray(d, dtype=np.float64) for d, ok in zip(draws, use, strict=True) if ok]
        if not kept or len(kept) < sum(np.isfinite(d).any() for d in draws):
            return Estimate(value)
        stacked = np.stack(kept)  # (seeds, resamples)
        picks = self.seed_picks(seeds, len(kept))
        every = stacked.mean(axis=0)
        if points is not None and len(points) == len(draws):
            pts = np.array([p for p, ok in zip(points, use, strict=True) if ok], dtype=np.float64)
        else:
            pts = np.nanmean(stacked, axis=1)
        if not np.isfinite(pts).all():
            pts = np.nanmean(stacked, axis=1)
        spread = pts[picks].mean(axis=1) - pts.mean()
        return Estimate(value, every + widening(len(kept)) * spread)

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


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def widening(seeds: int) -> float:
    """The factor on the seed resample's part of a two-level draw (``over_seeds``) that makes
    its 95% interval a t-interval over ``seeds`` runs: 1 for one seed; for two, t(1) = 12.71
    (with two seeds the resampled mean's 97.5% quantile is the larger seed's deviation, s/√2
    exactly); for more, t(S−1) / (1.96 · sqrt((S−1)/S)), the bootstrap's between-seed SE being
    sqrt((S−1)/S) of the unbiased one. Coverage, simulated in ``bench/intervals.py``: see
    README's *How intervals are computed*."""
    if seeds < 2:
        return 1.0
    if seeds == 2:
        return t975(1)
    return t975(seeds - 1) / (Z_TEST * float(np.sqrt((seeds - 1) / seeds)))


def seed_pooled(found: list[tuple[float, float, float]], z: float = 1.959964
                ) -> tuple[float, float, float]:
    """(value, low, high) over training seeds from each seed's symmetric interval (value ±
    z·sd, e.g. CKA's half-sample interval): the mean value, ± sqrt((z·sd)² + (t·sb)²) with sd²
    the mean within-seed variance and sb² the between-seed variance over seeds (t: Student's
    over seeds − 1 degrees of freedom). One seed: its own interval."""
    values = np.array([f[0] for f in found], dtype=np.float64)
    sds = np.array([(f[2] - f[1]) / (2 * z) for f in found], dtype=np.float64)
    value = float(values.mean())
    between = float(values.var(ddof=1)) / len(values) if len(values) > 1 else 0.0
    t = t975(len(values) - 1) if len(values) > 1 else z
    spread = float(np.sqrt(z**2 * np.mean(sds**2) + t**2 * between))
    return value, value - spread, value + spread


#: the quantiles of a 95% two-sided test with 80% power: MDE = (1.96 + 0.84) · SE
Z_TEST, Z_POWER = 1.959964, 0.841621


@dataclass(frozen=True)
class Detectable:
    """The smallest effect a comparison could have detected: its minimum detectable difference
    at 95% two-sided and 80% power, ``(1.96 + 0.84) · SE``; ``seeds`` >= 2 where SE is the
    half-width of its t-corrected interval over that many training seeds / 1.96
    (``widening``), else 0 (SE: the standard deviation of its bootstrap draws)."""

    effect: float
    se: float
    seeds: int = 0

    def how(self) -> str:
        if self.seeds >= 2:
            return (f"(1.96 + 0.84) × SE {self.se:.3f}, the half-width of its t-corrected "
                    f"interval over {self.seeds} training seeds / 1.96")
        return f"(1.96 + 0.84) × SE {self.se:.3f}"


def detectable_se(se: float, seeds: int = 0) -> Detectable | None:
    """The MDE of a comparison whose standard error is ``se`` (with ``seeds`` >= 2: the
    half-width of its t-corrected interval / 1.96)."""
    if not np.isfinite(se):
        return None
    return Detectable((Z_TEST + Z_POWER) * se, se, seeds if seeds >= 2 else 0)


def detectable(e: Estimate | None, seeds: int = 0) -> Detectable | None:
    """The MDE of a paired comparison: from its bootstrap draws' standard deviation, or, over
    two or more training seeds, from its interval's half-width (the t-correction of
    ``over_seeds`` is in the interval, not in the draws' standard deviation alone). None
    without draws."""
    if e is None or e.draws is None:
        return None
    if seeds >= 2:
        ci = e.interval()
        return detectable_se(interval_se(*ci), seeds) if ci is not None else None
    finite = e.draws[np.isfinite(e.draws)]
    return detectable_se(float(np.std(finite, ddof=1)), seeds) if finite.size > 1 else None


def interval_se(lo: float, hi: float) -> float:
    """The standard error behind a symmetric 95% interval: (hi − lo) / 3.92."""
    return (hi - lo) / (2 * Z_TEST)
