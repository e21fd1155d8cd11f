"""Variant-level analyses on the run's shared evaluation pool, from the stored embeddings.

For every variant whose embeddings of every eval task's sample are stored (the pool: those
samples concatenated in task order, the same sequences for every variant):

- ``cka``: linear CKA between the variant's embeddings and its encoder's base embeddings, with a
  95% interval from half-samples of the pool's sequences (structure recovery: 1 = the base's
  geometry).
- ``encoded``: what else the embeddings encode: k-means on the L2-normalised pool embeddings
  (k = the attribute's number of values), compared by adjusted mutual information with every
  task's labels (on the sequences where the task applies) and with nuisance attributes of the
  sequence: its length, its magnitude (tercile of its largest element) and the leading digit of
  its first element.

Nothing here loads a model: the stage costs seconds, and a re-run skips what is stored. A task
whose ``label`` raises on another task's sequence (or returns what is not a class index or None)
is a fault of that task: its ``encoded`` attribute is left out, everything else is analysed and
stored, and the fault is returned to be reported on every run until the task is fixed (then the
variants analysed without it are analysed again).
"""

from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Callable

import numpy as np

from harness import keys
from harness.api import Sequence, Task
from harness.plan import Plan, Variant
from harness.samples import eval_sample
from harness.store import Store

BOOTSTRAP = 200  # half-samples for the CKA interval
Z = 1.959964  # two-sided 95%


def nuisance(seqs: list[Sequence]) -> dict[str, list[int]]:
    """Attributes of a sequence that no task asks about."""
    peaks = np.array([max(s) for s in seqs])
    cuts = np.quantile(peaks, [1 / 3, 2 / 3])
    return {"length": [len(s) for s in seqs],
            "magnitude": [int(np.searchsorted(cuts, p, side="right")) for p in peaks],
            "leading digit": [int(str(s[0])[0]) for s in seqs]}


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of two embeddings of the same rows: 1 for the same
    geometry up to rotation and scale, 0 for unrelated."""
    X = np.asarray(X, dtype=np.float64) - X.mean(axis=0)
    Y = np.asarray(Y, dtype=np.float64) - Y.mean(axis=0)
    cross = np.linalg.norm(Y.T @ X) ** 2
    denom = np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)
    return float(cross / denom) if denom > 0 else float("nan")


def _weighted_hsic(A: np.ndarray, B: np.ndarray, W: np.ndarray) -> np.ndarray:
    """HSIC of kernels A, B on the resamples whose row counts are the rows of W (r, n).

    With a = A w / N, alpha = w'A w / N^2 (and b, beta for B), the kernels centred on a
    resample satisfy sum_ij w_i w_j A~_ij B~_ij = w'(A∘B)w - 2N sum_i w_i a_i b_i
    + N^2 alpha beta: every resample at once in a few matrix products, no gathering."""
    N = W.sum(axis=1)
    AW, BW = W @ A, W @ B
    a, b = AW / N[:, None], BW / N[:, None]
    alpha, beta = (AW * W).sum(axis=1) / N**2, (BW * W).sum(axis=1) / N**2
    first = ((W @ (A * B)) * W).sum(axis=1)
    return first - 2 * N * (W * a * b).sum(axis=1) + N**2 * alpha * beta


def cka_interval(X: np.ndarray, Y: np.ndarray, rng: np.random.Generator,
                 resamples: int = BOOTSTRAP) -> tuple[float, float, float]:
    """(CKA, low, high): CKA ± z·sd over random halves of the rows, drawn without replacement.

    Not the usual bootstrap: resampling *with* replacement duplicates rows, and duplicates
    inflate CKA (on 1,000 rows the bootstrap distribution can sit wholly above the estimate).
    The spread of half-sample estimates is the classical half-sampling estimate of the
    full-sample spread; its centre is not used, since CKA's small-sample bias grows as n shrinks.
    """
    X = np.asarray(X, dtype=np.float64) - X.mean(axis=0)
    Y = np.asarray(Y, dtype=np.float64) - Y.mean(axis=0)
    K, L = X @ X.T, Y @ Y.T
    n = len(K)
    W = np.zeros((resamples, n))
    for row in W:
        row[rng.permutation(n)[: n // 2]] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = _weighted_hsic(K, L, W) / np.sqrt(_weighted_hsic(K, K, W) *
                                                  _weighted_hsic(L, L, W))
    value = linear_cka(X, Y)
    spread = Z * float(np.nanstd(draws)) if np.isfinite(draws).any() else math.nan
    return value, value - spread, value + spread


def encoded(X: np.ndarray, attributes: dict[str, list[int | None]], seed: int
            ) -> dict[str, float]:
    """AMI between k-means clusters of ``X`` and each attribute (rows where it is None left
    out); one k-means per distinct k, on the L2-normalised rows."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import adjusted_mutual_info_score

    with np.errstate(over="ignore"):  # a row too large for float32's norm: zero, not a warning
        norms = np.linalg.norm(X, axis=1, keepdims=True)
    Z = X / np.where(norms == 0, 1.0, norms)
    rows = np.unique(Z, axis=0, return_inverse=True)[1].reshape(-1)  # equal rows, one id
    clusters: dict[int, np.ndarray] = {}
    out = {}
    for name, values in attributes.items():
        keep = np.array([v is not None for v in values])
        labels = np.array([v for v in values if v is not None])
        k = len(np.unique(labels))
        if k < 2 or len(np.unique(rows[keep])) < k:
            out[name] = float("nan")
            continue
        if k not in clusters:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clusters[k] = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(Z)
        out[name] = float(adjusted_mutual_info_score(labels, clusters[k][keep]))
    return out


