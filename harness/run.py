"""Executing a plan: for every cell not stored, get the variant's embeddings (train, merge and
embed what is missing), score them, store each piece as it is done.

Work is grouped so that each backbone loads once per process; a cell whose scores are all in
the store, and whose embeddings load and verify, is reused without loading a backbone; a cell
that fails is recorded with its reason and nothing it produced is stored, so the next run
retries it.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import keys, oracle
from harness.api import Backbone, HarnessError
from harness.extras import Extra, extra_samples
from harness.params import label
from harness.plan import Cell, Plan, Variant
from harness.samples import eval_sample
from harness.scoring import Metrics, MetricsRaised, checked_backbone, checked_embeddings
from harness.store.faults import is_machine_fault
from harness.store.records import RunStore
from harness.threads import one_blas_thread
from harness.timing import stage
from harness.weights import Weights


class FailFast(Exception):
    """Raised to stop a run at its first failed cell (``--fail-fast``)."""


@dataclass
class Summary:
    computed: int = 0
    reused: int = 0
    failed: int = 0  # cells, and the faults outside any cell (``left_out``)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # what, error, trace
    left_out: int = 0  # tasks whose labels the analysis could not use (``fault``)
    notes: list[str] = field(default_factory=list)  # said once after the run (Ray nodes)

    def fault(self, what: str, error: str, trace: str = "") -> None:
        """A failure outside any cell (a task left out of the analysis): reported like a failed
        cell, and the run exits 1, but not counted among the cells."""
        self.failed += 1
        self.left_out += 1
        self.failures.append((what, error, trace))

    def line(self) -> str:
        out = (f"cells: {self.computed} computed, {self.reused} reused, "
               f"{self.failed - self.left_out} failed")
        return out + (f"; {self.left_out} task(s) left out of the analysis"
                      if self.left_out else "")


def pick_device(requested: str = "auto") -> str:
    """``auto``: CUDA when available, else the CPU. A named device must exist and compute here
    (torch puts a number on it and reads it back): any other (``mps`` where there is none,
    ``cuda:7`` on a machine with one GPU, ``meta``) is a usage error, not failed cells."""
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
    try:
        torch.ones(1, device=requested).sum().item()
    except Exception as err:  # torch raises several kinds here, each with pages of text
        why = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0][:120]
        raise HarnessError(f"--device {requested!r} is not available here ({why}); use auto "
                           "or cpu") from None
    return requested


def describe(variant: Variant) -> str:
    parts = [label(variant.encoder)]
    if variant.adapter is not None and variant.train_task is not None:
        parts.append(f"{label(variant.adapter)}@{variant.train_task.name}/seed{variant.seed}")
    elif variant.adapter is not None and variant.run_tasks:
        parts.append(f"{label(variant.adapter)}@{'+'.join(variant.merged_names)}"
                     f"/seed{variant.seed}")
    if variant.merge is not None:
        parts.append(label(variant.merge))
    return " + ".join(parts)


class Runner:
    def __init__(self, plan: Plan, store: RunStore, run_id: int, device: str = "cpu",
                 fail_fast: bool = False, advance: Callable[[int], None] = lambda n: None,
                 extras: dict[str, list[Extra]] | None = None):
        self.plan, self.store, self.run_id, self.device = plan, store, run_id, device
        self.fail_fast, self.advance = fail_fast, advance
        self.summary = Summary()
        self.metrics = Metrics(plan.metrics)
        self.weights = Weights(plan, store)
        self.samples = {t.name: eval_sample(t, plan.profile, plan.seed) for t in plan.tasks}
        self.labels = {t.name: np.array([t.label(s) for s in self.samples[t.name]])
                       for t in plan.tasks}
        self.eval_keys = {t.name: keys.eval_key(t, plan.profile, plan.seed) for t in plan.tasks}
        self.where = (plan.profile.name, plan.seed, run_id)
        self.stored: dict[str, set[str]] = {}  # cell -> metric keys already in the store
        self._merges: dict[str, bool] = {}  # merged variant -> its statistics are stored
        #: variant -> the samples it embeds beside its cells (fit samples, claim 1's larger
        #: sample: ``extra_samples`` of the whole plan, which a Ray job's part of it passes)
        self.extras = extra_samples(plan) if extras is None else extras

    def run(self) -> Summary:
        self.run_cells(self.pending())
        return self.summary

    def pending(self) -> dict[str, list[Cell]]:
        """Record the plan's variants; count the cells whose scores are all stored and whose
        embeddings load and verify as reused; return the rest by variant key (what
        ``run_cells`` computes: a cell whose embeddings were lost or damaged gets them again,
        for the analyses and plots that read them)."""
        for variant in self.plan.variants:
            self.store.put_variant(variant.record(self.plan.profile))
        todo: dict[str, list[Cell]] = {}
        for cell in self.plan.cells:
            self.stored[cell.key] = self.store.stored_metrics(cell.key) & self.metrics.keys
            if self.stored[cell.key] == self.metrics.keys and self.merge_known(cell.variant) \
                    and self.store.load_embeddings(self._emb_key(cell.variant, cell),
                                                   len(self.samples[cell.task.name])
                                                   ) is not None:
                self.summary.reused += 1
                self.advance(1)
            else:
                todo.setdefault(cell.variant.key, []).append(cell)
        for variant in self.plan.variants:  # its cells stored, its extra samples not
            if self._extras_missing(variant):
                todo.setdefault(variant.key, [])
        return todo

    def _extras_missing(self, variant: Variant) -> list[Extra]:
        """The extra samples (``harness.extras``) whose embeddings ``variant`` should have and
        has not."""
        return [x for x in self.extras.get(variant.key, []) if self.store.load_embeddings(
            keys.embedding_key(variant.key, x.key), len(x.seqs)) is None]

    def merge_known(self, variant: Variant) -> bool:
        """Whether what a merged variant's merge reported about itself is stored: its artifact
        verifies (and its database row, if lost, is restored from it). Otherwise its cells
        are not reused: the merge runs again, so that nothing the page shows is lost."""
        if variant.merge is None or variant.adapter is None:
            return True
        if variant.key not in self._merges:
            found = self.store.load_merge_stats(variant.key)
            if found is not None and found[0] is not None:
                self.store.put_merge_stats(variant.key, found[0])  # nothing if stored
            self._merges[variant.key] = found is not None and not oracle.missing(
                self.plan.profile, variant, found[0])
        return self._merges[variant.key]

    def run_cells(self, todo: dict[str, list[Cell]]) -> None:
        """Compute ``todo`` (variant key -> cells), one backbone load per encoder."""
        by_encoder: dict[str, list[Variant]] = {}
        for variant in self.plan.variants:
            if variant.key in todo:
                by_encoder.setdefault(keys.encoder_key(variant.encoder), []).append(variant)
        for variants in by_encoder.values():
            self._run_encoder(variants, todo)

    def _run_encoder(self, variants: list[Variant], todo: dict[str, list[Cell]]) -> None:
        backbone: Backbone | None = None

        def get_backbone() -> Backbone:
            nonlocal backbone
            if backbone is None:
                encoder = variants[0].encoder
                with stage("loading"):
                    backbone = checked_backbone(encoder.name, encoder.load(self.device))
            return backbone

        for i, variant in enumerate(variants):
            cells = todo[variant.key]
            # the training runs of the later variants, soonest first
            self.weights.keep(variant, list(dict.fromkeys(
                key for v in variants[i + 1:] for _, key in v.runs)))
            try:
                embeddings = self._embeddings(variant, cells, get_backbone)
            except FailFast:
                raise
            except (Exception, SystemExit) as err:  # a plugin's sys.exit() fails its cells
                for cell in cells:
                    self.fail(cell, err)
                continue
            with stage("scoring"), one_blas_thread():
                for cell in cells:
                    self._score(cell, embeddings[cell.task.name])
        self.weights.clear()

    def _embeddings(self, variant: Variant, cells: list[Cell],
                    get_backbone: Callable[[], Backbone]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        missing = []
        for cell in cells:
            cached = self.store.load_embeddings(self._emb_key(variant, cell),
                                                len(self.samples[cell.task.name]))
            if cached is None:
                missing.append(cell)
            else:
                out[cell.task.name] = cached
        extras = self._extras_missing(variant)
        if missing or extras or not self.merge_known(variant):
            backbone = get_backbone()
            with self.weights.applied(backbone, variant) as weights:
                # variants whose merged weights are equal (SLERP falling back to linear, t=0
                # or t=1 endpoints) share one embedding pass
                shared = {cell.task.name: keys.embedding_key(
                    weights, self.eval_keys[cell.task.name]) for cell in missing}
                found = {name: self.store.load_embeddings(key, len(self.samples[name]))
                         for name, key in shared.items()}
                self._merges[variant.key] = True  # merged: its statistics are stored
                todo_names = [name for name, X in found.items() if X is None]
                for name, part in self._embed(variant, backbone, todo_names, self.samples):
                    self.store.save_embeddings(shared[name], part)
                    found[name] = part
                for kind in dict.fromkeys(x.kind for x in extras):  # a call per kind
                    same = {x.key: x.seqs for x in extras if x.kind == kind}
                    for key, part in self._embed(variant, backbone, list(same), same):
                        self.store.save_embeddings(keys.embedding_key(variant.key, key), part)
                for cell in missing:
                    X = found[cell.task.name]
                    assert X is not None
                    self.store.link_embeddings(self._emb_key(variant, cell),
                                               shared[cell.task.name], X)
                    out[cell.task.name] = X
        for X in out.values():  # stored by an older version: never scored
            checked_embeddings(variant, X, len(X))
        return out

    @staticmethod
    def _embed(variant: Variant, backbone: Backbone, names: list[str],
               samples: dict[str, list[Any]]) -> list[tuple[str, np.ndarray]]:
        """The embeddings of the named samples, in one call (batches grouped by length over
        every sample), checked, one array per name."""
        if not names:
            return []
        every = [s for name in names for s in samples[name]]
        with stage("embedding"):
            X_all = backbone.embed(every)
        X_all = checked_embeddings(variant, X_all, len(every))
        out, start = [], 0
        for name in names:
            n = len(samples[name])
            out.append((name, X_all[start:start + n].copy()))
            start += n
        return out

    def _emb_key(self, variant: Variant, cell: Cell) -> str:
        return keys.embedding_key(variant.key, self.eval_keys[cell.task.name])

    def _score(self, cell: Cell, X: np.ndarray) -> None:
        eval_key = self.eval_keys[cell.task.name]
        try:
            rows, samples = self.metrics.score(X, self.labels[cell.task.name], eval_key,
                                               self.stored.get(cell.key, set()),
                                               task=cell.task.name, seed=self.plan.seed)
        except MetricsRaised as err:  # the other metrics are stored; the re-run scores the rest
            self.store.put_scores(cell.key, cell.variant.key, cell.task.name, self.where,
                                  err.rows, err.samples)
            self.fail(cell, err)  # after put_scores, which clears the cell's failure
            return
        except (Exception, SystemExit) as err:
            self.fail(cell, err)
            return
        self.store.put_scores(cell.key, cell.variant.key, cell.task.name, self.where, rows,
                              samples)
        self.summary.computed += 1
        self.advance(1)

    def fail(self, cell: Cell, err: BaseException) -> None:
        if is_machine_fault(err):  # a full disk fails every cell after it: stop, resumable
            raise err
        what = f"{describe(cell.variant)} on {cell.task.name}"
        if isinstance(err, MetricsRaised):  # it names each metric that raised, with its error
            message, trace = str(err), err.trace
        else:
            message, trace = f"{type(err).__name__}: {err}", "".join(
                traceback.format_exception(err))
        message, trace = " ".join(message.split()), trace[-4000:]  # one line
        self.store.put_failure(cell.key, cell.variant.key, cell.task.name,
                               message + "\n" + trace, self.where)
        self.summary.failed += 1
        self.summary.failures.append((what, message, trace))
        self.advance(1)
        if self.fail_fast:
            raise FailFast(f"{what}: {message}")
