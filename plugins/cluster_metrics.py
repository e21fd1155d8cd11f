"""Built-in cluster-validity metrics of the true classes: ``silhouette`` (cosine),
``davies-bouldin`` and ``calinski-harabasz`` (on L2-normalised embeddings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from harness.api import Metric, MetricUndefined
from harness.hookspecs import Register, hookimpl
from harness.plugins.metric_checks import (
    RTOL,
    check_cluster_labels,
    check_int,
    check_not_constant,
    l2_normalise,
    mean_of,
    prepare,
    stratified_subsample,
)


def silhouette_rows(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row values of the cosine silhouette of unit rows ``Z`` whose mean is the silhouette
    and whose bootstrap spread is its sampling spread: each row's own s(i) plus its effect on
    every other row's a(j) and b(j) (the infinitesimal-jackknife linearisation).

    A row's own s(i) alone understates the spread wherever classes separate (measured by
    ``bench/intervals.py``: a per-row bootstrap of s(i) covered 65% where this covers 93%),
    since moving one row moves the class means every other row is scored against."""
    D = np.clip(1.0 - Z @ Z.T, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    n = len(y)
    _, cls, sizes = np.unique(y, return_inverse=True, return_counts=True)
    rows = np.arange(n)
    sums = np.stack([D[:, cls == k].sum(axis=1) for k in range(len(sizes))], axis=1)
    own = sizes[cls] - 1
    a = sums[rows, cls] / np.maximum(own, 1)
    means = sums / sizes
    means[rows, cls] = np.inf
    nearest = means.argmin(axis=1)
    b = means[rows, nearest]
    big = np.maximum(a, b)
    dead = (own == 0) | (big == 0)  # a lone row (and 0/0) scores 0, as sklearn's does
    # a zero only ever sits in the branch np.where does not take: kept out of the division
    safe_a, safe_b = np.where(dead | (a == 0), 1.0, a), np.where(dead | (b == 0), 1.0, b)
    s = np.where(dead, 0.0, (b - a) / np.where(dead, 1.0, big))
    # ds/da and ds/db: s = 1 - a/b where b >= a, else b/a - 1
    da = np.where(dead, 0.0, np.where(b >= a, -1.0 / safe_b, -b / safe_a**2))
    db = np.where(dead, 0.0, np.where(b >= a, a / safe_b**2, 1.0 / safe_a))
    effect = s - s.mean()
    for k, size in enumerate(sizes):
        mine = cls == k
        if size > 1:  # x's weight in a(i) of the other rows i of its class
            w = np.where(mine, da, 0.0)
            effect[mine] += (D[mine] @ w - (w * a).sum() + da[mine] * a[mine]) / (size - 1)
        w = np.where(nearest == k, db, 0.0)  # in b(i) of the rows whose nearest class is x's
        effect[mine] += (D[mine] @ w - (w * b).sum()) / size
    return s.mean() + effect - effect.mean()


@dataclass(frozen=True)
class Silhouette(Metric):
    """Mean cosine silhouette of the classes (-1..1): tight, well-separated classes score high."""

    name: ClassVar[str] = "silhouette"
    # 2: per-row values for bootstrap intervals; 3: per-row values linearised (silhouette_rows)
    version: ClassVar[str] = "3"
    higher_is_better: ClassVar[bool] = True

    max_samples: int = field(default=2000, metadata={
        "help": "cost is quadratic in n: above this many rows, score a stratified random "
                "subsample of this size (adds sampling error; drawn from the run's rng)"})

    def __post_init__(self) -> None:
        check_int(self.name, "max_samples", self.max_samples, 2)

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        return mean_of(self.per_sample(X, y, rng))

    def per_sample(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``silhouette_rows``: not each row's s(i), but values whose mean is the silhouette and
        whose bootstrap covers it (NaN outside the subsample, above ``max_samples`` rows)."""
        X, y = prepare(X, y)
        Z = l2_normalise(X)
        check_not_constant(Z, "embedding directions")
        idx = np.arange(len(y))
        if len(y) > self.max_samples:
            idx = stratified_subsample(y, self.max_samples, rng)
            check_not_constant(Z[idx], "embedding directions in the subsample")
        check_cluster_labels(y[idx])
        out = np.full(len(y), np.nan)
        out[idx] = silhouette_rows(Z[idx], y[idx])
        return out


@dataclass(frozen=True)
class DaviesBouldin(Metric):
    """Davies-Bouldin index of the classes on L2-normalised embeddings (>= 0; lower is better)."""

    # Normalising the rows first makes the index a function of directions only, so models whose
    # embeddings live at very different scales (norms) are comparable.
    name: ClassVar[str] = "davies-bouldin"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = False

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        X, y = prepare(X, y)
        Z = l2_normalise(X)
        check_not_constant(Z, "embedding directions")
        check_cluster_labels(y)
        centroids = np.stack([Z[y == c].mean(axis=0) for c in np.unique(y)])
        gaps = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=-1)
        if np.allclose(gaps, 0.0):  # sklearn would report a perfect 0.0 here
            raise MetricUndefined("all class centroids coincide: the index divides by zero")
        from sklearn.metrics import davies_bouldin_score

        return float(davies_bouldin_score(Z, y))


@dataclass(frozen=True)
class CalinskiHarabasz(Metric):
    """Calinski-Harabasz variance ratio of the classes on L2-normalised embeddings (>= 0)."""

    # Normalising the rows first makes the ratio a function of directions only, so models whose
    # embeddings live at very different scales (norms) are comparable.
    name: ClassVar[str] = "calinski-harabasz"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        X, y = prepare(X, y)
        Z = l2_normalise(X)
        check_not_constant(Z, "embedding directions")
        check_cluster_labels(y)
        total = float(((Z - Z.mean(axis=0)) ** 2).sum())
        within = sum(float(((Z[y == c] - Z[y == c].mean(axis=0)) ** 2).sum())
                     for c in np.unique(y))
        if within <= RTOL**2 * total:  # sklearn would report 1.0 for this infinite ratio
            raise MetricUndefined("zero within-class dispersion: every class is one point")
        from sklearn.metrics import calinski_harabasz_score

        return float(calinski_harabasz_score(Z, y))


@hookimpl
def register_metrics(register: Register) -> None:
    for cls in (Silhouette, DaviesBouldin, CalinskiHarabasz):
        register(cls)
