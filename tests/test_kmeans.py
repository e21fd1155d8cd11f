"""The harness's k-means (``harness.plugins.kmeans``): the clusterings scikit-learn's algorithm
gives, and the k-means metrics fitting them once a cell."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from harness.plugins import kmeans_metrics
from harness.plugins.kmeans import kmeans, lloyd, squared_distances


def _blobs(n: int = 120, k: int = 3, dim: int = 20, spread: float = 1.0, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    means = rng.normal(size=(k, dim)) * 3
    return means[y] + spread * rng.normal(size=(n, dim)), y


def test_separated_blobs_are_found() -> None:
    X, y = _blobs(spread=0.1)
    labels = kmeans(X, 3, np.random.default_rng(0), n_init=2)
    assert normalized_mutual_info_score(y, labels) == pytest.approx(1.0)


def test_the_result_is_a_fixed_point_of_lloyd() -> None:
    X, _ = _blobs(spread=3.0)
    labels = kmeans(X, 4, np.random.default_rng(1), tol=0.0)  # strict convergence
    means = np.stack([X[labels == c].mean(axis=0) for c in range(4)])
    x2 = (X ** 2).sum(axis=1)
    assert np.array_equal(squared_distances(X, means, x2).argmin(axis=1), labels)


def test_same_seed_same_clustering() -> None:
    X, _ = _blobs(spread=3.0)
    a = kmeans(X, 3, np.random.default_rng(5))
    assert np.array_equal(a, kmeans(X, 3, np.random.default_rng(5)))


def test_an_empty_cluster_takes_the_farthest_row() -> None:
    X, _ = _blobs(spread=0.5)
    x2 = (X ** 2).sum(axis=1)
    far = np.vstack([X[:2], np.full((1, X.shape[1]), 1e3)])  # no row is nearest the third
    labels, _ = lloyd(X, far, x2, tol=0.0, max_iter=100)
    assert sorted(np.unique(labels)) == [0, 1, 2]


def test_bad_k_is_one_line() -> None:
    X, _ = _blobs()
    for k in (0, len(X) + 1):
        with pytest.raises(ValueError, match="1 <= k <= rows"):
            kmeans(X, k, np.random.default_rng(0))


def test_the_same_distribution_of_clusterings_as_sklearn() -> None:
    """Overlapping blobs, where single starts disagree: over 40 starts each, the mean agreement
    with the classes and the mean inertia match scikit-learn's ``KMeans(n_init=1)``."""
    X, y = _blobs(n=100, k=4, spread=8.0, seed=3)  # NMI 0.34, sd 0.08 over starts
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    ours, theirs = [], []
    for s in range(40):
        a = kmeans(X, 4, np.random.default_rng(s))
        b = KMeans(n_clusters=4, n_init=1, random_state=s).fit_predict(X)
        ours.append((normalized_mutual_info_score(y, a), _inertia(X, a)))
        theirs.append((normalized_mutual_info_score(y, b), _inertia(X, b)))
    (nmi_a, in_a), (nmi_b, in_b) = np.mean(ours, axis=0), np.mean(theirs, axis=0)
    # one Lloyd iteration only: inertia 2.3% above, so the 1% bound tells the iterations apart
    assert abs(nmi_a - nmi_b) < 0.05 and abs(in_a - in_b) < 0.01 * in_b


def _inertia(X: np.ndarray, labels: np.ndarray) -> float:
    return float(sum(((X[labels == c] - X[labels == c].mean(axis=0)) ** 2).sum()
                     for c in np.unique(labels)))


def test_both_kmeans_metrics_share_one_set_of_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _blobs(spread=3.0)
    calls = []
    real = kmeans_metrics.kmeans
    monkeypatch.setattr(kmeans_metrics, "kmeans",
                        lambda *a, **kw: calls.append(1) or real(*a, **kw))
    kmeans_metrics._fitted.clear()
    rng = np.random.default_rng(0)
    counts = np.ones((3, len(y)))
    for metric in (kmeans_metrics.KMeansNMI(), kmeans_metrics.KMeansARI()):
        metric.score(X, y, rng)
        metric.resampled(X, y, rng, counts)
    assert len(calls) == kmeans_metrics.KMeansNMI().fits  # ten fits a cell, not twenty
    more = kmeans_metrics.KMeansNMI(fits=12).score(X, y, rng)  # more fits than kept: refit
    assert len(calls) == 10 + 12 and 0 <= more <= 1
