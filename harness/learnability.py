"""Whether a fine-tune learned its task, memorised its train sample, or did neither.

A fine-tune's *gain* on its train task is scored twice: on the task's eval sample (the page's
gain: what it learned that carries to sequences it never saw) and on its *fit sample*
(``samples.fit_sample``: eval-sample sized, drawn from the sequences it trained on). The run
embeds every unmerged single-task fine-tune's fit sample and, once per task, its base's
(``fit_tasks``, ``harness.extras``); the analysis stage scores both with every metric of the run
that has per-row values and stores the paired gain with its 95% bootstrap interval
(``analyses`` rows of kind ``fit``, on the fit sample's key).

The verdict, fixed before any default train task was chosen on it (``verdict``):

- *learned*: the eval-sample gain's lower 95% bound is at least ``LEARNED`` (in the primary
  metric's units, in its direction): a gain such as +0.01 [0.001, 0.02] is above zero but its
  retention after a merge would be a ratio of noise;
- *memorised*: not learned, but the fit-sample gain's lower bound is at least ``LEARNED``;
- *not learned*: neither.
"""

from __future__ import annotations

import math

import numpy as np

from harness import keys
from harness.api import Metric, Task
from harness.leaks import RULE
from harness.params import label
from harness.plan import Plan
from harness.report.stats import Bootstrap
from harness.samples import fit_sample
from harness.scoring import numbers
from harness.store import Store
from harness.threads import one_blas_thread

#: the smallest lower 95% bound of a gain that counts as learned (primary-metric units)
LEARNED = 0.05


def fit_tasks(plan: Plan) -> dict[str, list[Task]]:
    """Variant key -> the train tasks whose fit samples it embeds: an unmerged single-task
    fine-tune its own task, each encoder's base every task its fine-tunes trained on."""
    out: dict[str, list[Task]] = {}
    trained: dict[str, list[Task]] = {}
    for v in plan.variants:
        if v.adapter is not None and v.merge is None and v.train_task is not None \
                and not v.run_tasks:
            out[v.key] = [v.train_task]
            known = trained.setdefault(keys.base_key(v.encoder), [])
            if v.train_task not in known:
                known.append(v.train_task)
    for v in plan.variants:
        if v.adapter is None and v.key in trained:
            out[v.key] = trained[v.key]
    return out


def verdict(eval_low: float, fit_low: float | None) -> str:
    """learned / memorised / not learned, from the lower 95% bounds of the eval-sample and
    fit-sample gains (NaN or None: not measured)."""
    if math.isfinite(eval_low) and eval_low >= LEARNED:
        return "learned"
    if fit_low is not None and math.isfinite(fit_low) and fit_low >= LEARNED:
        return "memorised"
    return "not learned"


def analyse_fits(plan: Plan, store: Store, run_id: int) -> None:
    """Store the fit-sample gain of every fine-tune whose fit embeddings, and its base's, are
    stored and whose gain is not: one row per metric with per-row values."""
    fits = fit_tasks(plan)
    bases = {v.key: v for v in plan.variants if v.adapter is None}
    boot = Bootstrap(plan.seed)
    done = {(r.variant, r.pool) for r in store.analyses(plan.profile.name, plan.seed)
            if r.kind == "fit"}
    samples: dict[str, tuple[list, np.ndarray]] = {}  # task -> its fit sample and labels
    for variant in plan.variants:
        base = bases.get(keys.base_key(variant.encoder))
        if variant.adapter is None or variant.key not in fits or base is None:
            continue
        task = fits[variant.key][0]
        pool = keys.fit_key(task, plan.profile, plan.seed, RULE)
        if (variant.key, pool) in done:
            continue
        if task.name not in samples:  # drawn once per task, not per fine-tune
            seqs = fit_sample(task, plan.profile, plan.seed)
            samples[task.name] = seqs, np.array([int(task.label(s) or 0) for s in seqs])
        seqs, y = samples[task.name]
        X = store.load_embeddings(keys.fit_embedding_key(variant, task, plan), len(seqs))
        B = store.load_embeddings(keys.fit_embedding_key(base, task, plan), len(seqs))
        if X is None or B is None or not (np.isfinite(X).all() and np.isfinite(B).all()):
            continue
        rows = []
        with one_blas_thread():
            for metric in plan.metrics:
                mine, theirs = per_row(metric, X, y, pool), per_row(metric, B, y, pool)
                if mine is None or theirs is None:
                    continue
                sign = 1.0 if metric.higher_is_better else -1.0
                gain = (boot.estimate(f"fit:{task.name}", mine)
                        - boot.estimate(f"fit:{task.name}", theirs)).scaled(sign)
                lo, hi = gain.interval() or (math.nan, math.nan)
                rows.append(("fit", label(metric), gain.value, lo, hi))
        store.put_analyses(variant.key, pool, [task.name], plan.profile.name, plan.seed,
                           run_id, rows)


def per_row(metric: Metric, X: np.ndarray, y: np.ndarray, pool: str) -> np.ndarray | None:
    """A metric's per-row values on a sample beside the eval pool (a fit sample, claim 1's
    larger sample) keyed ``pool``, seeded by it and the metric alone, so that every variant's
    values on it are paired (None: it has none, or it raised: its eval cells say why)."""
    rng = np.random.default_rng(keys.metric_seed(pool, keys.metric_key(metric)))
    try:
        per = metric.per_sample(X, y, rng)
        values = None if per is None else numbers(label(metric), "per_sample", per)
    except (Exception, SystemExit):
        return None
    return values if values is not None and values.shape == (len(y),) else None
