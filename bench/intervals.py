"""Do the leaderboard's 95% intervals cover? A simulation on a built-in task.

Each trial draws an independent eval sample (``harness.samples.draw``, n sequences), embeds it
with a fixed cheap encoder (a random projection of simple numeric features of each sequence,
through tanh) and computes a figure and its 95% interval from that one sample, the way the
harness does. The "true" value is the figure's mean over every trial; coverage is the share of
trials whose interval holds it (about 95% is right; below, the interval is too narrow). Widths
are given as a ratio to 2 × 1.96 × the figure's standard deviation over trials (1.0 is right).

- silhouette: per-row s(i) bootstrapped (silhouette version 2), the linearised per-row values
  of version 3 (``silhouette_rows``), and for reference silhouette recomputed on each bootstrap
  resample (copies of a row not counted as its neighbours);
- k-means ARI/NMI: the mean of 10 fits with its ``resampled`` draws; the spread of one fit;
- CKA between two fixed encoders: ``harness.analysis.cka_interval`` (half-samples);
- training seeds: S "seeds" are S encoders whose projection is the fixed one plus independent
  noise, all scored on the trial's one eval sample; the row figure is their mean, its interval
  the one-level bootstrap (``mean_of``, before issue #16) or the two-level one
  (``Bootstrap.over_seeds``). The truth is the mean over trials and seeds.

- probe-accuracy / knn-accuracy (``--only probes``): eval samples of n rows from a known
  population (Gaussian classes with fixed centres, ``POPULATIONS``: accuracy from chance to about
  0.95, 32 or 256 dimensions), bootstrapped as the leaderboard does (``Bootstrap.estimate``):
  the metric's own per-row values (2 × 5-fold cross-validated shares widened by
  ``INTERVAL_WIDENING``), the same shares unwidened (before), and for reference version 2's one
  70/30 split (per-row 1/0 on the 30% test rows, NaN elsewhere). The truth is the procedure's
  expected score at n rows: its mean over ``--truth`` further independent samples (each with its
  own rng, as each eval sample has).

Prints one line per figure; no timing. ~3-5 min on a 2-core CPU with the defaults (the probe
section: 2-3 min more at 100 rows).

    python bench/intervals.py [--trials 200] [--n 100] [--only silhouette|seeds|probes]
"""

from __future__ import annotations

import argparse
import random
import sys

import numpy as np
from common import report
from sklearn.metrics import silhouette_samples

from harness.analysis import cka_interval
from harness.plugins.classifier_metrics import (
    INTERVAL_WIDENING,
    KnnAccuracy,
    ProbeAccuracy,
    widened,
)
from harness.plugins.cluster_metrics import silhouette_rows
from harness.plugins.kmeans_metrics import KMeansARI, KMeansNMI
from harness.plugins.metric_checks import repeated_folds
from harness.registry import load_registry
from harness.report.stats import Bootstrap, mean_of
from harness.samples import draw
from harness.threads import one_blas_thread

#: (task, keep the odd-share feature): well separated, weakly separated, no signal
SETTINGS = [("parity", True), ("parity", False), ("primality", True)]
WIDTH = 32


def features(seqs: list[tuple[int, ...]], odd_share: bool = True) -> np.ndarray:
    """Twelve fixed numeric features of each sequence (no statistic of the sample)."""
    rows = []
    for s in seqs:
        x = np.array(s, dtype=np.float64)
        d = np.diff(x) if len(x) > 1 else np.zeros(1)
        rows.append([len(x) / 6, np.log1p(x.mean()) / 7, np.log1p(x.max()) / 7,
                     np.log1p(x.min()) / 7, (x % 2).mean() if odd_share else 0.0,
                     (x % 3 == 0).mean(), (x % 5 == 0).mean(),
                     np.mean([len(str(int(v))) for v in x]) / 3, int(str(int(x[0]))[0]) / 9,
                     np.sign(d).mean(), np.log1p(np.abs(d).mean()) / 7, (x[-1] % 10) / 9])
    return np.array(rows)


