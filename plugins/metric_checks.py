"""What the built-in metrics share: input checks, stratified splits and subsamples.

The built-in metrics score how well the geometry of embeddings ``X`` separates the class labels
``y``. Each is a thin wrapper around scikit-learn, imported where it is used (a run whose scores
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


def stratified_split(y: np.ndarray, test_fraction: float,
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


def mean_of(values: np.ndarray) -> float:
    return float(np.nanmean(values))


def correct(n: int, test: np.ndarray, right: np.ndarray) -> np.ndarray:
    out = np.full(n, np.nan)
    out[test] = right.astype(np.float64)
    return out


def check_int(owner: str, name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")


def check_fraction(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{owner}: {name} must be strictly between 0 and 1, got {value}")
