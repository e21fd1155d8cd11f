"""The contract of each kind of component, checked on tiny inputs: what a run relies on.

One function per kind raises ``ContractError`` (one line, naming what to fix) at the first
broken rule. Where a run checks the same rule, the check calls the run's own code
(``harness.samples.draw``, ``harness.analysis.pool_labels``, ``harness.scoring.checked_backbone``,
``checked_embeddings`` and ``Metrics``), so a component that passes here passes those checks in
a run. ``harness.check`` runs these over the registry (``harness check`` and
``harness.testing``); merges have theirs in ``harness.merge_contracts``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence as Seq
from typing import cast

import numpy as np

from harness.analysis import LabelFault, pool_labels
from harness.api import Adapter, Encoder, Merge, Metric, MetricUndefined, Sequence, Task
from harness.plan import Variant
from harness.samples import draw
from harness.scoring import (
    Metrics,
    MetricsRaised,
    checked_backbone,
    checked_embeddings,
    number,
    numbers,
)

#: sequences a task must label (a class index or None) without raising, beside other tasks'
EDGE_CASES: list[Sequence] = [(), (0,), (1,), (7, 7, 7), (0, 0, 0, 0), (2, 4, 8, 16),
                              (999, 1, 500), tuple(range(40)), (10**12, 3), (-3, -5, 7)]
#: what an encoder embeds: the first and last are equal, lengths differ
ENCODER_INPUTS: list[Sequence] = [(1, 2, 3, 4), (10, 20, 30, 40, 50, 60), (7, 11, 13, 29),
                                  (1, 2, 3, 4)]


class ContractError(Exception):
    """A broken contract: the message says which rule and what to fix."""


def _variant(encoder: Encoder | None = None, merge: Merge | None = None) -> Variant:
    """A stand-in variant for the run's own checks, which read only its encoder and merge."""
    return Variant("check", cast(Encoder, encoder), None, None, None, merge, None, "check")


# ---------------------------------------------------------------------------------------- tasks


def check_task(task: Task, others: Seq[tuple[Sequence, str]] = ()) -> None:
    """Samples are exact-sized, balanced, labelled and deterministic in the rng; ``label`` gives
    a class index or None on the edge cases and on ``others`` (other tasks' sequences, each
    with the task it was drawn for), never raising."""
    classes = tuple(task.classes)
    if not classes or len(set(classes)) != len(classes):
        raise ContractError(f"classes {classes!r}: declare distinct class names")
    for n in (0, 1, len(classes), 61):
        seqs = draw(task, n, random.Random(3))  # the run's check: exact size, labels, balance
        if list(task.sample(n, random.Random(3))) != seqs:
            raise ContractError(f"sample({n}) gave other sequences for the same rng; take all "
                                "randomness from rng")
        bad = next((s for s in seqs if not all(isinstance(x, int) for x in s)), None)
        if bad is not None:
            raise ContractError(f"sample({n}) returned {bad!r}; sequences hold ints")
    if task.sample(60, random.Random(3)) == task.sample(60, random.Random(4)):
        raise ContractError("sample(60) gave the same sequences for two seeds; draw from rng")
    try:
        pool_labels(task, list(others))
        pool_labels(task, [(s, "edge cases") for s in EDGE_CASES])
    except LabelFault as fault:
        raise ContractError(f"{fault}; label() is defined on any sequence (return None where "
                            "the property does not apply)") from None


# -------------------------------------------------------------------------------------- metrics