def projection(seed: int, noise: float = 0.0, of: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Encoder ``seed``'s weights; with ``noise``, a 'training run' ``of`` them (its own seed)."""
    r = np.random.default_rng(seed)
    W, c = r.normal(size=(12, WIDTH)), r.normal(size=WIDTH)
    if noise:
        r = np.random.default_rng([seed, of])
        W, c = W + noise * r.normal(size=W.shape), c + noise * r.normal(size=c.shape)
    return W, c


def embed(F: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.tanh(F @ weights[0] + weights[1])


def unit(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def recomputed_silhouette(Z: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Silhouette on each resample (rows of ``counts``), copies of a row not its neighbours."""
    D = np.clip(1.0 - Z @ Z.T, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    own_sum, own_n = np.zeros(counts.shape), np.zeros(counts.shape)
    nearest = np.full(counts.shape, np.inf)
    for c in np.unique(y):
        m = y == c
        sums, size = counts[:, m] @ D[m], counts[:, m].sum(axis=1, keepdims=True)
        own_sum = np.where(m, sums, own_sum)
        own_n = np.where(m, size - counts, own_n)
        with np.errstate(invalid="ignore", divide="ignore"):
            nearest = np.where(m, nearest, np.minimum(nearest, np.where(size > 0, sums / size,
                                                                        np.inf)))
    with np.errstate(invalid="ignore", divide="ignore"):
        a = own_sum / own_n
        s = (nearest - a) / np.maximum(a, nearest)
    s = np.where((own_n > 0) & np.isfinite(s), s, 0.0)
    return (counts * s).sum(axis=1) / counts.sum(axis=1)


def quantiles(draws: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(draws[np.isfinite(draws)], [0.025, 0.975])
    return float(lo), float(hi)


def line(name: str, values: list[float], intervals: list[tuple[float, float]]) -> None:
    truth, sd = float(np.mean(values)), float(np.std(values))
    ci = np.array(intervals)
    cover = float(np.mean((ci[:, 0] <= truth) & (truth <= ci[:, 1])))
    width = float(np.mean(ci[:, 1] - ci[:, 0])) / (3.92 * sd) if sd > 0 else float("nan")
    report(name, f"coverage {cover:.1%}, width {width:.2f}x (true value {truth:.4f}, "
                 f"sd {sd:.4f})", "target: about 95%, width about 1.00x")


def one_sample(task, n: int, trial: int, odd_share: bool = True):  # type: ignore[no-untyped-def]
    seqs = draw(task, n, random.Random(10_000 + trial))
    return features(seqs, odd_share), np.array([task.label(s) for s in seqs])


def metrics(task, n: int, trials: int, odd_share: bool) -> None:  # type: ignore[no-untyped-def]
    where = f"{task.name}{'' if odd_share else ' (weak encoder)'}, n={n}"
    values: list[float] = []
    cis: dict[str, list[tuple[float, float]]] = {"rows": [], "linear": [], "recomputed": []}
    km: dict[str, tuple[list[float], list[tuple[float, float]], list[float]]] = {
        "kmeans-ari": ([], [], []), "kmeans-nmi": ([], [], [])}
    cka: tuple[list[float], list[tuple[float, float]]] = ([], [])
    weights, other = projection(0), projection(1)
    for trial in range(trials):
        F, y = one_sample(task, n, trial, odd_share)
        X = embed(F, weights)
        Z = unit(X)
        boot = Bootstrap(trial)
        idx, counts = boot.indices(task.name, n), boot.counts(task.name, n)
        own = silhouette_samples(Z, y, metric="cosine")
        values.append(float(own.mean()))
        cis["rows"].append(quantiles(own[idx].mean(axis=1)))
        cis["linear"].append(quantiles(silhouette_rows(Z, y)[idx].mean(axis=1)))
        cis["recomputed"].append(quantiles(recomputed_silhouette(Z, y, counts)))
        for metric in (KMeansARI(), KMeansNMI()):
            vals, ci, single = km[metric.name]
            rng = np.random.default_rng(trial)
            vals.append(metric.score(X, y, rng))
            ci.append(quantiles(metric.resampled(X, y, np.random.default_rng(trial), counts)))
            single.append(float(np.std([type(metric)(fits=1).score(X, y, np.random.default_rng(
                [trial, s])) for s in range(10)])))
        value, lo, hi = cka_interval(X, embed(F, other), np.random.default_rng(trial))
        cka[0].append(value)
        cka[1].append((lo, hi))
    line(f"silhouette {where}, per-row s(i) bootstrap (version 2)", values, cis["rows"])
    line(f"silhouette {where}, linearised per-row bootstrap (version 3)", values, cis["linear"])
    line(f"silhouette {where}, recomputed on each resample (reference)", values,
         cis["recomputed"])
    for name, (vals, ci, single) in km.items():
        line(f"{name} {where}, mean of 10 fits, resampled draws", vals, ci)
        flat = np.mean([hi - lo < 1e-12 for lo, hi in ci])
        report(f"{name} {where}, one fit over 10 seeds", f"sd {np.mean(single):.4f} within a "
               f"sample; the 10-fit mean's sd over samples {np.std(vals):.4f}; zero-width "
               f"interval (every fit right on every resample) in {flat:.0%} of samples")
    line(f"cka {where}, half-sample interval (harness.analysis)", *cka)


def seeds(task, n: int, trials: int, noise: float) -> None:  # type: ignore[no-untyped-def]
    """Two-level vs one-level intervals of a figure over S training seeds."""
    F, y = one_sample(task, n, 0)
    spread = np.std([silhouette_rows(unit(embed(F, projection(0, noise, s))), y).mean()
                     for s in range(30)])
    report(f"silhouette {task.name}, n={n}, training-seed noise {noise}", f"sd over 30 seeds on "
           f"one sample {spread:.4f}")
    for count in (1, 2, 3, 5, 10):
        values: list[float] = []
        one: list[tuple[float, float]] = []
        two: list[tuple[float, float]] = []
        for trial in range(trials):
            F, y = one_sample(task, n, trial)
            boot = Bootstrap(trial)
            per_seed = [silhouette_rows(unit(embed(F, projection(0, noise, trial * 10 + s))), y)
                        for s in range(count)]
            estimates = [boot.estimate(task.name, v) for v in per_seed]
            value = float(np.mean([e.value for e in estimates]))
            values.append(value)
            one.append(mean_of(estimates).interval() or (np.nan, np.nan))
            two.append(boot.over_seeds(value, [e.draws for e in estimates if e.draws is not None],
                                       tuple(range(count)), [e.value for e in estimates
                                                             if e.draws is not None]
                                       ).interval() or (np.nan, np.nan))
        where = f"silhouette {task.name}, n={n}, {count} training seed(s)"
        line(f"{where}, one-level bootstrap (before)", values, one)
        line(f"{where}, two-level bootstrap", values, two)


#: (name, classes, scale of the class centres, dimensions): from no signal to accuracy ~0.95
POPULATIONS = [("three overlapping classes", 3, 0.45, 32), ("two classes, weak signal", 2, 0.2, 32),
               ("two classes, no signal", 2, 0.0, 32), ("two classes, strong signal", 2, 0.5, 32),
               ("two classes, 256 dimensions", 2, 0.15, 256)]


def population_sample(classes: int, scale: float, dim: int, n: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """n rows of a fixed Gaussian mixture: labels uniform over the classes, unit noise."""
    centres = np.random.default_rng(0).normal(size=(classes, dim)) * scale
    g = np.random.default_rng([1, seed])
    y = g.integers(classes, size=n)
    return centres[y] + g.normal(size=(n, dim)), y


def one_split(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Version 2's folds, for reference: one stratified 70/30 split (fold 0 the 30% held out,
    -1 the rest, which only trains)."""
    fold = np.full(len(y), -1)
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        fold[rows[:min(max(int(np.floor(len(rows) * 0.3 + 0.5)), 1), len(rows) - 1)]] = 0
    return fold[None, :]


def probe_rows(metric: ProbeAccuracy | KnnAccuracy, X: np.ndarray, y: np.ndarray, seed: int
               ) -> dict[str, np.ndarray]:
    """One eval sample's per-row values three ways: the metric's own (``per_sample``: the
    cross-validated shares widened), the same shares unwidened, and version 2's 70/30 split."""
    inputs = X if metric.name == "probe-accuracy" else unit(X)
    shares = metric.held_out(inputs, y, repeated_folds(y, metric.folds, metric.repeats,
                                                       np.random.default_rng([2, seed])))
    ours = metric.per_sample(X, y, np.random.default_rng([2, seed]))
    assert np.allclose(ours, widened(shares, INTERVAL_WIDENING), equal_nan=True)
    return {f"{metric.repeats} x {metric.folds}-fold, widened {INTERVAL_WIDENING}x (ours)": ours,
            f"{metric.repeats} x {metric.folds}-fold, unwidened (before)": shares,
            "one 70/30 split (version 2)": metric.held_out(inputs, y, one_split(
                y, np.random.default_rng([3, seed])))}


def probes(n: int, trials: int, truth_samples: int) -> None:
    for where, classes, scale, dim in POPULATIONS:
        for metric in (ProbeAccuracy(), KnnAccuracy()):
            truths: dict[str, list[float]] = {}
            for t in range(truth_samples):
                seed = 100_000 + t
                for label, rows in probe_rows(metric, *population_sample(
                        classes, scale, dim, n, seed), seed).items():
                    truths.setdefault(label, []).append(float(np.nanmean(rows)))
            found: dict[str, tuple[list[float], list[tuple[float, float]]]] = {}
            for trial in range(trials):
                rows_by = probe_rows(metric, *population_sample(classes, scale, dim, n, trial),
                                     trial)
                for label, rows in rows_by.items():
                    est = Bootstrap(trial).estimate("probe", rows)
                    values, intervals = found.setdefault(label, ([], []))
                    values.append(est.value)
                    intervals.append(est.interval() or (np.nan, np.nan))
            for label, (values, intervals) in found.items():
                truth_line(f"{metric.name} {where}, n={n}, {label}", values, intervals,
                           float(np.mean(truths[label])))


def truth_line(name: str, values: list[float], intervals: list[tuple[float, float]],
               truth: float) -> None:
    sd = float(np.std(values))
    ci = np.array(intervals)
    cover = float(np.mean((ci[:, 0] <= truth) & (truth <= ci[:, 1])))
    low, high = float(np.mean(truth < ci[:, 0])), float(np.mean(ci[:, 1] < truth))
    width = float(np.mean(ci[:, 1] - ci[:, 0])) / (3.92 * sd) if sd > 0 else float("nan")
    report(name, f"coverage {cover:.1%} (truth below {low:.1%}, above {high:.1%}), width "
                 f"{width:.2f}x (true value {truth:.4f}, mean {np.mean(values):.4f}, sd "
                 f"{sd:.4f})", "target: about 95%, width about 1.00x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--n", type=int, default=100, help="eval sample size (quick: 100)")
    parser.add_argument("--noise", type=float, default=0.15,
                        help="training-seed noise on the projection (seed section)")
    parser.add_argument("--truth", type=int, default=400,
                        help="independent samples that estimate the probes' expected score")
    parser.add_argument("--only", choices=["silhouette", "seeds", "probes"],
                        help="one section (default: all)")
    args = parser.parse_args()
    tasks = load_registry([]).components["tasks"]
    if args.only in (None, "silhouette"):
        for name, odd_share in SETTINGS:
            metrics(tasks[name](), args.n, args.trials, odd_share)
    if args.only in (None, "seeds"):
        seeds(tasks["parity"](), args.n, args.trials, args.noise)
    if args.only in (None, "probes"):
        with one_blas_thread():  # as the harness scores: BLAS threads only wait at this size
            probes(args.n, args.trials, args.truth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
