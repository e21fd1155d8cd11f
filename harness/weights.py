"""The weights of a variant: train what is missing, load stored checkpoints, apply a merge.

Each training run's checkpoints load (or train) once per process and stay cached while the
variants that use them are computed; a variant's merged tensors are swapped into the loaded
backbone for the duration of its embedding pass and the base tensors swapped back afterwards.
Merges see plain tensors on the CPU: the base value of every tensor any ingredient changed, and
every ingredient's value of each (a tensor an ingredient left alone holds its base value), as
copies of their own; what a merge returns is converted to each base tensor's dtype.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from harness import keys
from harness.api import Backbone, Checkpoint, Merged, MetricUndefined, Scorer
from harness.oracle import Oracle
from harness.oracle import wanted as oracle_wanted
from harness.params import label
from harness.plan import Plan, Variant
from harness.reference import NONE
from harness.samples import eval_sample, train_sample, valid_sample
from harness.store.records import RunStore
from harness.threads import one_blas_thread
from harness.timing import stage
from harness.tuning import coefficients, rescaled

#: the most bytes of checkpoints kept cached for later variants (``Weights.keep``)
CACHE_BYTES = 4 << 30


class Weights:
    """Checkpoints and merged weights for the variants of a plan."""

    def __init__(self, plan: Plan, store: RunStore):
        self.plan, self.store = plan, store
        self._checkpoints: dict[str, list[Checkpoint]] = {}
        #: training runs a later variant will use (cached: ``keep``), and each one's bytes
        self._later, self._sizes = set[str](), dict[str, int]()
        #: the current variant's candidates scored on the eval samples (``harness.oracle``)
        self._oracle: Oracle | None = None

    def clear(self) -> None:
        """Drop the cached checkpoints (after an encoder's variants are done)."""
        self._checkpoints.clear()
        self._later, self._sizes = set(), {}

    def keep(self, variant: Variant, later: list[str]) -> None:
        """Keep cached the checkpoints of ``variant``'s runs and of the runs ``later`` (the
        variants to come use them, soonest first) while they fit ``CACHE_BYTES``; drop every
        other. Each run then loads once per encoder, however its variants are ordered."""
        kept, size = {key for _, key in variant.runs}, 0
        for key in later:
            found = self._checkpoints.get(key)
            if key in kept or found is None:
                kept.add(key)
                continue
            if key not in self._sizes:  # counted once per run, not on every variant's call
                self._sizes[key] = sum(t.numel() * t.element_size() for c in found
                                       for t in c.tensors.values())
            size += self._sizes[key]
            if size <= CACHE_BYTES:
                kept.add(key)
        self._later = kept
        self._checkpoints = {k: v for k, v in self._checkpoints.items() if k in kept}

    @contextlib.contextmanager
    def applied(self, backbone: Backbone, variant: Variant) -> Iterator[str]:
        """Load the variant's (merged) weights into the backbone for the duration; yields the
        content key of the weights applied (``keys.weights_key``)."""
        if variant.adapter is None:
            yield keys.weights_key(variant.encoder, {}, {})
            return
        ingredients = self._ingredients(backbone, variant)
        current = backbone.weights()
        names = sorted({k for ck in ingredients for k in ck})
        # on the CPU, where checkpoints live: merges see one device whatever the backbone's
        base = {k: current[k].detach().to("cpu", copy=True) for k in names}
        ingredients = [{k: ck.get(k, base[k]) for k in names} for ck in ingredients]
        self._oracle = None
        if variant.merge is None:
            merged: Any = ingredients[-1]
        else:
            # the merge gets copies: one that changes its inputs in place cannot change the
            # base weights restored after it or the cached checkpoints of the next variant
            given = ({k: v.clone() for k, v in base.items()},
                     [{k: v.clone() for k, v in ck.items()} for ck in ingredients])
            scorer = self._scorer(backbone, variant, base) \
                if variant.merge.scored_by() is not None else None
            with stage("merging"):
                merged = variant.merge.merge(*given, score=scorer) if scorer is not None \
                    else variant.merge.merge(*given)
            del given
            merged = self._after(backbone, variant, base, ingredients, merged, scorer)
        if variant.merge is not None:  # with the variant's artifacts: never lost for good
            stats = checked_stats(variant, merged.stats) if isinstance(merged, Merged) else None
            self.store.save_merge_stats(variant.key, stats)
            if stats is not None:
                self.store.put_merge_stats(variant.key, stats)
        if isinstance(merged, Merged):
            merged = merged.tensors
        del ingredients
        applied = checked_merge(variant, base, merged)
        backbone.load_weights(applied)
        try:
            yield keys.weights_key(variant.encoder, base, applied)
        finally:
            backbone.load_weights(base)

    def _after(self, backbone: Backbone, variant: Variant, base: dict[str, Any],
               ingredients: list[dict[str, Any]], merged: Any, scorer: Scorer | None) -> Any:
        """What the harness adds to a merge's result: the rescaling ``rescale=METRIC`` asks
        for (``harness.tuning.rescaled``) and, across tasks, the effective coefficient of the
        merged task vector on each task's (stats ``coefficient on TASK`` and ``outside task
        vectors``, ``harness.tuning.coefficients``). ``scorer``: the merge's own, reused when
        it scores with the rescaling's metric."""
        assert variant.merge is not None
        metric = str(getattr(variant.merge, "rescale", "") or "")
        across = variant.merge.ingredients()[0] == "tasks" and bool(variant.run_tasks)
        if not metric and not across:
            return merged
        tensors, stats = (merged.tensors, dict(merged.stats)) if isinstance(merged, Merged) \
            else (merged, {})
        tensors = checked_merge(variant, base, tensors)
        if metric:
            with stage("merging"):
                score = scorer if scorer is not None and variant.merge.scored_by() == metric \
                    else self._scorer(backbone, variant, base, metric)
                found = rescaled(base, ingredients, Merged(tensors, stats), score)
            tensors, stats = found.tensors, dict(found.stats)
        if not across:
            return Merged(tensors, stats)
        with stage("merging"):
            coefficient, outside = coefficients(base, ingredients, {
                k: tensors[k].float() - b.float() for k, b in base.items()})
        stats.update({f"coefficient on {t.name}": a
                      for t, a in zip(variant.run_tasks, coefficient, strict=True)})
        stats["outside task vectors"] = outside
        if self._oracle is not None:
            stats.update(self._oracle.stats(tensors))
        return Merged(tensors, stats)

    def _ingredients(self, backbone: Backbone, variant: Variant) -> list[dict[str, Any]]:
        """The checkpoints a variant's merge receives (its own run's stages by default)."""
        over = variant.merge.ingredients()[0] if variant.merge else "stages"
        runs = variant.runs
        if not runs:
            raise ValueError("a trained variant names its training runs")
        used = {key for _, key in runs} | self._later
        self._checkpoints = {k: v for k, v in self._checkpoints.items() if k in used}
        out: list[dict[str, Any]] = []
        for i, (seed, key) in enumerate(runs):
            checkpoints = self._get_checkpoints(backbone, variant, seed, key, i)
            final = over in ("seeds", "tasks")
            out += [ck.tensors for ck in (checkpoints[-1:] if final else checkpoints)]
        return out

    def _get_checkpoints(self, backbone: Backbone, variant: Variant, seed: int,
                         key: str, run: int = 0) -> list[Checkpoint]:
        if key in self._checkpoints:
            return self._checkpoints[key]
        with stage("loading"):
            stored = self.store.load_checkpoints(key)
        if stored is not None:
            checkpoints = [Checkpoint(c["stage"], c["seed"], c["tensors"]) for c in stored]
        else:
            with stage("training"):
                checkpoints = self._train(backbone, variant, seed, run)
            if not checkpoints:
                name = variant.adapter.name if variant.adapter else "?"
                raise ValueError(f"adapter {name!r} returned no checkpoints")
            self.store.save_checkpoints(key, [{"stage": c.stage, "seed": c.seed,
                                               "tensors": c.tensors} for c in checkpoints])
        self._checkpoints[key] = checkpoints
        return checkpoints

    def _train(self, backbone: Backbone, variant: Variant, seed: int, run: int = 0
               ) -> list[Checkpoint]:
        import torch

        task, profile = variant.task_of(run), self.plan.profile
        if variant.adapter is None or task is None:
            raise ValueError("only a variant with an adapter and a train task trains")
        seqs = train_sample(task, profile, self.plan.seed)
        ys = [int(task.label(s) or 0) for s in seqs]
        snapshot = {k: v.detach().clone() for k, v in backbone.weights().items()}
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                checkpoints = variant.adapter.fit(backbone, seqs, ys, seed, profile)
        finally:
            backbone.load_weights(snapshot)
        changed = []
        for ck in checkpoints:  # keep only tensors that changed: merges see plain deltas
            tensors = {k: v.detach().cpu() for k, v in ck.tensors.items()
                       if k not in snapshot or not torch.equal(v.detach().cpu(),
                                                               snapshot[k].cpu())}
            changed.append(Checkpoint(ck.stage, ck.seed, tensors))
        return changed

    def _scorer(self, backbone: Backbone, variant: Variant, base: dict[str, Any],
                metric_name: str | None = None) -> Scorer:
        """Held-out score of candidate weights (the merge's metric, higher is better) on a
        sample of the train task disjoint from its train and eval samples; for a cross-task
        merge, the mean over the merged tasks of each one's held-out score."""
        tasks = variant.run_tasks or ([variant.train_task] if variant.train_task else [])
        if variant.merge is None or not tasks:
            raise ValueError("only a merge of a trained variant is scored")
        metric = self.plan.scorers[metric_name or str(variant.merge.scored_by())]
        profile = self.plan.profile
        held = [(valid_sample(t, profile, self.plan.seed, size=profile.held_out_size), t)
                for t in tasks]
        samples = [(seqs, np.array([t.label(s) for s in seqs])) for seqs, t in held]
        every = [s for seqs, _ in samples for s in seqs]  # one embedding pass: less padding
        bounds = np.cumsum([0] + [len(seqs) for seqs, _ in samples])
        rng_seed = keys.scorer_seed(variant.key)
        oracle = None
        if oracle_wanted(profile, variant):  # its own pass: the honest one stays as it is
            evals = [eval_sample(t, profile, self.plan.seed) for t in variant.run_tasks]
            ys = [np.array([t.label(s) for s in seqs])
                  for seqs, t in zip(evals, variant.run_tasks, strict=True)]
            self._oracle = oracle = Oracle(label(metric), [t.name for t in variant.run_tasks],
                                           bool(metric.higher_is_better))

        def one(X: np.ndarray, y: np.ndarray) -> float:
            if not np.isfinite(X).all():
                return -math.inf
            try:
                value = float(metric.score(X, y, np.random.default_rng(rng_seed)))
            except MetricUndefined:
                return -math.inf
            if not math.isfinite(value):
                return -math.inf
            return value if metric.higher_is_better else -value

        def raw(X: np.ndarray, y: np.ndarray) -> float:
            value = one(X, y)
            return value if not math.isfinite(value) or metric.higher_is_better else -value

        def score(tensors: dict[str, Any]) -> float:
            applied = checked_merge(variant, base, tensors)
            backbone.load_weights(applied)
            try:
                with stage("held-out scoring"):
                    X = backbone.embed(every)
                    with one_blas_thread():
                        found = [one(X[bounds[i]:bounds[i + 1]], y)
                                 for i, (_, y) in enumerate(samples)]
                if oracle is not None:
                    with stage("oracle scoring"):
                        X = backbone.embed([s for seqs in evals for s in seqs])
                        cut = np.cumsum([0] + [len(seqs) for seqs in evals])
                        with one_blas_thread():
                            oracle.record(applied, [raw(X[cut[i]:cut[i + 1]], y)
                                                    for i, y in enumerate(ys)])
            finally:
                backbone.load_weights(base)
            return float(np.mean(found)) if all(math.isfinite(v) for v in found) \
                else -math.inf

        return score


def checked_stats(variant: Variant, stats: Any) -> dict[str, float]:
    name = variant.merge.name if variant.merge else NONE
    try:
        out = {str(k): float(v) for k, v in dict(stats).items()}
    except (TypeError, ValueError):
        raise ValueError(f"merge {name!r} returned stats {stats!r}; expected a dict of "
                         "name -> number") from None
    return out


def checked_merge(variant: Variant, base: dict[str, Any], merged: Any) -> dict:
    """A merge's output as the base's tensors (names, shapes, dtypes), or a one-line error."""
    name = variant.merge.name if variant.merge else NONE
    if not isinstance(merged, dict):
        raise ValueError(f"merge {name!r} returned {type(merged).__name__}; expected a dict of "
                         "tensors or harness.api.Merged")
    missing = sorted(set(base) - set(merged))
    if missing:
        raise ValueError(f"merge {name!r} returned no tensor for {missing[0]!r}; a merge "
                         "returns a tensor for every name of base")
    out = {}
    for key, ref in base.items():
        value = merged[key]
        if not (hasattr(value, "shape") and hasattr(value, "to")):
            raise ValueError(f"merge {name!r} returned {type(value).__name__} for {key!r}, "
                             "expected a tensor")
        if tuple(value.shape) != tuple(ref.shape):
            raise ValueError(f"merge {name!r} returned shape {tuple(value.shape)} for {key!r}, "
                             f"expected {tuple(ref.shape)}; a merge returns each base tensor's "
                             "shape")
        out[key] = value.to(dtype=ref.dtype)
    return out
