"""Metric time at 2,000 and 10,000 embeddings, the error silhouette's subsampling adds, a
cell's scoring right after a torch pass with numpy's BLAS on every core or on one thread
(``harness.threads``: what the runner does), and one k-means fit of the harness's own
(``harness.plugins.kmeans``) against scikit-learn's, with their mean agreement with the classes.

Embeddings are synthetic: two classes of 576-dimensional points (SmolLM2's width) whose means
differ by 1.5 noise standard deviations in 64 of the directions (silhouette ~0.1, as on
real embeddings). The runner calls ``per_sample`` where a metric has it, ``score``
otherwise; so does this.

    python bench/metrics.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np
from common import report, side_by_side

from harness.cli import load_registry
from harness.plugins.cluster_metrics import Silhouette
from harness.scoring import Metrics
from harness.threads import one_blas_thread

DIM = 576


def embeddings(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, DIM)).astype(np.float32)
    X[:, :64] += y[:, None] * 1.5
    return X, y


def blas_threads(metrics: list, repeat: int) -> None:
    """Ten cells of n rows (the quick profile's 100, the paper's 1,000), each scored with every
    default metric and its bootstrap draws just after a torch matmul (as after an embedding
    pass, whose OpenMP threads still spin): BLAS on every core against one thread."""
    import torch

    a = torch.randn(1024, 1024)
    for n in (100, 1000):
        cells = [embeddings(n, seed) for seed in range(10)]

        def score(cells=cells):  # type: ignore[no-untyped-def]
            scorer, out = Metrics(metrics), []
            for i, (X, y) in enumerate(cells):
                a @ a
                rows, samples = scorer.score(X, y, f"bench-{i}", set(), task="t", seed=0)
                out.append(([r[2] for r in rows], [samples[k] for k in sorted(samples)]))
            return out

        def one() -> list:
            with one_blas_thread():
                return score()

        times, outs = side_by_side({"every": score, "one": one}, repeat)
        diff = largest_difference(outs["every"], outs["one"])
        report(f"cell scoring after a torch pass, n={n}, BLAS on every core / one thread",
               f"{times['every'] / 10:.3f} / {times['one'] / 10:.3f} s per cell = "
               f"{times['every'] / times['one']:.2f}x; largest difference in a score or draw "
               f"{diff:.1e}")


def kmeans_fits(repeat: int) -> None:
    """One k-means++ start and Lloyd's iterations on L2-normalised rows (what the k-means
    metrics fit ten times a cell): the harness's numpy k-means against scikit-learn's
    ``KMeans(n_init=1)``, ms per fit, and the mean NMI with the classes over 20 starts each
    (two draws of one distribution: they differ by their standard errors)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    from harness.plugins.kmeans import kmeans
    from harness.threads import one_blas_thread

    for n in (100, 1000):
        X, y = embeddings(n)
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        fits = {"ours": lambda X=X: [kmeans(X, 2, np.random.default_rng(s)) for s in range(20)],
                "sklearn": lambda X=X: [KMeans(n_clusters=2, n_init=1, random_state=s)
                                        .fit_predict(X) for s in range(20)]}
        with one_blas_thread():
            times, outs = side_by_side(fits, repeat)
        nmis = {k: [normalized_mutual_info_score(y, lab) for lab in v] for k, v in outs.items()}
        agree = {k: f"{statistics.mean(v):.3f} ± {statistics.stdev(v) / len(v) ** 0.5:.3f}"
                 for k, v in nmis.items()}
        report(f"k-means fit n={n} k=2, ours / scikit-learn",
               f"{times['ours'] / 20 * 1e3:.2f} / {times['sklearn'] / 20 * 1e3:.2f} ms = "
               f"{times['sklearn'] / times['ours']:.1f}x faster; mean NMI over 20 starts "
               f"(± its standard error) {agree['ours']} / {agree['sklearn']}")


def largest_difference(a: list, b: list) -> float:
    """The largest |difference| between two runs' scores and draws (NaN in both: equal; NaN
    in one: infinite)."""
    worst = 0.0
    for (rows_a, draws_a), (rows_b, draws_b) in zip(a, b, strict=True):
        pairs = [(np.asarray(rows_a, float), np.asarray(rows_b, float)),
                 *zip(draws_a, draws_b, strict=True)]
        for p, q in pairs:
            p, q = np.asarray(p, float), np.asarray(q, float)
            if not np.array_equal(np.isnan(p), np.isnan(q)):
                return float("inf")
            d = np.abs(p - q)[~np.isnan(p)]
            worst = max(worst, float(d.max()) if d.size else 0.0)
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    reg = load_registry([])
    metrics = [cls() for _, cls in sorted(reg.components["metrics"].items()) if cls.in_all]
    for n in (2000, 10000):
        X, y = embeddings(n)

        def call(metric, X=X, y=y):  # type: ignore[no-untyped-def]
            rng = np.random.default_rng(0)
            out = metric.per_sample(X, y, rng)
            return metric.score(X, y, rng) if out is None else out

        times, _ = side_by_side({m.name: (lambda m=m: call(m)) for m in metrics}, args.repeat)
        for metric in metrics:
            report(f"metric time {metric.name}, n={n}", f"{times[metric.name]:.3f} s")
        report(f"metric time all {len(metrics)} default metrics, n={n}",
               f"{sum(times.values()):.2f} s")

    blas_threads(metrics, args.repeat)
    kmeans_fits(args.repeat)

    # silhouette is quadratic in n: above max_samples rows it scores a stratified subsample
    X, y = embeddings(10000)
    default = Silhouette()
    exact = Silhouette(max_samples=len(y))
    seconds, _ = side_by_side({"exact": lambda: exact.score(X, y, np.random.default_rng(0)),
                               "sampled": lambda: default.score(X, y, np.random.default_rng(0))},
                              args.repeat)
    truth = exact.score(X, y, np.random.default_rng(0))
    errors = [abs(default.score(X, y, np.random.default_rng(s)) - truth) for s in range(10)]
    report("silhouette n=10000, exact", f"{truth:.5f} in {seconds['exact']:.2f} s")
    report(f"silhouette n=10000, sampled to max_samples={default.max_samples}",
           f"{seconds['sampled']:.2f} s, |error| mean {statistics.mean(errors):.5f}, max "
           f"{max(errors):.5f} over 10 seeds",
           f"{seconds['exact'] / seconds['sampled']:.0f}x faster than exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
