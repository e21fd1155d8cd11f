"""Built-in clustering metrics: k-means (k = number of classes) on the L2-normalised
embeddings, compared with the labels by ``kmeans-nmi`` and ``kmeans-ari``.

One k-means fit is a noisy figure (ten seeds of one fit gave 0.00 to 0.48 on one cell), so each
score is the mean over ``fits`` independent fits (one k-means++ start each, scikit-learn's
algorithm in numpy: ``harness.plugins.kmeans``). Both metrics use the same fits: their starts are
seeded by the cell's labels, not by the metric, so a cell fits them once. Its bootstrap draws
(``resampled``) score every fit's clusters on each resample of the rows and average a resample
of the fits, so both the rows and the fits' disagreement widen the interval.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from harness.api import Metric, MetricUndefined
from harness.hookspecs import Register, hookimpl
from harness.plugins.kmeans import kmeans
from harness.plugins.metric_checks import (
    check_int,
    check_not_constant,
    l2_normalise,
    prepare,
)

#: the last few cells' fits, for ``resampled`` and for the other k-means metric of the cell
_fitted: dict[tuple[str, int, int], np.ndarray] = {}
KEEP = 4


def fit_seed(y: np.ndarray) -> int:
    """The seed of a cell's k-means starts: from its labels, so the two k-means metrics share
    their fits and every variant scored on one eval sample gets the same starts (paired)."""
    classes = np.unique(y, return_inverse=True)[1].reshape(-1).astype("<i8")  # any label type
    digest = hashlib.sha256(b"kmeans starts" + classes.tobytes()).digest()
    return int.from_bytes(digest[:8], "little")


def kmeans_fits(X: np.ndarray, y: np.ndarray, fits: int) -> np.ndarray:
    """(fits, n) cluster labels of the L2-normalised rows, k = number of classes in ``y``, one
    k-means++ start per fit (``harness.plugins.kmeans``), fit i seeded by (``fit_seed(y)``, i):
    the first ``fits`` of one stream whatever ``fits`` is. Kept for the cell's next call."""
    Z = l2_normalise(X)
    check_not_constant(Z, "embedding directions")
    k = len(np.unique(y))
    seed = fit_seed(y)
    key = (hashlib.sha1(np.ascontiguousarray(Z).tobytes()).hexdigest(), k, seed)
    kept = _fitted.get(key)
    if kept is not None and len(kept) >= fits:
        return kept[:fits]
    # rows equal up to float32 rounding are one point for k-means
    distinct = len(np.unique(Z.astype(np.float32), axis=0))
    if distinct < k:
        raise MetricUndefined(f"only {distinct} distinct embedding row(s) for {k} clusters")
    labels = np.stack([kmeans(Z, k, np.random.default_rng([seed, i])) for i in range(fits)])
    while len(_fitted) >= KEEP:
        del _fitted[next(iter(_fitted))]
    _fitted[key] = labels
    return labels


def contingency(y: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(B, fits, k, k) tables of class × cluster, each row of ``counts`` (B, n) weighting the
    rows (how often each is in a resample); k covers both classes and clusters."""
    _, cls = np.unique(y, return_inverse=True)
    k = int(max(cls.max(), labels.max())) + 1
    onehot = np.eye(k * k)
    tables = np.stack([counts @ onehot[cls * k + fit] for fit in labels], axis=1)
    return tables.reshape(len(counts), len(labels), k, k)


def nmi(tables: np.ndarray) -> np.ndarray:
    """Normalised mutual information (arithmetic mean of the entropies, as sklearn's default)
    of each class × cluster table in ``tables`` (..., k, k)."""
    p = tables / tables.sum(axis=(-1, -2), keepdims=True)
    rows, cols = p.sum(axis=-1, keepdims=True), p.sum(axis=-2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mi = np.where(p > 0, p * np.log(p / (rows * cols)), 0.0).sum(axis=(-1, -2))
        h = -(np.where(rows > 0, rows * np.log(rows), 0.0).sum(axis=(-1, -2))
              + np.where(cols > 0, cols * np.log(cols), 0.0).sum(axis=(-1, -2)))
    both_one = ((rows > 0).sum(axis=(-1, -2)) == 1) & ((cols > 0).sum(axis=(-1, -2)) == 1)
    return np.where(both_one, 1.0, np.maximum(mi, 0.0) / np.maximum(h / 2, 1e-300))


def ari(tables: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """Adjusted Rand index of each table in ``tables`` (..., k, k), over pairs of distinct rows:
    pairs of copies of one row (``counts`` (B, n) > 1 in a resample) are left out."""
    def pairs(x: np.ndarray) -> np.ndarray:
        return x * (x - 1) / 2

    same = pairs(tables).sum(axis=(-1, -2))
    by_class = pairs(tables.sum(axis=-1)).sum(axis=-1)
    by_cluster = pairs(tables.sum(axis=-2)).sum(axis=-1)
    total = pairs(tables.sum(axis=(-1, -2)))
    if counts is not None:  # copies are one row: in the same class and cluster
        copies = pairs(counts).sum(axis=1).reshape((-1,) + (1,) * (tables.ndim - 3))
        same, by_class, by_cluster, total = (same - copies, by_class - copies,
                                             by_cluster - copies, total - copies)
    expected = by_class * by_cluster / np.maximum(total, 1.0)
    top = (by_class + by_cluster) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(top == expected, 1.0, (same - expected) / (top - expected))


@dataclass(frozen=True)
class _KMeansAgreement(Metric):
    fits: int = field(default=10, metadata={
        "help": "independent k-means fits (one k-means++ start each) whose scores are "
                "averaged; the interval resamples them too"})

    def __post_init__(self) -> None:
        check_int(self.name, "fits", self.fits, 1)

    def agreement(self, tables: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        X, y = prepare(X, y)
        labels = kmeans_fits(X, y, self.fits)
        return float(self.agreement(contingency(y, labels, np.ones((1, len(y)))), None).mean())

    def resampled(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                  counts: np.ndarray) -> np.ndarray:
        X, y = prepare(X, y)
        labels = kmeans_fits(X, y, self.fits)
        per_fit = self.agreement(contingency(y, labels, counts), counts)  # (B, fits)
        picks = rng.integers(0, self.fits, size=(len(counts), self.fits))
        return per_fit[np.arange(len(counts))[:, None], picks].mean(axis=1)


@dataclass(frozen=True)
class KMeansNMI(_KMeansAgreement):
    """Normalised mutual information between k-means clusters (k = classes) and the labels."""

    name: ClassVar[str] = "kmeans-nmi"
    version: ClassVar[str] = "3"  # 2: the mean of `fits` fits, with resampled draws; 3: the
    # harness's own k-means, its fits shared with the other k-means metric
    higher_is_better: ClassVar[bool] = True

    def agreement(self, tables: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
        return nmi(tables)


@dataclass(frozen=True)
class KMeansARI(_KMeansAgreement):
    """Adjusted Rand index between k-means clusters (k = classes) and the labels."""

    name: ClassVar[str] = "kmeans-ari"
    version: ClassVar[str] = "3"  # 2: the mean of `fits` fits, with resampled draws; 3: the
    # harness's own k-means, its fits shared with the other k-means metric
    higher_is_better: ClassVar[bool] = True

    def agreement(self, tables: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
        return ari(tables, counts)


@hookimpl
def register_metrics(register: Register) -> None:
    register(KMeansNMI)
    register(KMeansARI)
