"""The built-in metrics (harness.plugins.*_metrics) on synthetic embeddings."""

from __future__ import annotations

import dataclasses
import math
import types

import numpy as np
import pytest

from harness.api import Metric, MetricUndefined
from harness.plugins import classifier_metrics, cluster_metrics, kmeans_metrics, metric_checks

MODULES = (cluster_metrics, classifier_metrics, kmeans_metrics)


def _register_all(register):  # type: ignore[no-untyped-def]
    for module in MODULES:
        module.register_metrics(register)


_ALL: list = []
_register_all(_ALL.append)
M = types.SimpleNamespace(  # every built-in metric, in registration order
    METRICS=tuple(_ALL), register_metrics=_register_all,
    **{cls.__name__: cls for cls in _ALL})

NAMES = ["silhouette", "davies-bouldin", "calinski-harabasz", "probe-accuracy",
         "knn-accuracy", "kmeans-nmi", "kmeans-ari"]
BY_NAME = {cls.name: cls for cls in M.METRICS}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def blobs(n_per_class: int = 40, n_classes: int = 2, dim: int = 16, spread: float = 0.1,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight Gaussian blobs around random (nearly orthogonal) unit-scale centres."""
    g = np.random.default_rng(seed)
    centres = g.normal(size=(n_classes, dim)) * 3.0
    X = np.concatenate([c + spread * g.normal(size=(n_per_class, dim)) for c in centres])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X.astype(np.float32), y


def noise(n: int = 200, dim: int = 16, n_classes: int = 2,
          seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    return g.normal(size=(n, dim)).astype(np.float32), g.permutation(np.arange(n) % n_classes)


# ------------------------------------------------------------------------------- registration


def test_names_order_and_contract():
    assert [cls.name for cls in M.METRICS] == NAMES
    for cls in M.METRICS:
        assert issubclass(cls, Metric)
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
        # 2: per-row values (probe, knn), k-means averaged over fits; 3: silhouette linearised,
        # probe and knn cross-validated over every row; 4: the probe's objective solved exactly
        assert cls.version in ("1", "2", "3", "4")
        assert isinstance(cls.higher_is_better, bool)
        assert cls.__doc__ and "\n" not in cls.__doc__.strip()
        # ClassVars are not parameters; every parameter has a default and a help text
        for f in dataclasses.fields(cls):
            assert f.name not in {"name", "version", "higher_is_better", "in_all"}
            assert f.default is not dataclasses.MISSING
            assert f.metadata.get("help")
        cls()  # the defaults are valid
    assert BY_NAME["davies-bouldin"].higher_is_better is False


def test_register_hook_registers_every_metric():
    seen = []
    M.register_metrics(seen.append)
    assert seen == list(M.METRICS)


# ----------------------------------------------------------------------------- separated data


@pytest.mark.parametrize("n_classes", [2, 3])
def test_separated_blobs_score_well(n_classes):
    X, y = blobs(n_classes=n_classes)
    s = {name: BY_NAME[name]().score(X, y, rng()) for name in NAMES}
    assert s["silhouette"] > 0.5
    assert s["davies-bouldin"] < 0.3
    assert s["calinski-harabasz"] > 100
    assert s["probe-accuracy"] >= 0.95
    assert s["knn-accuracy"] >= 0.95
    assert s["kmeans-nmi"] > 0.95
    assert s["kmeans-ari"] > 0.95


def test_random_labels_near_chance():
    X, y = noise()
    s = {name: BY_NAME[name]().score(X, y, rng()) for name in NAMES}
    assert abs(s["silhouette"]) < 0.05
    assert s["davies-bouldin"] > 3
    assert s["calinski-harabasz"] < 5
    assert 0.25 <= s["probe-accuracy"] <= 0.75
    assert 0.25 <= s["knn-accuracy"] <= 0.75
    assert s["kmeans-nmi"] < 0.1
    assert abs(s["kmeans-ari"]) < 0.1


def test_scale_invariance_of_normalised_metrics():
    X, y = blobs(n_classes=3, spread=1.0)
    for name in ["silhouette", "davies-bouldin", "calinski-harabasz", "kmeans-nmi"]:
        a = BY_NAME[name]().score(X, y, rng(3))
        b = BY_NAME[name]().score(X * 100, y, rng(3))
        assert a == pytest.approx(b, rel=1e-5), name


# ------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_same_seed(name):
    X, y = blobs(n_classes=3, spread=2.0, seed=5)  # overlapping: randomness would show
    metric = BY_NAME[name]()
    first = metric.score(X, y, rng(7))
    assert metric.score(X, y, rng(7)) == first
    assert math.isfinite(first)


def test_folds_depend_on_seed():
    X, y = noise(n=120)
    scores = {BY_NAME["probe-accuracy"]().score(X, y, rng(s)) for s in range(6)}
    assert len(scores) > 1


def test_silhouette_subsample_deterministic_and_close():
    X, y = blobs(n_per_class=150, n_classes=3, spread=1.5)
    full = M.Silhouette(max_samples=10_000).score(X, y, rng())
    sub = M.Silhouette(max_samples=90)
    a, b = sub.score(X, y, rng(11)), sub.score(X, y, rng(11))
    assert a == b
    assert a == pytest.approx(full, abs=0.05)
    assert sub.score(X, y, rng(12)) != a  # the subsample really is random


def test_stratified_subsample_keeps_proportions():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    idx = metric_checks.stratified_subsample(y, 10, rng())
    assert len(idx) == len(set(idx.tolist())) == 10
    assert np.bincount(y[idx]).tolist() == [5, 3, 2]


def test_repeated_folds_hold_out_every_row_with_its_class_trained():
    y = np.repeat([0, 1, 2], [2, 3, 20])
    fold = metric_checks.repeated_folds(y, 5, 2, rng())
    for assigned in fold:
        assert sorted(set(assigned.tolist())) == list(range(5))
        for f in range(5):
            assert set(y[assigned != f]) == {0, 1, 2}
        assert np.bincount(assigned[y == 2], minlength=5).tolist() == [4] * 5


# ---------------------------------------------------------------------------- undefined cases


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [0.0, 1.5])
def test_constant_embeddings_are_undefined(name, value):
    X = np.full((30, 8), value, dtype=np.float32)
    y = np.arange(30) % 3
    with pytest.raises(MetricUndefined):
        BY_NAME[name]().score(X, y, rng())


@pytest.mark.parametrize("name", ["silhouette", "davies-bouldin", "calinski-harabasz",
                                  "knn-accuracy", "kmeans-nmi", "kmeans-ari"])
def test_zero_rows_undefined_where_cosine_needed(name):
    X, y = blobs()
    X[3] = 0.0
    with pytest.raises(MetricUndefined, match="zero"):
        BY_NAME[name]().score(X, y, rng())


def test_probe_tolerates_a_zero_row():
    X, y = blobs()
    X[3] = 0.0
    assert M.ProbeAccuracy().score(X, y, rng()) >= 0.9


@pytest.mark.parametrize("name", ["silhouette", "davies-bouldin", "calinski-harabasz",
                                  "knn-accuracy", "kmeans-nmi", "kmeans-ari"])
def test_same_direction_rows_undefined_for_cosine_metrics(name):
    g = np.random.default_rng(0)
    X = (g.uniform(0.5, 3.0, size=(20, 1)) * np.ones((1, 6))).astype(np.float32)
    y = np.arange(20) % 2
    with pytest.raises(MetricUndefined):
        BY_NAME[name]().score(X, y, rng())


@pytest.mark.parametrize("name", ["probe-accuracy", "knn-accuracy"])
def test_singleton_class_not_held_out_by_cross_validated_metrics(name):
    X, y = blobs()
    y = y.copy()
    y[0] = 7  # a class with one member: trains every fold, never held out (NaN)
    per = BY_NAME[name]().per_sample(X, y, rng())
    assert np.isnan(per[0]) and np.isfinite(per[1:]).all()
    assert BY_NAME[name]().score(X, y, rng()) >= 0.9
    with pytest.raises(MetricUndefined, match="fewer than 2"):  # no class can be held out
        BY_NAME[name]().score(X[:2], np.array([0, 1]), rng())


@pytest.mark.parametrize("name", ["silhouette", "davies-bouldin", "calinski-harabasz"])
def test_one_sample_per_class_undefined_for_cluster_indices(name):
    X = np.eye(3, dtype=np.float32)
    with pytest.raises(MetricUndefined):
        BY_NAME[name]().score(X, np.arange(3), rng())


def test_calinski_harabasz_collapsed_classes_undefined():
    X = np.repeat(np.eye(3, dtype=np.float32), 5, axis=0)
    y = np.repeat(np.arange(3), 5)
    with pytest.raises(MetricUndefined, match="within-class"):
        M.CalinskiHarabasz().score(X, y, rng())
    assert M.DaviesBouldin().score(X, y, rng()) == 0.0  # perfect, and defined


def test_davies_bouldin_coinciding_centroids_undefined():
    X = np.array([[1, 0], [0, 1]] * 4, dtype=np.float32)
    y = np.repeat([0, 1], 4)  # each class holds both points: same centroid
    with pytest.raises(MetricUndefined, match="centroids"):
        M.DaviesBouldin().score(X, y, rng())


def test_kmeans_too_few_distinct_rows_undefined():
    X = np.repeat(np.eye(2, 4, dtype=np.float32), 6, axis=0)
    y = np.arange(12) % 3  # 3 clusters, 2 distinct rows
    for cls in (M.KMeansNMI, M.KMeansARI):
        with pytest.raises(MetricUndefined, match="distinct"):
            cls().score(X, y, rng())


def test_tiny_inputs_never_nan():
    g = np.random.default_rng(4)
    for n in range(2, 8):
        X = g.normal(size=(n, 3)).astype(np.float32)
        y = np.arange(n) % 2
        for name in NAMES:
            try:
                value = BY_NAME[name]().score(X, y, rng())
            except MetricUndefined:
                continue
            assert math.isfinite(value), (name, n)


# --------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("make", [
    lambda: M.Silhouette(max_samples=1),
    lambda: M.Silhouette(max_samples=0),
    lambda: M.Silhouette(max_samples=2.5),
    lambda: M.KnnAccuracy(k=0),
    lambda: M.KnnAccuracy(k=-3),
    lambda: M.KnnAccuracy(k=True),
    lambda: M.KnnAccuracy(folds=1),
    lambda: M.ProbeAccuracy(folds=0),
    lambda: M.ProbeAccuracy(repeats=0),
    lambda: M.ProbeAccuracy(repeats="2"),
])
def test_bad_parameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_knn_k_capped_to_train_size():
    X, y = blobs(n_per_class=4)
    # every train row votes: a majority vote, which cross-validation tilts against the held-out
    # row's class (its class has one row fewer in training), so no bound on the value
    value = M.KnnAccuracy(k=1000).score(X, y, rng())
    assert 0.0 <= value <= 1.0
    assert value == M.KnnAccuracy(k=7).score(X, y, rng())
