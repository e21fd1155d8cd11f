"""Metric time at 2,000 and 10,000 embeddings, and the error silhouette's subsampling adds.

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

DIM = 576


def embeddings(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, DIM)).astype(np.float32)
    X[:, :64] += y[:, None] * 1.5
    return X, y


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