def blobs(classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """20 rows per class around well-separated centres in 8 dimensions."""
    y = np.repeat(np.arange(classes), 20)
    centres = rng.normal(size=(classes, 8)) * 5
    return (centres[y] + rng.normal(size=(len(y), 8))).astype(np.float32), y


def check_metric(metric: Metric) -> None:
    """On two classes and on three: a real number (the run's own ``number``: not a string or
    a bool), finite, deterministic in the rng, scored by the run's own code (``Metrics``:
    per_sample and resampled shapes) without raising, and a decomposing metric's per-row mean
    is its score; constant embeddings give a finite value or raise ``MetricUndefined``, never
    NaN."""
    for classes in (2, 3):
        X, y = blobs(classes, np.random.default_rng(classes))
        first = number(metric.name, "score", metric.score(X, y, np.random.default_rng(1)))
        if not math.isfinite(first):
            raise ContractError(f"score on {classes} classes is {first}; raise MetricUndefined "
                                "where the value is undefined")
        if number(metric.name, "score", metric.score(X, y, np.random.default_rng(1))) != first:
            raise ContractError(f"score on {classes} classes differs for the same rng; take all "
                                "randomness from rng")
        try:
            rows, _ = Metrics([metric]).score(X, y, "check", set(), f"check-{classes}", 0)
        except MetricsRaised as err:
            raise ContractError(f"raised in a run's scoring on {classes} classes: {err}") from None
        if rows and rows[0][3]:
            raise ContractError(f"in a run's scoring on {classes} classes: {rows[0][3]}")
        per = metric.per_sample(X, y, np.random.default_rng(1))
        if per is not None:
            per = numbers(metric.name, "per_sample", per)
            finite = per[np.isfinite(per)]
            if not finite.size or not math.isclose(float(finite.mean()), first, abs_tol=1e-9):
                raise ContractError(f"per_sample's finite mean on {classes} classes is not its "
                                    f"score {first:.6g}; the mean of the per-row values must be "
                                    "the score for the same rng")
    X, y = blobs(3, np.random.default_rng(3))
    try:
        value = number(metric.name, "score",
                       metric.score(np.ones_like(X), y, np.random.default_rng(1)))
    except MetricUndefined as why:
        if not str(why):
            raise ContractError("raised MetricUndefined without a reason on constant "
                                "embeddings; say why") from None
        return
    if not math.isfinite(value):
        raise ContractError(f"returned {value} on constant embeddings; raise "
                            "MetricUndefined(reason) where the value is undefined")


# ------------------------------------------------------------------------------------- encoders


def check_encoder(encoder: Encoder, device: str = "cpu") -> None:
    """``encode`` and ``embed`` give one finite row per sequence (the run's own checks), equal
    rows for equal sequences, the same embeddings twice; weights round-trip."""
    import torch

    if encoder.family not in ("non-llm", "llm"):
        raise ContractError(f"family is {encoder.family!r}; expected 'non-llm' or 'llm'")
    backbone = checked_backbone(encoder.name, encoder.load(device))
    seqs = ENCODER_INPUTS
    with torch.no_grad():
        backbone.encode(seqs[:2])  # checked: one row per sequence
    variant = _variant(encoder=encoder)
    X = checked_embeddings(variant, backbone.embed(seqs, batch_size=2), len(seqs))
    if not np.allclose(X[0], X[-1], atol=1e-5):
        raise ContractError("embedded one sequence twice with different rows; an encoder is "
                            "deterministic (no dropout at eval, no random pooling)")
    if not np.allclose(checked_embeddings(variant, backbone.embed(seqs, batch_size=2),
                                          len(seqs)), X, atol=1e-5):
        raise ContractError("two embedding passes of the same batches differ; an encoder is "
                            "deterministic")
    weights = backbone.weights()
    floats = sorted(k for k, v in weights.items() if v.is_floating_point())
    if not floats:
        raise ContractError("weights() holds no floating-point tensor for a merge to combine")
    key = floats[0]
    saved = weights[key].detach().clone()
    backbone.load_weights({key: torch.zeros_like(saved)})
    if torch.count_nonzero(backbone.weights()[key]):
        raise ContractError(f"load_weights did not overwrite {key!r}; it copies the given "
                            "tensors into the module")
    backbone.load_weights({key: saved})
    # the same batches: under bf16 autocast (AMX, CUDA) padding changes the rounding (~1e-3)
    if not np.allclose(backbone.embed(seqs, batch_size=2), X, atol=1e-5):
        raise ContractError(f"loading back {key!r} did not restore the embeddings")


# ------------------------------------------------------------------------------------- adapters


def check_adapter(adapter: Adapter, encoders: Seq[Encoder]) -> None:
    """``supports`` answers True or a reason for every encoder."""
    for encoder in encoders:
        answer = adapter.supports(encoder)
        if not (answer is True or (isinstance(answer, str) and answer)):
            raise ContractError(f"supports(encoder {encoder.name!r}) returned {answer!r}; "
                                "expected True or a string saying why not")