class LabelFault(Exception):
    """A task's ``label`` broke its contract on a sequence of the pool."""


def pool_labels(task: Task, pool: list[tuple[Sequence, str]]) -> list[int | None]:
    """``task``'s label of every (sequence, the task it was drawn for) of the pool, or a
    ``LabelFault`` saying where ``label`` raised or returned something else than a class index or
    None (the contract: defined on any sequence, None where it does not apply)."""
    out: list[int | None] = []
    for seq, origin in pool:
        where = f"on a sequence of task {origin!r} {_short(seq)}"
        try:
            y = task.label(seq)
        except (Exception, SystemExit) as err:  # a plugin's sys.exit() too
            raise LabelFault(f"label() raised {type(err).__name__}: {err} {where}") from err
        if y is not None and not (hasattr(y, "__index__") and 0 <= int(y) < len(task.classes)):
            raise LabelFault(f"label() returned {y!r}, not a class index or None, {where}")
        out.append(None if y is None else int(y))
    return out


def _short(seq: Sequence) -> str:
    text = repr(tuple(seq))
    return text if len(text) <= 60 else text[:57] + "...)"


def labelled(tasks: list[Task], samples: list[list[Sequence]]
             ) -> tuple[dict[str, list[int | None]], list[tuple[str, str, str]]]:
    """Every task's labels of the pool (each task's eval sample, in task order) and a failure
    (what, error, trace) for each task whose labels broke the contract: it is left out."""
    pool = [(s, t.name) for t, sample in zip(tasks, samples, strict=True) for s in sample]
    attributes: dict[str, list[int | None]] = {}
    faults = []
    for task in tasks:
        try:
            attributes[task.name] = pool_labels(task, pool)
        except LabelFault as err:
            error = " ".join(f"{err}; its 'encoded' analysis is left out; fix the task (return "
                             "None where it does not apply)".split())
            trace = "".join(traceback.format_exception(err))[-4000:]
            faults.append((f"task {task.name!r}", error, trace))
    return attributes, faults


def analyse(plan: Plan, store: Store, run_id: int,
            advance: Callable[[int], None] = lambda n: None) -> list[tuple[str, str, str]]:
    """Analyse every variant of the plan not analysed yet (or analysed without a task's labels
    that are now usable); returns the failures (what, error, trace) of tasks left out."""
    tasks = plan.tasks
    eval_keys = [keys.eval_key(t, plan.profile, plan.seed) for t in tasks]
    pool = keys.pool_key(eval_keys)
    samples = [eval_sample(t, plan.profile, plan.seed) for t in tasks]
    seqs = [s for sample in samples for s in sample]
    attributes, faults = labelled(tasks, samples)
    have: dict[str, set[str]] = {}  # variant -> the attributes its stored analyses cover
    for r in store.analyses(plan.profile.name, plan.seed):
        if r.pool == pool and r.kind == "encoded":
            have.setdefault(r.variant, set()).add(r.name)
    done = {v for v in store.analysed(pool) if set(attributes) <= have.get(v, set())}
    attributes.update({k: list[int | None](v) for k, v in nuisance(seqs).items()})
    bases = {v.key: v for v in plan.variants if v.adapter is None}

    def pooled(variant: Variant) -> np.ndarray | None:
        parts = []
        for key, sample in zip(eval_keys, samples, strict=True):
            X = store.load_embeddings(keys.embedding_key(variant.key, key), len(sample))
            if X is None:
                return None
            parts.append(X)
        return np.concatenate(parts)

    base_cache: dict[str, np.ndarray | None] = {}
    for variant in plan.variants:
        if variant.key in done:
            continue
        X = pooled(variant)
        base = bases.get(keys.base_key(variant.encoder))
        if X is None or base is None or not np.isfinite(X).all():
            continue  # a failed or unfinished cell: nothing to analyse yet
        if base.key not in base_cache:
            base_cache[base.key] = pooled(base)
        B = base_cache[base.key]
        seed = keys.analysis_seed(variant.key, pool)
        rows: list[tuple[str, str, float, float, float]] = []
        if B is not None and np.isfinite(B).all():
            value, lo, hi = cka_interval(X, B, np.random.default_rng(seed))
            rows.append(("cka", "base", value, lo, hi))
        for name, value in encoded(X, attributes, seed).items():
            rows.append(("encoded", name, value, float("nan"), float("nan")))
        store.put_analyses(variant.key, pool, [t.name for t in tasks], plan.profile.name,
                           plan.seed, run_id, rows)
        advance(1)
    return faults
