"""Built-in cross-validated classifier metrics: ``probe-accuracy`` (L2-regularised logistic
regression on standardised embeddings, scikit-learn's objective, solved exactly by
``harness.plugins.logistic`` where the folds are small) and ``knn-accuracy`` (cosine
k-nearest neighbours).

Both use repeated stratified k-fold cross-validation over every eval row: in each of
``repeats`` repetitions (fold assignments drawn from the metric's ``rng``, which the harness
seeds per eval sample, so every variant gets the same folds: paired comparisons) each row is
predicted by a classifier trained on the other folds. A row's share is the share of repetitions
in which it was classified right (in [0, 1]; ``held_out``); the score is their mean. The only
row of a class is never held out (NaN) but trains every fold; see
``metric_checks.repeated_folds``.

What an interval covers: the expected score of this procedure (the classifier trained on the
other folds of this many rows, drawn from the task's distribution), not the accuracy of one
fitted classifier. The shares are not independent: every fold's classifier is trained on the
other rows, so one unlucky row moves the predictions of the rows it trains with, and the
variance of their mean exceeds the shares' variance / n (the dependence that makes a
cross-validation estimate's variance have no unbiased estimator, Bengio & Grandvalet, JMLR
2004). Bootstrapped as they are, the shares' 95% intervals covered that expected score 83-92%
of the time at 100 rows (``bench/intervals.py --only probes``: Gaussian classes, the truth from
400 independent samples), and more repetitions make it worse (they shrink the shares' spread,
not the dependence). So ``per_sample`` returns pseudo-values with a fixed design effect: each
share moved away from their mean by ``INTERVAL_WIDENING`` (``widened``). Their mean is the
score unchanged, and the leaderboard's paired bootstrap of them gives draws ``score +
INTERVAL_WIDENING × (share mean on the resample − score)``: the shares' interval widened about
the value, with pairing across variants and the two-level seed bootstrap intact. The factor is
the ratio of the scores' true spread to the shares' bootstrap spread found by simulation, taken
at its upper end; see ``INTERVAL_WIDENING`` for the coverage it gives. Recomputing the
cross-validation on each of the 1,000 resamples (``Metric.resampled``) would be the direct way,
but costs 1,000 times a cell's probe, and a resample's duplicated rows would land on both sides
of a fold.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from harness.api import Metric
from harness.hookspecs import Register, hookimpl
from harness.plugins import logistic
from harness.plugins.metric_checks import (
    check_int,
    check_not_constant,
    held_out_share,
    l2_normalise,
    mean_of,
    prepare,
    repeated_folds,
)

FOLDS_HELP = ("folds of stratified cross-validation; every row is predicted while held out (a "
              "class with fewer rows than folds puts one row in each of as many folds)")
REPEATS_HELP = ("repetitions with fresh fold assignments; a row's share is the share of them "
                "in which it is classified right")

#: The design effect on the per-row shares' bootstrap interval (see the module docstring),
#: calibrated at 100 rows (the quick profile). Simulated (Gaussian classes, 5 folds × 2
#: repeats, 400 eval samples and 400 truth samples per setting; 2, 3 and 10 classes, accuracy
#: 0.5-0.97, 32 and 256 dimensions), the score's true standard deviation over samples was
#: 1.15-1.38 times the shares' bootstrap one at 100 rows. Coverage of the expected score by the
#: 95% interval at 100 rows, unwidened -> widened 1.5x: probe 83.5-89.5% -> 93.5-97.8%, kNN
#: 86.8-91.5% -> 92.0-98.5% (the lowest at accuracy 0.95-0.97, where a bootstrap over a few
#: wrong rows is short on its own). At 1,000 rows kNN's ratio stays 1.33-1.35 (83.8-86.8% ->
#: 97.5%), but the probe's falls to 1.05-1.12 (91.5-94.2% -> 98.8-99.2%): conservative there.
#: Near-perfect accuracy is out of reach of any per-row bootstrap: with no row wrong the
#: interval is a point (probe at 0.99: 70% covered, widened or not).
INTERVAL_WIDENING = 1.5


def widened(shares: np.ndarray, factor: float) -> np.ndarray:
    """Pseudo-values: each finite share moved away from their mean by ``factor`` (NaN kept).
    Their mean is the shares' mean; the mean of any resample of them is the shares' mean on
    that resample, widened by ``factor`` about the full mean."""
    centre = mean_of(shares)
    return centre + factor * (shares - centre)


@dataclass(frozen=True)
class ProbeAccuracy(Metric):
    """Cross-validated accuracy of a logistic-regression probe on standardised embeddings."""

    name: ClassVar[str] = "probe-accuracy"
    # 3: repeated stratified k-fold over every row (was one 70/30 split: 30 test rows at n=100)
    # 4: the same objective (scikit-learn's LogisticRegression(C=1)) solved exactly by Newton's
    # method (harness.plugins.logistic: in the rows' span, where they are fewer than the
    # dimensions) instead of by lbfgs to tol 1e-4: a value can differ only where a held-out row
    # lies at the decision boundary (within lbfgs's error of it)
    version: ClassVar[str] = "4"
    higher_is_better: ClassVar[bool] = True

    folds: int = field(default=5, metadata={"help": FOLDS_HELP})
    repeats: int = field(default=2, metadata={"help": REPEATS_HELP})

    def __post_init__(self) -> None:
        check_int(self.name, "folds", self.folds, 2)
        check_int(self.name, "repeats", self.repeats, 1)

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        return mean_of(self.per_sample(X, y, rng))

    def per_sample(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each row's share of repetitions classified right while held out, ``widened`` into
        pseudo-values; NaN for the only row of a class."""
        X, y = prepare(X, y)
        check_not_constant(X)
        fold = repeated_folds(y, int(self.folds), int(self.repeats), rng)
        return widened(self.held_out(X, y, fold), INTERVAL_WIDENING)

    def held_out(self, X: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
        """Per-row shares (unwidened) for given fold assignments ``fold`` ((repeats, n); -1:
        never held out), on checked inputs."""
        right = np.zeros(fold.shape, dtype=bool)
        for r, assigned in enumerate(fold):
            for f in np.unique(assigned[assigned >= 0]):
                test, train = assigned == f, assigned != f
                scaled, centre, scale = standardised(X[train])
                found = fitted(scaled, y[train])
                right[r, test] = found((X[test] - centre) / scale) == y[test]
        return held_out_share(right, fold)


#: the most unknowns per Newton step ((classes - 1) x (min(rows, dimensions) + 1)) for which
#: the probe solves exactly (``logistic.fit``); above it lbfgs's cheap steps are faster (at 600
#: rows, claim 1's sample on ``quick``, Newton's LU solves took 5-24x lbfgs's time)
NEWTON_UNKNOWNS = 250


def fitted(X: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The prediction function of the probe fitted on standardised rows ``X``: the exact
    minimiser (``logistic``) of scikit-learn's objective where a Newton step is small (the
    ``quick`` profile's 80-row folds: 2.5x faster per cell than lbfgs), scikit-learn's
    ``LogisticRegression`` (lbfgs, tolerance 1e-4) otherwise."""
    classes = len(np.unique(y))
    if (classes - 1) * (min(X.shape) + 1) <= NEWTON_UNKNOWNS:
        model = logistic.fit(X, y)
        return lambda rows: logistic.predict(model, rows)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe = LogisticRegression(max_iter=1000).fit(X, y)
    return probe.predict  # type: ignore[no-any-return]


def standardised(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` standardised, with the columns' mean and scale: scikit-learn's ``StandardScaler``
    (its corrected two-pass variance; the population standard deviation, taken as 1 for a
    column whose variance is within that algorithm's rounding, ``_is_constant_feature``)."""
    n, eps = X.shape[0], np.finfo(np.float64).eps
    mean = X.sum(axis=0) / n
    centred = X - mean
    var = (np.square(centred).sum(axis=0) - centred.sum(axis=0) ** 2 / n) / n
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.where(constant, 1.0, np.sqrt(var))
    return centred / scale, mean, scale


@dataclass(frozen=True)
class KnnAccuracy(Metric):
    """Cross-validated accuracy of a k-nearest-neighbour classifier under cosine distance."""

    name: ClassVar[str] = "knn-accuracy"
    # 3: repeated stratified k-fold over every row (was one 70/30 split: 30 test rows at n=100)
    version: ClassVar[str] = "3"
    higher_is_better: ClassVar[bool] = True

    k: int = field(default=5, metadata={
        "help": "neighbours that vote (capped to the size of the train part; a tied vote goes "
                "to the smallest label)"})
    folds: int = field(default=5, metadata={"help": FOLDS_HELP})
    repeats: int = field(default=2, metadata={"help": REPEATS_HELP})

    def __post_init__(self) -> None:
        check_int(self.name, "k", self.k, 1)
        check_int(self.name, "folds", self.folds, 2)
        check_int(self.name, "repeats", self.repeats, 1)

    def score(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
        return mean_of(self.per_sample(X, y, rng))

    def per_sample(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each row's share of repetitions classified right while held out, ``widened`` into
        pseudo-values; NaN for the only row of a class."""
        X, y = prepare(X, y)
        Z = l2_normalise(X)
        check_not_constant(Z, "embedding directions")
        fold = repeated_folds(y, int(self.folds), int(self.repeats), rng)
        return widened(self.held_out(Z, y, fold), INTERVAL_WIDENING)

    def held_out(self, Z: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
        """Per-row shares (unwidened) for given fold assignments ``fold`` ((repeats, n); -1:
        never held out), on checked unit-length rows ``Z``."""
        classes, label = np.unique(y, return_inverse=True)
        n = len(y)
        similarity = Z @ Z.T  # cosine distance is 1 - similarity: same order
        right = np.zeros(fold.shape, dtype=bool)
        for r, assigned in enumerate(fold):
            # a row sees only the rows of other folds (never itself); a row never held out (-1)
            # trains every fold
            usable = assigned[:, None] != assigned[None, :]
            held = assigned >= 0
            sims = np.where(usable[held], similarity[held], -np.inf)
            k = min(int(self.k), n - 1)
            nearest = nearest_k(sims, k)
            valid = np.isfinite(np.take_along_axis(sims, nearest, axis=1))
            votes = np.zeros((len(nearest), len(classes)))
            np.add.at(votes, (np.arange(len(nearest))[:, None].repeat(k, axis=1), label[nearest]),
                      valid.astype(np.float64))
            right[r, held] = votes.argmax(axis=1) == label[held]
        return held_out_share(right, fold)


def nearest_k(sims: np.ndarray, k: int) -> np.ndarray:
    """Per row of ``sims``, the columns of its ``k`` largest values, largest first (a tie: the
    lower column first, as far as the partition keeps both)."""
    if k < sims.shape[1]:
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
    top = np.sort(top, axis=1)
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


@hookimpl
def register_metrics(register: Register) -> None:
    register(ProbeAccuracy)
    register(KnnAccuracy)
