"""Built-in metrics: how well the geometry of embeddings ``X`` separates the class labels ``y``.

Every metric is a thin wrapper around scikit-learn, imported where it is used (a run whose
scores are all stored never pays for importing it). The shared checks live in the private
helpers below; a metric raises ``MetricUndefined`` (never returns NaN) wherever its value is
undefined for the data at hand. All randomness comes from the ``rng`` passed to ``score``, so a
score is a deterministic function of (parameters, X, y, rng seed).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from harness.api import Metric, MetricUndefined
from harness.hookspecs import hookimpl

# Relative tolerance below which differences between rows count as rounding noise. Embeddings
# arrive as float32 (resolution ~1.2e-7), so a spread of a few ulps is no real spread.
_RTOL = 1e-6

# ----------------------------------------------------------------------------- shared helpers


def _prepare(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as float64 (n, d) and ``y`` as a 1-d array; shape mismatches are caller bugs."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, d) with n == len(y); got X {X.shape}, y {y.shape}")
    return X, y


def _check_not_constant(X: np.ndarray, what: str = "embeddings") -> None:
    """Raise if every row of ``X`` is the same (up to float32 rounding): zero variance."""
    spread = float(np.ptp(X, axis=0).max()) if X.size else 0.0
    scale = float(np.abs(X).max()) if X.size else 0.0
    if spread <= _RTOL * scale:
        raise MetricUndefined(f"constant {what}: all rows are identical (zero variance)")


def _l2_normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows have no direction, so cosine is undefined."""
    norms = np.linalg.norm(X, axis=1)
    zero = int(np.count_nonzero(norms == 0.0))
    if zero:
        raise MetricUndefined(f"{zero} all-zero embedding row(s): cosine geometry is undefined")
    return X / norms[:, None]


def _check_cluster_labels(y: np.ndarray) -> None:
    """Cluster-validity indices need 2 <= number of classes <= n - 1."""
    n_labels = len(np.unique(y))
    if n_labels < 2:
        raise MetricUndefined("fewer than 2 classes")
    if n_labels > len(y) - 1:
        raise MetricUndefined(f"{n_labels} classes among {len(y)} samples: need n > classes")


def _seed(rng: np.random.Generator) -> int:
    """An sklearn ``random_state`` drawn from ``rng``."""
    return int(rng.integers(2**31 - 1))


def _allocate(counts: np.ndarray, m: int) -> np.ndarray:
    """Split ``m`` draws over classes in proportion to ``counts`` (largest remainder)."""
    exact = counts * (m / counts.sum())
    take = np.floor(exact).astype(int)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: m - int(take.sum())]] += 1
    return np.minimum(take, counts)


