"""What the built-in metrics share: input checks, stratified folds, splits and subsamples.

The built-in metrics score how well the geometry of embeddings ``X`` separates the class labels
``y``. Each is a thin wrapper around scikit-learn (the probe's small fits excepted: they are
solved exactly by ``logistic``), imported where it is used (a run whose scores
are all stored never pays for importing it), with the checks below. A metric raises
``MetricUndefined`` (never returns NaN) wherever its value is undefined for the data at hand;
all randomness comes from the ``rng`` passed to ``score``, so a score is a deterministic
function of (parameters, X, y, rng seed).
"""

from __future__ import annotations

import numbers

import numpy as np

from harness.api import MetricUndefined

# Relative tolerance below which differences between rows count as rounding noise. Embeddings
# arrive as float32 (resolution ~1.2e-7), so a spread of a few ulps is no real spread.
RTOL = 1e-6

# ----------------------------------------------------------------------------- shared helpers


def prepare(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as float64 (n, d) and ``y`` as a 1-d array; shape mismatches are caller bugs."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, d) with n == len(y); got X {X.shape}, y {y.shape}")
    return X, y


def check_not_constant(X: np.ndarray, what: str = "embeddings") -> None:
    """Raise if every row of ``X`` is the same (up to float32 rounding): zero variance."""
    spread = float(np.ptp(X, axis=0).max()) if X.size else 0.0
    scale = float(np.abs(X).max()) if X.size else 0.0
    if spread <= RTOL * scale:
        raise MetricUndefined(f"constant {what}: all rows are identical (zero variance)")


def l2_normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows have no direction, so cosine is undefined."""
    norms = np.linalg.norm(X, axis=1)
    zero = int(np.count_nonzero(norms == 0.0))
    if zero:
        raise MetricUndefined(f"{zero} all-zero embedding row(s): cosine geometry is undefined")
    return X / norms[:, None]


def check_cluster_labels(y: np.ndarray) -> None:
    """Cluster-validity indices need 2 <= number of classes <= n - 1."""
    n_labels = len(np.unique(y))
    if n_labels < 2:
        raise MetricUndefined("fewer than 2 classes")
    if n_labels > len(y) - 1:
        raise MetricUndefined(f"{n_labels} classes among {len(y)} samples: need n > classes")


def sklearn_seed(rng: np.random.Generator) -> int:
    """An sklearn ``random_state`` drawn from ``rng``."""
    return int(rng.integers(2**31 - 1))


def allocate(counts: np.ndarray, m: int) -> np.ndarray:
    """Split ``m`` draws over classes in proportion to ``counts`` (largest remainder)."""
    exact = counts * (m / counts.sum())
    take = np.floor(exact).astype(int)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: m - int(take.sum())]] += 1
    return np.minimum(take, counts)


def stratified_subsample(y: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``m`` rows drawn without replacement, class proportions kept."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    take = allocate(counts, m)
    picked = [rng.choice(np.flatnonzero(inverse == c), size=t, replace=False)
              for c, t in enumerate(take) if t]
    return np.sort(np.concatenate(picked))


def repeated_folds(y: np.ndarray, folds: int, repeats: int,
                   rng: np.random.Generator) -> np.ndarray:
    """(repeats, n) fold of each row in each repetition of stratified ``folds``-fold cross-
    validation; -1 for a row never held out (the only row of its class).

    Each class's rows are shuffled and dealt round the folds from a random starting fold, so a
    class with c rows puts floor(c / folds) or one more in each fold, and a class with fewer
    rows than folds puts one row in each of c folds: every held-out row keeps at least one row
    of its class in training (for c >= 2), and no fold count falls back for a small class. The
    only row of a class cannot be held out with its class trained: it is never held out (its
    value is NaN) but trains every fold, as a real example of a class of the task. Raises
    ``MetricUndefined`` where no class has two rows (nothing can be held out)."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    if len(counts) < 2:
        raise MetricUndefined("fewer than 2 classes")
    if counts.max() < 2:
        raise MetricUndefined(f"every class has fewer than 2 members ({len(counts)} classes, "
                              f"{len(y)} rows): no row can be held out")
    members = [np.flatnonzero(inverse == c) for c in range(len(counts))]
    out = np.full((repeats, len(y)), -1, dtype=np.int64)
    for r in range(repeats):
        for rows in members:
            if len(rows) < 2:
                continue
            start = int(rng.integers(folds))
            out[r, rng.permutation(rows)] = (start + np.arange(len(rows))) % folds
    return out


def held_out_share(right: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Per row, the share of repetitions (rows of ``right``, (repeats, n) booleans) in which it
    was classified right while held out; NaN for rows never held out (``fold`` -1)."""
    out = right.astype(np.float64).mean(axis=0)
    out[(fold < 0).all(axis=0)] = np.nan
    return out


def mean_of(values: np.ndarray) -> float:
    return float(np.nanmean(values))


def check_int(owner: str, name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")

