"""Scoring a cell: every metric of the plan on one variant's embeddings of one eval sample.

Each metric's random stream is seeded by the eval sample and the metric, not by the variant:
every variant gets the same probe splits (paired comparisons), and equal embeddings get equal
scores. A metric that decomposes over rows (``Metric.per_sample``) stores its per-row values,
from which the leaderboard bootstraps intervals.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness import keys
from harness.api import Metric, MetricUndefined
from harness.params import label
from harness.plan import Variant
from harness.store.records import ScoreRow


class Metrics:
    """The plan's metrics, each with its content key and label."""

    def __init__(self, metrics: list[Metric]):
        self.entries = [(keys.metric_key(m), label(m), m) for m in metrics]
        self.keys = {mk for mk, _, _ in self.entries}

    def score(self, X: np.ndarray, y: np.ndarray, eval_key: str, stored: set[str]
              ) -> tuple[list[ScoreRow], dict[str, np.ndarray]]:
        """Rows for the metrics not in ``stored`` (a metric added to a finished run scores only
        itself) and the per-row values of those that decompose. A metric that raises anything
        but ``MetricUndefined`` raises here: the caller fails the cell."""
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
            rng = np.random.default_rng(keys.metric_seed(eval_key, mk))
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
                rows.append((mk, name, value, "" if math.isfinite(value)
                             else "metric returned a non-finite value", higher))
            except MetricUndefined as why:
                rows.append((mk, name, math.nan, str(why) or "undefined", higher))
        return rows, samples


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