def _stratified_subsample(y: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``m`` rows drawn without replacement, class proportions kept."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    take = _allocate(counts, m)
    picked = [rng.choice(np.flatnonzero(inverse == c), size=t, replace=False)
              for c, t in enumerate(take) if t]
    return np.sort(np.concatenate(picked))


def _stratified_split(y: np.ndarray, test_fraction: float,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices; each class sends round(count * test_fraction) rows to test,
    clipped so every class has at least one row on each side."""
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        small = classes[counts < 2].tolist()
        raise MetricUndefined(f"class(es) {small[:5]} have fewer than 2 members: cannot split")
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c, count in enumerate(counts):
        members = rng.permutation(np.flatnonzero(inverse == c))
        n_test = min(max(int(np.floor(count * test_fraction + 0.5)), 1), int(count) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    train_idx, test_idx = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
    if len(np.unique(y[train_idx])) < len(classes):  # cannot happen with the clipping above
        raise MetricUndefined("the train part lacks a class")
    return train_idx, test_idx


def _kmeans_labels(X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """K-means cluster labels of the L2-normalised rows, k = number of classes in ``y``."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    Z = _l2_normalise(X)
    _check_not_constant(Z, "embedding directions")
    k = len(np.unique(y))
    # rows equal up to float32 rounding are one point for k-means
    distinct = len(np.unique(Z.astype(np.float32), axis=0))
    if distinct < k:
        raise MetricUndefined(f"only {distinct} distinct embedding row(s) for {k} clusters")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, n_init=4, random_state=_seed(rng))
        return km.fit_predict(Z)


def _mean_of(values: np.ndarray) -> float:
    return float(np.nanmean(values))


def _correct(n: int, test: np.ndarray, right: np.ndarray) -> np.ndarray:
    out = np.full(n, np.nan)
    out[test] = right.astype(np.float64)
    return out


def _check_int(owner: str, name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")


def _check_fraction(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{owner}: {name} must be strictly between 0 and 1, got {value}")


# ------------------------------------------------------------------------------------ metrics


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
        _check_int(self.name, "max_samples", self.max_samples, 2)

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        return _mean_of(self.per_sample(X, y, rng))

    def per_sample(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        X, y = _prepare(X, y)
        Z = _l2_normalise(X)
        _check_not_constant(Z, "embedding directions")
        idx = np.arange(len(y))
        if len(y) > self.max_samples:
            idx = _stratified_subsample(y, self.max_samples, rng)
            _check_not_constant(Z[idx], "embedding directions in the subsample")
        _check_cluster_labels(y[idx])
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
        X, y = _prepare(X, y)
        Z = _l2_normalise(X)
        _check_not_constant(Z, "embedding directions")
        _check_cluster_labels(y)
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
        X, y = _prepare(X, y)
        Z = _l2_normalise(X)
        _check_not_constant(Z, "embedding directions")
        _check_cluster_labels(y)
        total = float(((Z - Z.mean(axis=0)) ** 2).sum())
        within = sum(float(((Z[y == c] - Z[y == c].mean(axis=0)) ** 2).sum())
                     for c in np.unique(y))
        if within <= _RTOL**2 * total:  # sklearn would report 1.0 for this infinite ratio
            raise MetricUndefined("zero within-class dispersion: every class is one point")
        from sklearn.metrics import calinski_harabasz_score

        return float(calinski_harabasz_score(Z, y))


@dataclass(frozen=True)
class ProbeAccuracy(Metric):
    """Held-out accuracy of a logistic-regression probe on standardised embeddings."""

    name: ClassVar[str] = "probe-accuracy"
    version: ClassVar[str] = "2"  # 2: per-row values for bootstrap intervals
    higher_is_better: ClassVar[bool] = True

    test_fraction: float = field(default=0.3, metadata={
        "help": "share of each class held out for testing (stratified; every class keeps at "
                "least one row on each side)"})

    def __post_init__(self) -> None:
        _check_fraction(self.name, "test_fraction", self.test_fraction)

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        return _mean_of(self.per_sample(X, y, rng))

    def per_sample(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """1.0 / 0.0 for each held-out row classified right / wrong; NaN for train rows."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X, y = _prepare(X, y)
        _check_not_constant(X)
        train, test = _stratified_split(y, self.test_fraction, rng)
        scaler = StandardScaler().fit(X[train])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            probe = LogisticRegression(max_iter=1000).fit(scaler.transform(X[train]), y[train])
        return _correct(len(y), test, probe.predict(scaler.transform(X[test])) == y[test])


@dataclass(frozen=True)
class KnnAccuracy(Metric):
    """Held-out accuracy of a k-nearest-neighbour classifier under cosine distance."""

    name: ClassVar[str] = "knn-accuracy"
    version: ClassVar[str] = "2"  # 2: per-row values for bootstrap intervals
    higher_is_better: ClassVar[bool] = True

    k: int = field(default=5, metadata={
        "help": "neighbours that vote (capped to the size of the train part)"})
    test_fraction: float = field(default=0.3, metadata={
        "help": "share of each class held out for testing (stratified; every class keeps at "
                "least one row on each side)"})

    def __post_init__(self) -> None:
        _check_int(self.name, "k", self.k, 1)
        _check_fraction(self.name, "test_fraction", self.test_fraction)

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        return _mean_of(self.per_sample(X, y, rng))

    def per_sample(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """1.0 / 0.0 for each held-out row classified right / wrong; NaN for train rows."""
        X, y = _prepare(X, y)
        Z = _l2_normalise(X)
        _check_not_constant(Z, "embedding directions")
        train, test = _stratified_split(y, self.test_fraction, rng)
        from sklearn.neighbors import KNeighborsClassifier

        knn = KNeighborsClassifier(n_neighbors=min(int(self.k), len(train)), metric="cosine")
        knn.fit(Z[train], y[train])
        return _correct(len(y), test, knn.predict(Z[test]) == y[test])


@dataclass(frozen=True)
class KMeansNMI(Metric):
    """Normalised mutual information between k-means clusters (k = classes) and the labels."""

    name: ClassVar[str] = "kmeans-nmi"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        from sklearn.metrics import normalized_mutual_info_score

        X, y = _prepare(X, y)
        return float(normalized_mutual_info_score(y, _kmeans_labels(X, y, rng)))


@dataclass(frozen=True)
class KMeansARI(Metric):
    """Adjusted Rand index between k-means clusters (k = classes) and the labels."""

    name: ClassVar[str] = "kmeans-ari"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        from sklearn.metrics import adjusted_rand_score

        X, y = _prepare(X, y)
        return float(adjusted_rand_score(y, _kmeans_labels(X, y, rng)))


METRICS: tuple[type[Metric], ...] = (
    Silhouette,
    DaviesBouldin,
    CalinskiHarabasz,
    ProbeAccuracy,
    KnnAccuracy,
    KMeansNMI,
    KMeansARI,
)


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    for cls in METRICS:
        register(cls)
