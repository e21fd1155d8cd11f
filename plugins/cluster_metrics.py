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


@dataclass(frozen=True)
class Silhouette(Metric):
    """Mean cosine silhouette of the classes (-1..1): tight, well-separated classes score high."""

    name: ClassVar[str] = "silhouette"
    version: ClassVar[str] = "2"  # 2: per-row values for bootstrap intervals
    higher_is_better: ClassVar[bool] = True

    max_samples: int = field(default=2000, metadata={
        "help": "cost is quadratic in n: above this many rows, score a stratified random "
                "subsample of this size (adds sampling error; drawn from the run's rng)"})

    def __post_init__(self) -> None:
        check_int(self.name, "max_samples", self.max_samples, 2)

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        return mean_of(self.per_sample(X, y, rng))

    def per_sample(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        X, y = prepare(X, y)
        Z = l2_normalise(X)
        check_not_constant(Z, "embedding directions")
        idx = np.arange(len(y))
        if len(y) > self.max_samples:
            idx = stratified_subsample(y, self.max_samples, rng)
            check_not_constant(Z[idx], "embedding directions in the subsample")
        check_cluster_labels(y[idx])
        from sklearn.metrics import silhouette_samples

        out = np.full(len(y), np.nan)
        out[idx] = silhouette_samples(X[idx], y[idx], metric="cosine")
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
