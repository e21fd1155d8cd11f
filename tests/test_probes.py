"""probe-accuracy and knn-accuracy: repeated stratified k-fold over every eval row, per-row
shares in [0, 1] (the share of repetitions a row is classified right while held out) returned
as pseudo-values widened by the design effect ``INTERVAL_WIDENING``, and a small check that the
leaderboard's bootstrap of them covers the procedure's expected score (the full simulation is
bench/intervals.py --only probes)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from harness.api import MetricUndefined
from harness.plugins.classifier_metrics import (
    INTERVAL_WIDENING,
    KnnAccuracy,
    ProbeAccuracy,
    widened,
)
from harness.plugins.metric_checks import l2_normalise, repeated_folds
from harness.report.stats import Bootstrap
from harness.threads import one_blas_thread

METRICS = [ProbeAccuracy, KnnAccuracy]


@pytest.fixture(autouse=True)
def _one_blas_thread():  # type: ignore[no-untyped-def]
    with one_blas_thread():  # as the harness scores (BLAS threads only wait at this size)
        yield


def gaussian(n: int, classes: int = 3, scale: float = 0.5, dim: int = 16,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n rows of a fixed Gaussian mixture (uniform labels, unit noise): overlapping classes."""
    centres = np.random.default_rng(0).normal(size=(classes, dim)) * scale
    g = np.random.default_rng([1, seed])
    y = g.integers(classes, size=n)
    return (centres[y] + g.normal(size=(n, dim))).astype(np.float32), y


# ------------------------------------------------------------------------------------ folds


def test_folds_stratified_and_every_row_held_out_once_per_repeat():
    y = np.repeat([0, 1, 2], [40, 13, 2])  # 2 rows < 5 folds
    fold = repeated_folds(y, 5, 3, np.random.default_rng(0))
    assert fold.shape == (3, len(y)) and fold.min() >= 0 and fold.max() <= 4
    for assigned in fold:
        for c in (0, 1, 2):
            sizes = np.bincount(assigned[y == c], minlength=5)
            assert sizes.max() - sizes.min() <= 1  # dealt round the folds
            for f in range(5):  # a held-out row's class always trains
                assert np.any((assigned != f) & (y == c))
    assert not np.array_equal(fold[0], fold[1])  # fresh assignments each repetition


def test_folds_deterministic_in_rng():
    y = np.arange(50) % 3
    a = repeated_folds(y, 5, 2, np.random.default_rng(4))
    assert np.array_equal(a, repeated_folds(y, 5, 2, np.random.default_rng(4)))
    assert not np.array_equal(a, repeated_folds(y, 5, 2, np.random.default_rng(5)))


def test_only_row_of_a_class_never_held_out():
    y = np.array([0, 0, 0, 1, 1, 1, 2])
    fold = repeated_folds(y, 5, 2, np.random.default_rng(0))
    assert (fold[:, 6] == -1).all() and (fold[:, :6] >= 0).all()
    with pytest.raises(MetricUndefined, match="fewer than 2 members"):
        repeated_folds(np.arange(5), 5, 2, np.random.default_rng(0))
    with pytest.raises(MetricUndefined, match="fewer than 2 classes"):
        repeated_folds(np.zeros(5), 5, 2, np.random.default_rng(0))


# --------------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("cls", METRICS)
@pytest.mark.parametrize("repeats", [1, 3])
def test_every_row_gets_a_share_of_repeats(cls, repeats):
    X, y = gaussian(60)
    metric = cls(repeats=repeats)
    inputs = X.astype(np.float64) if cls is ProbeAccuracy else l2_normalise(X.astype(np.float64))
    shares = metric.held_out(inputs, y, repeated_folds(y, 5, repeats, np.random.default_rng(1)))
    assert shares.shape == (60,) and np.isfinite(shares).all()
    assert ((shares >= 0) & (shares <= 1)).all()
    assert np.allclose(shares * repeats, np.round(shares * repeats))  # k / repeats
    per = metric.per_sample(X, y, np.random.default_rng(1))
    assert np.allclose(per, widened(shares, INTERVAL_WIDENING))
    assert per.mean() == pytest.approx(shares.mean())  # widening leaves the score
    assert metric.score(X, y, np.random.default_rng(1)) == pytest.approx(shares.mean())
    again = metric.per_sample(X, y, np.random.default_rng(1))
    assert np.array_equal(per, again)  # deterministic given rng


