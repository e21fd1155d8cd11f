"""The joint nuisance audit (``harness.audit``): all of a task's counted nuisances together.

Each nuisance alone may stay at chance while several together still tell the classes apart
(the max's magnitude with the share of multiples of 3 singles out the few Fibonacci numbers of
a magnitude). Two cross-validated models see every counted nuisance at once: a linear one
(logistic regression on standardised features) and a small tree ensemble (gradient-boosted
depth-3 trees, which see interactions such as an XOR). Both read *coarse* features: each
nuisance's bin among ``bins`` equal-width bins between its 1st and 99th percentiles, the bins
the single-feature predictor uses, so that a flexible model cannot read the property off
exact values (an arithmetic progression's mean equals its midrange; a Fibonacci sequence's
min and max are Fibonacci numbers). The folds are the single-feature predictor's, and so is
the score: out-of-fold ROC AUC, macro one class against the rest for 3+ classes.

Both models run on one thread: on 2 busy cores of an Intel Xeon, OpenMP's threads made the
trees ten times slower. There, the ten built-in tasks' joint models at 10,000 draws took 5 s
(load average 6; about 3 s at a lighter load), on top of some 10 s for the rest of the audit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: the joint models, in the order they are reported
MODELS = ("logistic", "trees")
#: the tree ensemble: boosting rounds, depth, learning rate (small: a shortcut worth flagging
#: shows within a few rounds, and the audit runs on every `harness run`)
ROUNDS, DEPTH, RATE = 30, 3, 0.2


def coarse(feature: np.ndarray, bins: int) -> np.ndarray:
    """The bin index of each value: ``bins`` equal-width bins between the 1st and 99th
    percentiles (label-free, so computed on all rows), values outside in the end bins."""
    lo, hi = np.quantile(feature, [0.01, 0.99])
    edges = np.unique(np.linspace(lo, hi, bins + 1)[1:-1])
    return np.searchsorted(edges, feature, side="right").astype(np.float64)


def _model(name: str, seed: int) -> Any:
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=300)
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=ROUNDS, max_depth=DEPTH, learning_rate=RATE,
                                          early_stopping=False, random_state=seed)


def joint_aucs(columns: Sequence[np.ndarray], labels: np.ndarray, k: int, fold: np.ndarray,
               bins: int, seed: int = 0) -> dict[str, float]:
    """Model name -> cross-validated AUC of ``labels`` (0..k-1) from all ``columns`` together,
    coarsened; ``fold`` gives each row's fold. NaN where no column is counted or a class of
    ``labels`` is missing."""
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    present = np.unique(labels)
    if not columns or len(present) < 2:
        return {m: math.nan for m in MODELS}
    x = np.column_stack([coarse(c, bins) for c in columns])
    out: dict[str, float] = {}
    with threadpool_limits(limits=1):
        for name in MODELS:
            probs = np.zeros((len(labels), k))
            for f in np.unique(fold):
                test, train = fold == f, fold != f
                if len(np.unique(labels[train])) < 2:
                    probs[test] = 1.0 / k
                    continue
                mu, sd = x[train].mean(axis=0), x[train].std(axis=0)
                sd[sd == 0] = 1.0
                model = _model(name, seed).fit((x[train] - mu) / sd, labels[train])
                probs[np.ix_(test, model.classes_)] = model.predict_proba((x[test] - mu) / sd)
            classes = [1] if k == 2 else [c for c in range(k) if c in present]
            out[name] = float(np.mean([roc_auc_score(labels == c, probs[:, c])
                                       for c in classes if 0 < (labels == c).sum() < len(labels)]))
    return out


def best(aucs: dict[str, float]) -> tuple[str, float]:
    """The model with the larger joint AUC, and it (("", NaN) where none was measured)."""
    found = {m: v for m, v in aucs.items() if math.isfinite(v)}
    if not found:
        return "", math.nan
    name = max(found, key=lambda m: found[m])
    return name, found[name]
