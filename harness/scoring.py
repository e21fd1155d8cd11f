"""Scoring a cell: every metric of the plan on one variant's embeddings of one eval sample.

Each metric's random stream is seeded by the eval sample and the metric, not by the variant:
every variant gets the same probe splits (paired comparisons), and equal embeddings get equal
scores. A metric that decomposes over rows (``Metric.per_sample``) stores its per-row values,
from which the leaderboard bootstraps intervals; one recomputed on the bootstrap resamples
(``Metric.resampled``) stores those draws instead, on the leaderboard's own resamples
(``harness.report.stats.Bootstrap``), so its intervals stay paired across variants.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from harness import keys
from harness.api import Metric, MetricUndefined
from harness.params import label
from harness.plan import Variant
from harness.report.stats import Bootstrap
from harness.store.queries import Draws
from harness.store.records import ScoreRow


class Metrics:
    """The plan's metrics, each with its content key and label."""

    def __init__(self, metrics: list[Metric]):
        self.entries = [(keys.metric_key(m), label(m), m) for m in metrics]
        self.keys = {mk for mk, _, _ in self.entries}
        self._boot: dict[int, Bootstrap] = {}  # eval seed -> its resamples

    def score(self, X: np.ndarray, y: np.ndarray, eval_key: str, stored: set[str],
              task: str | None = None, seed: int | None = None
              ) -> tuple[list[ScoreRow], dict[str, np.ndarray]]:
        """Rows for the metrics not in ``stored`` (a metric added to a finished run scores only
        itself) and the per-row values of those that decompose, or the ``Draws`` of those
        recomputed on the resamples of ``task``'s eval sample under eval seed ``seed`` (given
        both). A metric that raises anything but ``MetricUndefined`` raises here: the caller
        fails the cell."""
        rows: list[ScoreRow] = []
        samples: dict[str, np.ndarray] = {}
        note = "only one class present" if len(np.unique(y)) < 2 else ""
        for mk, name, metric in self.entries:
            if mk in stored:
                continue
            higher = bool(metric.higher_is_better)
            if note:
                rows.append((mk, name, math.nan, note, higher))
                continue
            seeded = keys.metric_seed(eval_key, mk)
            rng = np.random.default_rng(seeded)
            try:
                per = metric.per_sample(X, y, rng)
                if per is None:
                    value = float(metric.score(X, y, rng))
                else:
                    per = np.asarray(per, dtype=np.float64)
                    if per.shape != (len(y),):
                        raise ValueError(f"metric {name!r}: per_sample returned shape "
                                         f"{per.shape}, expected ({len(y)},)")
                    finite = per[np.isfinite(per)]
                    value = float(finite.mean()) if finite.size else math.nan
                    samples[mk] = per
            except MetricUndefined as why:
                rows.append((mk, name, math.nan, str(why) or "undefined", higher))
                continue
            rows.append((mk, name, value, "" if math.isfinite(value)
                         else "metric returned a non-finite value", higher))
            if task is not None and seed is not None and math.isfinite(value) \
                    and _resamples(metric):
                counts = self._counts(seed, task, len(y))
                with contextlib.suppress(MetricUndefined):  # then no interval, as before
                    draws = metric.resampled(X, y, np.random.default_rng(seeded), counts)
                    if draws is not None:
                        samples[mk] = _checked_draws(name, draws, len(counts))
        return rows, samples

    def _counts(self, seed: int, task: str, n: int) -> np.ndarray:
        if seed not in self._boot:
            self._boot[seed] = Bootstrap(seed)
        return self._boot[seed].counts(task, n)


def _resamples(metric: Metric) -> bool:
    return type(metric).resampled is not Metric.resampled


def _checked_draws(name: str, draws: np.ndarray, resamples: int) -> np.ndarray:
    draws = np.asarray(draws, dtype=np.float64)
    if draws.shape != (resamples,):
        raise ValueError(f"metric {name!r}: resampled returned shape {draws.shape}, expected "
                         f"({resamples},): one value per resample")
    return draws.view(Draws)


def checked_embeddings(variant: Variant, X: Any, rows: int) -> np.ndarray:
    """An encoder's output as float32 (rows, dim), all finite, or a one-line error."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != rows or X.shape[1] < 1:
        raise ValueError(f"encoder {variant.encoder.name!r} returned embeddings of shape "
                         f"{X.shape}, expected ({rows}, dim); fix its Backbone.embed/encode")
    X = X.astype(np.float32, copy=False)
    bad = int((~np.isfinite(X)).any(axis=1).sum())
    if bad:
        by = f"merge {variant.merge.name!r} on " if variant.merge else ""
        raise ValueError(f"{by}encoder {variant.encoder.name!r} gave NaN or inf embeddings "
                         f"for {bad} of {rows} sequences; fix the plugin (for an encoder "
                         "with a precision parameter, try precision=fp32)")
    return X
