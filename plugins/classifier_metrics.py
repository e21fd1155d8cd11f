"""Built-in held-out classifier metrics: ``probe-accuracy`` (logistic regression) and
``knn-accuracy`` (cosine k-nearest neighbours), each with one value per held-out row."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from harness.api import Metric
from harness.hookspecs import Register, hookimpl
from harness.plugins.metric_checks import (
    check_fraction,
    check_int,
    check_not_constant,
    correct,
    l2_normalise,
    mean_of,
    prepare,
    stratified_split,
)


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
        check_fraction(self.name, "test_fraction", self.test_fraction)

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        return mean_of(self.per_sample(X, y, rng))

    def per_sample(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """1.0 / 0.0 for each held-out row classified right / wrong; NaN for train rows."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X, y = prepare(X, y)
        check_not_constant(X)
        train, test = stratified_split(y, self.test_fraction, rng)
        scaler = StandardScaler().fit(X[train])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            probe = LogisticRegression(max_iter=1000).fit(scaler.transform(X[train]), y[train])
        return correct(len(y), test, probe.predict(scaler.transform(X[test])) == y[test])


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
        check_int(self.name, "k", self.k, 1)
        check_fraction(self.name, "test_fraction", self.test_fraction)

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        return mean_of(self.per_sample(X, y, rng))

    def per_sample(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """1.0 / 0.0 for each held-out row classified right / wrong; NaN for train rows."""
        X, y = prepare(X, y)
        Z = l2_normalise(X)
        check_not_constant(Z, "embedding directions")
        train, test = stratified_split(y, self.test_fraction, rng)
        from sklearn.neighbors import KNeighborsClassifier

        knn = KNeighborsClassifier(n_neighbors=min(int(self.k), len(train)), metric="cosine")
        knn.fit(Z[train], y[train])
        return correct(len(y), test, knn.predict(Z[test]) == y[test])


@hookimpl
def register_metrics(register: Register) -> None:
    register(ProbeAccuracy)
    register(KnnAccuracy)
