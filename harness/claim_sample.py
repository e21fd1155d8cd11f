"""Claim 1's larger sample: more rows per compositional task for the base models alone.

Claim 1 compares *base* models (pretrained, untrained) on the compositional eval tasks. Base
models have no training seeds, so only eval rows power that comparison, and more eval rows
for every variant would multiply the whole grid's embedding cost (every variant embeds every
eval task). So a profile's ``claim_rows`` (quick: 600, against 100 eval rows) gives each
compositional eval task a sample of its own (``samples.claim_sample``, ``keys.claim_key``)
that only the base models of pretrained encoders embed (``claim_tasks``; the runner embeds it
as it embeds the fit samples, ``harness.extras``), and only where the run has such a base of
each family, which claim 1 needs.

The analysis stage (``analyse_claims``) scores each base's embeddings of it with claim 1's
metric (``paper.CLAIM1_METRICS``: the first the run has) and keeps its per-row values (an
(n, 1) array under ``keys.claim_values_key``, beside the embeddings), with ``analyses`` rows of
kind ``claim`` (the mean and its 95% bootstrap interval) and ``claim-rows`` (the rows), on the
sample's key. Every base's values on one sample share the metric's random stream, so the
report's bootstrap resamples both bases' rows jointly: a paired difference
(``paper.claim1``).
"""

from __future__ import annotations

import math

import numpy as np

from harness import keys
from harness.api import Metric, Task
from harness.learnability import per_row
from harness.params import label
from harness.plan import Plan
from harness.report.paper import CLAIM1_METRICS
from harness.report.rows import CLAIM, CLAIM_ROWS
from harness.report.stats import Bootstrap
from harness.samples import claim_sample
from harness.store import Store
from harness.threads import one_blas_thread


def claim_metric(plan: Plan) -> Metric | None:
    """Claim 1's metric: the first of ``CLAIM1_METRICS`` the run has (None: none)."""
    by_label = {label(m): m for m in plan.metrics}
    return next((by_label[name] for name in CLAIM1_METRICS if name in by_label), None)


def claim_tasks(plan: Plan) -> dict[str, list[Task]]:
    """Base variant key -> the compositional eval tasks whose larger sample it embeds: every
    pretrained encoder's base (not ``from_scratch``), where the profile's ``claim_rows`` is
    above its eval size and the run has such a base of both families (else claim 1 is not
    tested, and nothing is embedded for it)."""
    tasks = [t for t in plan.tasks if t.compositional]
    if not (plan.profile.claim_extra and tasks and claim_metric(plan) is not None):
        return {}
    bases = [v for v in plan.variants if v.adapter is None and v.merge is None
             and not getattr(v.encoder, "from_scratch", False)]
    if not {"llm", "non-llm"} <= {v.encoder.family for v in bases}:
        return {}
    return {v.key: tasks for v in bases}


def check_claim_samples(plan: Plan) -> None:
    """Draw every claim sample the run will embed: a task whose sampler cannot draw
    ``claim_rows`` balanced sequences with few repeats is a usage error naming it, raised
    before any work (``samples.claim_sample``)."""
    for task in {t.name: t for ts in claim_tasks(plan).values() for t in ts}.values():
        claim_sample(task, plan.profile, plan.seed)


def analyse_claims(plan: Plan, store: Store, run_id: int) -> None:
    """Score every base's stored embeddings of the claim samples not scored yet (or whose
    per-row values were lost) with claim 1's metric; store the analyses and the values."""
    tasks, metric = claim_tasks(plan), claim_metric(plan)
    if not tasks or metric is None:
        return
    name, profile, seed = label(metric), plan.profile, plan.seed
    boot = Bootstrap(seed)
    done = {(r.variant, r.pool) for r in store.analyses(profile.name, seed)
            if r.kind == CLAIM_ROWS and r.name == name}
    samples: dict[str, tuple[str, int, np.ndarray]] = {}  # task -> key, rows, labels
    for variant in plan.variants:
        for task in tasks.get(variant.key, []):
            if task.name not in samples:  # drawn once per task, not per base
                seqs = claim_sample(task, profile, seed)
                samples[task.name] = (keys.claim_key(task, profile, seed), len(seqs),
                                      np.array([int(task.label(s) or 0) for s in seqs]))
            pool, n, y = samples[task.name]
            values_key = keys.claim_values_key(variant.key, pool, name)
            if (variant.key, pool) in done and store.load_embeddings(values_key, n) is not None:
                continue
            X = store.load_embeddings(keys.embedding_key(variant.key, pool), n)
            if X is None or not np.isfinite(X).all():
                continue  # not embedded (a failed pass): the next run embeds it
            with one_blas_thread():
                values = per_row(metric, X, y, pool)
            if values is None:
                continue
            found = boot.estimate(task.name, values)
            lo, hi = found.interval() or (math.nan, math.nan)
            store.save_embeddings(values_key, values.reshape(-1, 1))
            store.put_analyses(variant.key, pool, [task.name], profile.name, seed, run_id,
                               [(CLAIM, name, found.value, lo, hi),
                                (CLAIM_ROWS, name, float(n), math.nan, math.nan)])