def test_widened_pseudo_values_widen_every_resample_about_the_mean():
    shares = np.array([1.0, 0.5, 0.0, 1.0, np.nan, 1.0])
    pseudo = widened(shares, 1.5)
    assert np.isnan(pseudo[4])
    assert np.nanmean(pseudo) == pytest.approx(np.nanmean(shares))
    plain, wide = Bootstrap(0).estimate("t", shares), Bootstrap(0).estimate("t", pseudo)
    assert wide.value == pytest.approx(plain.value)
    assert np.allclose(wide.draws, plain.value + 1.5 * (plain.draws - plain.value))


@pytest.mark.parametrize("cls", METRICS)
def test_scores_depend_on_the_rng(cls):
    X, y = gaussian(60, scale=0.3)
    scores = {cls().score(X, y, np.random.default_rng(s)) for s in range(5)}
    assert len(scores) > 1


@pytest.mark.parametrize("cls", METRICS)
def test_small_classes(cls):
    X, y = gaussian(40, classes=2, scale=3.0)
    y = y.copy()
    y[:3] = [5, 6, 6]  # one class of one row, one of two rows (fewer than 5 folds)
    per = cls().per_sample(X, y, np.random.default_rng(0))
    assert np.isnan(per[0]) and np.isfinite(per[1:]).all()  # the only row of class 5
    assert 0 <= np.mean(per[1:]) <= 1
    with pytest.raises(MetricUndefined):
        cls().score(X[:4], np.arange(4), np.random.default_rng(0))  # every class one row


def test_knn_matches_scikit_learn_fold_by_fold():
    X, y = gaussian(70, classes=3, scale=0.4)
    Z = l2_normalise(X.astype(np.float64))
    fold = repeated_folds(y, 5, 2, np.random.default_rng(3))
    per = KnnAccuracy(k=5).held_out(Z, y, fold)
    right = np.zeros(fold.shape)
    for r, assigned in enumerate(fold):
        for f in range(5):
            test = assigned == f
            knn = KNeighborsClassifier(n_neighbors=5, metric="cosine").fit(Z[~test], y[~test])
            right[r, test] = knn.predict(Z[test]) == y[test]
    assert np.array_equal(per, right.mean(axis=0))


def test_knn_k_larger_than_train_part():
    X, y = gaussian(8, classes=2, scale=3.0)
    per = KnnAccuracy(k=100).per_sample(X, y, np.random.default_rng(0))
    assert np.isfinite(per).all()


@pytest.mark.parametrize("make", [lambda: ProbeAccuracy(folds=1),
                                  lambda: ProbeAccuracy(repeats=0),
                                  lambda: KnnAccuracy(folds=2.5),
                                  lambda: KnnAccuracy(repeats=True)])
def test_bad_fold_parameters(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("cls", METRICS)
def test_test_fraction_is_gone(cls):
    with pytest.raises(TypeError):
        cls(test_fraction=0.3)


# ------------------------------------------------------------------------------- coverage


def test_knn_bootstrap_interval_covers_expected_score():
    """Fixed seeds, so not flaky: 200 eval samples of 100 rows, each with its own rng as the
    harness gives each eval sample; the truth is the mean score over 300 other samples. The
    unwidened shares' bootstrap leaves out how the folds' training sets depend on each other's
    rows and under-covers (166 of 200 here); the metric's widened pseudo-values cover at
    about the nominal rate (193 of 200; bench/intervals.py --only probes: 400 samples
    per setting)."""
    metric = KnnAccuracy()

    def sample(seed: int) -> tuple[np.ndarray, np.ndarray]:
        X, y = gaussian(100, classes=2, scale=0.35, seed=seed)
        ours = metric.per_sample(X, y, np.random.default_rng([2, seed]))
        shares = metric.held_out(l2_normalise(X.astype(np.float64)), y, repeated_folds(
            y, 5, 2, np.random.default_rng([2, seed])))
        return ours, shares

    truth = float(np.mean([sample(10_000 + s)[0].mean() for s in range(300)]))
    covered = {"ours": 0, "raw": 0}
    for trial in range(200):
        for key, rows in zip(("ours", "raw"), sample(trial), strict=True):
            lo, hi = Bootstrap(trial).estimate("t", rows).interval() or (1.0, 0.0)
            covered[key] += lo <= truth <= hi
    assert 0.6 < truth < 0.9  # a non-trivial accuracy
    assert covered["ours"] >= 186 > covered["raw"]
