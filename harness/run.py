"""Executing a plan: train what is missing, merge, embed, score, store each piece as it is done.

Work is grouped so that each backbone loads once per process and each training run's
checkpoints load once; variants swap merged tensors into the loaded backbone and swap the base
back afterwards. A cell whose scores are all in the store is reused without loading anything.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.api import Backbone, Checkpoint, HarnessError, Merged, MetricUndefined, Scorer
from harness.params import content_hash, identity, label
from harness.plan import (
    Cell,
    Plan,
    Variant,
    base_key,
    eval_key,
    eval_sample,
    train_sample,
    valid_sample,
)
from harness.store import Store


class FailFast(Exception):
    """Raised to stop a run at its first failed cell (``--fail-fast``)."""


@dataclass
class Summary:
    computed: int = 0
    reused: int = 0
    failed: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # what, error, trace

    def line(self) -> str:
        return f"cells: {self.computed} computed, {self.reused} reused, {self.failed} failed"


def pick_device(requested: str = "auto") -> str:
    """``auto``: CUDA when available, else the CPU. A named device must exist here."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(requested).type
    except (RuntimeError, ValueError):
        raise HarnessError(f"--device {requested!r} is not a device torch knows; use auto, "
                           "cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise HarnessError(f"--device {requested!r} but CUDA is not available here; use auto "
                           "or cpu")
    return requested


def describe(variant: Variant) -> str:
    parts = [label(variant.encoder)]
    if variant.adapter is not None and variant.train_task is not None:
        parts.append(f"{label(variant.adapter)}@{variant.train_task.name}/seed{variant.seed}")
    if variant.merge is not None:
        parts.append(label(variant.merge))
    return " + ".join(parts)


