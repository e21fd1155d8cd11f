"""Built-in clustering metrics: k-means (k = number of classes) on the L2-normalised
embeddings, compared with the labels by ``kmeans-nmi`` and ``kmeans-ari``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.api import Metric, MetricUndefined
from harness.hookspecs import Register, hookimpl
from harness.plugins.metric_checks import (
    check_not_constant,
    l2_normalise,
    prepare,
    sklearn_seed,
)


def kmeans_labels(X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """K-means cluster labels of the L2-normalised rows, k = number of classes in ``y``."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    Z = l2_normalise(X)
    check_not_constant(Z, "embedding directions")
    k = len(np.unique(y))
    # rows equal up to float32 rounding are one point for k-means
    distinct = len(np.unique(Z.astype(np.float32), axis=0))
    if distinct < k:
        raise MetricUndefined(f"only {distinct} distinct embedding row(s) for {k} clusters")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, n_init=4, random_state=sklearn_seed(rng))
        return km.fit_predict(Z)



@dataclass(frozen=True)
class KMeansNMI(Metric):
    """Normalised mutual information between k-means clusters (k = classes) and the labels."""

    name: ClassVar[str] = "kmeans-nmi"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        from sklearn.metrics import normalized_mutual_info_score

        X, y = prepare(X, y)
        return float(normalized_mutual_info_score(y, kmeans_labels(X, y, rng)))


@dataclass(frozen=True)
class KMeansARI(Metric):
    """Adjusted Rand index between k-means clusters (k = classes) and the labels."""

    name: ClassVar[str] = "kmeans-ari"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        from sklearn.metrics import adjusted_rand_score

        X, y = prepare(X, y)
        return float(adjusted_rand_score(y, kmeans_labels(X, y, rng)))


@hookimpl
def register_metrics(register: Register) -> None:
    register(KMeansNMI)
    register(KMeansARI)