class Runner:
    def __init__(self, plan: Plan, store: Store, run_id: int, device: str = "cpu",
                 fail_fast: bool = False, advance: Callable[[int], None] = lambda n: None):
        self.plan, self.store, self.run_id, self.device = plan, store, run_id, device
        self.fail_fast, self.advance = fail_fast, advance
        self.summary = Summary()
        self.metrics = [(content_hash(identity(m)), label(m), m) for m in plan.metrics]
        self.samples = {t.name: eval_sample(t, plan.profile, plan.seed) for t in plan.tasks}
        self.labels = {t.name: np.array([t.label(s) for s in self.samples[t.name]])
                       for t in plan.tasks}
        self.eval_keys = {t.name: eval_key(t, plan.profile, plan.seed) for t in plan.tasks}
        self._checkpoints: dict[str, list[Checkpoint]] = {}
        self.where = (plan.profile.name, plan.seed, run_id)
        self.stored: dict[str, set[str]] = {}  # cell -> metric keys already in the store

    # -------------------------------------------------------------------------------- driver

    def run(self) -> Summary:
        self.run_cells(self.pending())
        return self.summary

    def pending(self) -> dict[str, list[Cell]]:
        """Record the plan's variants; count the cells whose scores are all stored as reused;
        return the rest by variant key (what ``run_cells`` computes)."""
        for variant in self.plan.variants:
            self.store.put_variant(variant.key, variant.row(self.plan.profile))
        metric_keys = {mk for mk, _, _ in self.metrics}
        todo: dict[str, list[Cell]] = {}
        for cell in self.plan.cells:
            self.stored[cell.key] = self.store.stored_metrics(cell.key) & metric_keys
            if self.stored[cell.key] == metric_keys:
                self.summary.reused += 1
                self.advance(1)
            else:
                todo.setdefault(cell.variant.key, []).append(cell)
        return todo

    def run_cells(self, todo: dict[str, list[Cell]]) -> None:
        """Compute ``todo`` (variant key -> cells), one backbone load per encoder."""
        by_encoder: dict[str, list[Variant]] = {}
        for variant in self.plan.variants:
            if variant.key in todo:
                enc = content_hash(identity(variant.encoder))
                by_encoder.setdefault(enc, []).append(variant)
        for variants in by_encoder.values():
            self._run_encoder(variants, todo)

    def _run_encoder(self, variants: list[Variant], todo: dict[str, list[Cell]]) -> None:
        backbone: Backbone | None = None

        def get_backbone() -> Backbone:
            nonlocal backbone
            if backbone is None:
                backbone = variants[0].encoder.load(self.device)
            return backbone

        for variant in variants:
            cells = todo[variant.key]
            try:
                embeddings = self._embeddings(variant, cells, get_backbone)
            except FailFast:
                raise
            except Exception as err:
                for cell in cells:
                    self.fail(cell, err)
                continue
            for cell in cells:
                self._score(cell, embeddings[cell.task.name])
        self._checkpoints.clear()

    # ---------------------------------------------------------------------------- embeddings

    def _embeddings(self, variant: Variant, cells: list[Cell],
                    get_backbone: Callable[[], Backbone]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        missing = []
        for cell in cells:
            key = self._emb_key(variant, cell)
            cached = self.store.load_embeddings(key, len(self.samples[cell.task.name]))
            if cached is None:
                missing.append(cell)
            else:
                out[cell.task.name] = cached
        if missing:
            backbone = get_backbone()
            with self._weights_applied(backbone, variant) as weights:
                for cell in missing:
                    seqs = self.samples[cell.task.name]
                    # variants whose merged weights are equal (SLERP falling back to linear,
                    # t=0 or t=1 endpoints) share one embedding pass
                    shared = embedding_key(weights, self.eval_keys[cell.task.name])
                    X = self.store.load_embeddings(shared, len(seqs))
                    if X is None:
                        X = _checked_embeddings(variant, backbone.embed(seqs), len(seqs))
                        self.store.save_embeddings(shared, X)
                    self.store.link_embeddings(self._emb_key(variant, cell), shared, X)
                    out[cell.task.name] = X
        for X in out.values():  # stored by an older version: never scored
            _checked_embeddings(variant, X, len(X))
        return out

    def _emb_key(self, variant: Variant, cell: Cell) -> str:
        return embedding_key(variant.key, self.eval_keys[cell.task.name])

    @contextlib.contextmanager
    def _weights_applied(self, backbone: Backbone, variant: Variant) -> Iterator[str]:
        """Load the variant's (merged) weights into the backbone for the duration; yields the
        content key of the weights applied (``weights_key``)."""
        if variant.adapter is None:
            yield weights_key(variant.encoder, {}, {})
            return
        ingredients = self._ingredients(backbone, variant)
        current = backbone.weights()
        keys = sorted({k for ck in ingredients for k in ck})
        # on the CPU, where checkpoints live: merges see one device whatever the backbone's
        base = {k: current[k].detach().to("cpu", copy=True) for k in keys}
        # a tensor a checkpoint left alone holds its base value there
        ingredients = [{k: ck.get(k, base[k]) for k in keys} for ck in ingredients]
        if variant.merge is None:
            merged: Any = ingredients[-1]
        elif variant.merge.scored_by() is not None:
            merged = variant.merge.merge(dict(base), ingredients,
                                         score=self._scorer(backbone, variant, base))
        else:
            merged = variant.merge.merge(dict(base), ingredients)
        if isinstance(merged, Merged):
            self.store.put_merge_stats(variant.key, _checked_stats(variant, merged.stats))
            merged = merged.tensors
        del ingredients
        applied = _checked_merge(variant, base, merged)
        backbone.load_weights(applied)
        try:
            yield weights_key(variant.encoder, base, applied)
        finally:
            backbone.load_weights(base)

    def _ingredients(self, backbone: Backbone, variant: Variant) -> list[dict[str, Any]]:
        """The checkpoints a variant's merge receives (its own run's stages by default)."""
        over = variant.merge.ingredients()[0] if variant.merge else "stages"
        runs = variant.runs
        assert runs, "a trained variant names its training runs"
        self._checkpoints = {k: v for k, v in self._checkpoints.items()
                             if k in {key for _, key in runs}}  # keep only what is used now
        out: list[dict[str, Any]] = []
        for seed, key in runs:
            checkpoints = self._get_checkpoints(backbone, variant, seed, key)
            out += [ck.tensors for ck in (checkpoints if over != "seeds" else checkpoints[-1:])]
        return out

    def _get_checkpoints(self, backbone: Backbone, variant: Variant, seed: int,
                         key: str) -> list[Checkpoint]:
        assert variant.adapter and variant.train_task
        if key in self._checkpoints:
            return self._checkpoints[key]
        stored = self.store.load_checkpoints(key)
        if stored is not None:
            checkpoints = [Checkpoint(c["stage"], c["seed"], c["tensors"]) for c in stored]
        else:
            checkpoints = self._train(backbone, variant, seed)
            self.store.save_checkpoints(key, [{"stage": c.stage, "seed": c.seed,
                                               "tensors": c.tensors} for c in checkpoints])
        if not checkpoints:
            raise ValueError(f"adapter {variant.adapter.name!r} returned no checkpoints")
        self._checkpoints[key] = checkpoints
        return checkpoints

    def _train(self, backbone: Backbone, variant: Variant, seed: int) -> list[Checkpoint]:
        import torch

        assert variant.adapter and variant.train_task
        task, profile = variant.train_task, self.plan.profile
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

    def _scorer(self, backbone: Backbone, variant: Variant, base: dict[str, Any]) -> Scorer:
        """Held-out on-task score of candidate weights (the merge's metric, higher is better),
        on a sample of the train task disjoint from its train and eval samples."""
        assert variant.merge and variant.train_task
        name = variant.merge.scored_by()
        metric = self.plan.scorers[str(name)]
        task = variant.train_task
        seqs = valid_sample(task, self.plan.profile, self.plan.seed)
        y = np.array([task.label(s) for s in seqs])
        rng_seed = int(content_hash("score", variant.key)[:12], 16)

        def score(tensors: dict[str, Any]) -> float:
            backbone.load_weights(_checked_merge(variant, base, tensors))
            try:
                X = backbone.embed(seqs)
            finally:
                backbone.load_weights(base)
            if not np.isfinite(X).all():
                return -math.inf
            try:
                value = float(metric.score(X, y, np.random.default_rng(rng_seed)))
            except MetricUndefined:
                return -math.inf
            if not math.isfinite(value):
                return -math.inf
            return value if metric.higher_is_better else -value

        return score

    # ------------------------------------------------------------------------------- scoring

    def _score(self, cell: Cell, X: np.ndarray) -> None:
        y = self.labels[cell.task.name]
        rows: list[tuple[str, str, float, str]] = []
        samples: dict[str, np.ndarray] = {}
        note = "only one class present" if len(np.unique(y)) < 2 else ""
        try:
            for mk, name, metric in self.metrics:
                if mk in self.stored.get(cell.key, ()):
                    continue  # a metric added to a finished run scores only itself
                if note:
                    rows.append((mk, name, math.nan, note))
                    continue
                # seeded by the eval sample, not the variant: every variant gets the same
                # splits (paired comparisons), and equal embeddings get equal scores
                rng = np.random.default_rng(int(content_hash(self.eval_keys[cell.task.name],
                                                             mk)[:12], 16))
                try:
                    per = metric.per_sample(X, y, rng)
                    if per is None:
                        value = float(metric.score(X, y, rng))
                    else:
                        per = np.asarray(per, dtype=np.float64)
                        if per.shape != (len(y),):
                            raise ValueError(f"metric {name!r}: per_sample returned shape "
                                             f"{per.shape}, expected ({len(y)},)")
                        finite = per[np.isfinite(per)]
                        value = float(finite.mean()) if finite.size else math.nan
                        samples[mk] = per
                    rows.append((mk, name, value, "" if math.isfinite(value)
                                 else "metric returned a non-finite value"))
                except MetricUndefined as why:
                    rows.append((mk, name, math.nan, str(why) or "undefined"))
        except Exception as err:
            self.fail(cell, err)
            return
        self.store.put_scores(cell.key, cell.variant.key, cell.task.name, self.where, rows,
                              samples)
        self.summary.computed += 1
        self.advance(1)

    def fail(self, cell: Cell, err: BaseException) -> None:
        what = f"{describe(cell.variant)} on {cell.task.name}"
        message = " ".join(f"{type(err).__name__}: {err}".split())  # one line
        trace = "".join(traceback.format_exception(err))[-4000:]
        self.store.put_failure(cell.key, cell.variant.key, cell.task.name,
                               message + "\n" + trace, self.where)
        self.summary.failed += 1
        self.summary.failures.append((what, message, trace))
        self.advance(1)
        if self.fail_fast:
            raise FailFast(f"{what}: {message}")


def embedding_key(variant_key: str, eval_key: str) -> str:
    """The content key of a variant's embeddings of an eval sample (``plan.eval_key``)."""
    return content_hash("emb", variant_key, eval_key)


def weights_key(encoder: Any, base: dict[str, Any], applied: dict[str, Any]) -> str:
    """The content key of an encoder's weights with ``applied`` loaded over ``base``: its
    identity plus the bytes of every applied tensor that differs from the base one. Equal
    weights get equal keys whichever merge made them; the base model's key has no tensors."""
    import hashlib

    import torch

    digest = hashlib.sha256(base_key(encoder).encode())
    for name in sorted(applied):
        tensor = applied[name].detach().cpu().contiguous()
        if torch.equal(tensor, base[name]):
            continue
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return "weights-" + digest.hexdigest()[:20]


def _checked_embeddings(variant: Variant, X: Any, rows: int) -> np.ndarray:
    """An encoder's output as float32 (rows, dim), all finite, or a one-line error."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != rows or X.shape[1] < 1:
        raise ValueError(f"encoder {variant.encoder.name!r} returned embeddings of shape "
                         f"{X.shape}, expected ({rows}, dim); fix its Backbone.embed/encode")
    X = X.astype(np.float32, copy=False)
    bad = int((~np.isfinite(X)).any(axis=1).sum())
    if bad:
        by = f"merge {variant.merge.name!r} on " if variant.merge else ""
        raise ValueError(f"{by}encoder {variant.encoder.name!r} gave NaN or inf embeddings "
                         f"for {bad} of {rows} sequences; fix the plugin (for an encoder "
                         "with a precision parameter, try precision=fp32)")
    return X


def _checked_stats(variant: Variant, stats: Any) -> dict[str, float]:
    name = variant.merge.name if variant.merge else "none"
    try:
        out = {str(k): float(v) for k, v in dict(stats).items()}
    except (TypeError, ValueError):
        raise ValueError(f"merge {name!r} returned stats {stats!r}; expected a dict of "
                         "name -> number") from None
    return out


def _checked_merge(variant: Variant, base: dict[str, Any], merged: Any) -> dict:
    name = variant.merge.name if variant.merge else "none"
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
