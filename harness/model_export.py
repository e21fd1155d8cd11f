"""``harness export-model VARIANT --out DIR``: one variant of a store as a sentence-transformers
model folder, with a model card of its lineage and scores.

The variant is found in the plan of the selection given (the options of ``harness run``), or,
with none given, of each run the store recorded (its command line, newest first), then of
``--all``. Its weights are made as a run makes them: its training runs' checkpoints load from
the store (never retrained here: a missing one is an error that says how to recompute it) and
its merge runs again, choosing λ on the same held-out samples (deterministic: the same tensors).
The backbone writes the folder (``Backbone.save_sentence_transformer``); the folder is then
loaded with sentence-transformers and its embeddings of the eval samples compared with the
ones the store holds for the variant, and the smallest cosine is written in the card. The
folder appears whole or not at all (written through a temporary folder,
``outpaths.write_folder``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness import keys
from harness.api import Backbone, HarnessError
from harness.model_card import card
from harness.outpaths import checked_folder, write_folder
from harness.plan import Plan, Variant, plan_request
from harness.registry import Registry
from harness.run import describe
from harness.samples import eval_sample
from harness.selection import Request
from harness.store import Store
from harness.weights import Weights


def requests(store: Store, given: Request | None,
             parse: Callable[[list[str]], Request | None]) -> list[Request]:
    """The selections to look for the variant in: ``given``, or every stored run's (newest
    first, those whose command line parses) and then ``--all``."""
    if given is not None:
        return [given]
    out = []
    for run in sorted(store.runs(), key=lambda r: r.id, reverse=True):
        found = parse(run.argv[1:]) if run.argv else None
        if found is not None and found not in out:
            out.append(found)
    return out + [r for r in [Request(all=True)] if r not in out]


def find(registry: Registry, store: Store, ref: str, given: Request | None,
         parse: Callable[[list[str]], Request | None], device: str) -> tuple[Plan, Variant]:
    """The plan and variant whose key is ``ref`` (or starts with it, at least 8 characters)."""
    if len(ref) < 8:
        raise HarnessError(f"variant {ref!r}: give its key as `harness export` writes it (at "
                           "least its first 8 characters)")
    for request in requests(store, given, parse):
        try:
            plan = plan_request(registry, request, device)
        except HarnessError:
            if given is not None:
                raise
            continue  # a recorded run with a plugin not loaded now: not this one
        hits = [v for v in plan.variants if v.key.startswith(ref)]
        if len(hits) > 1:
            raise HarnessError(f"variant {ref!r} is ambiguous ({len(hits)} variants start with "
                               "it); give more of its key")
        if hits:
            return plan, hits[0]
    raise HarnessError(f"unknown variant {ref!r}: no run of this store on this machine plans it "
                       "(keys are in `harness export`; precision=auto settles per machine kind, "
                       "so export on the kind of machine that ran it or pass its selection)")


def check_runs(store: Store, plan: Plan, variant: Variant) -> None:
    """Every training run the variant's weights come from has its checkpoints in the store."""
    for seed, key in variant.runs:
        if store.load_checkpoints(key) is None:
            raise HarnessError(
                f"the checkpoints of variant {variant.key[:12]}'s training run (seed {seed}) are "
                "no longer in the store; `harness run` with the selection that made it "
                f"(profile {plan.profile.name}) trains them again, then export")


def export_model(registry: Registry, store: Store, ref: str, out: Path,
                 given: Request | None, parse: Callable[[list[str]], Request | None],
                 device: str, say: Callable[[str], None]) -> float:
    """Write the variant ``ref`` as a sentence-transformers folder at ``out``; returns the
    smallest cosine between its embeddings and the stored ones."""
    checked_folder(out, Path(store.root))
    plan, variant = find(registry, store, ref, given, parse, device)
    check_runs(store, plan, variant)
    stored = stored_embeddings(store, plan, variant)
    backbone = variant.encoder.load(device)
    if type(backbone).save_sentence_transformer is Backbone.save_sentence_transformer:
        raise HarnessError(f"encoder {variant.encoder.name!r} cannot be exported as a "
                           "sentence-transformers model (its backbone has no "
                           "save_sentence_transformer)")
    found: list[float] = []

    def fill(folder: Path) -> None:
        with Weights(plan, store).applied(backbone, variant):
            backbone.save_sentence_transformer(folder)
        found.append(compare(folder, stored))
        (folder / "README.md").write_text(card(store, plan, variant, describe(variant),
                                               found[0], len(stored[1])))

    write_folder(out, fill)
    cosine = found[0]
    say(f"export-model: {out} ({describe(variant)}; cosine to the stored embeddings >= "
        f"{cosine:.6f} over {len(stored[1])} sequences)")
    return cosine


def stored_embeddings(store: Store, plan: Plan, variant: Variant
                      ) -> tuple[list[str], np.ndarray]:
    """The texts of the eval samples and the store's embeddings of them for ``variant``."""
    from harness.api import render

    texts, parts = [], []
    for task in plan.tasks:
        seqs = eval_sample(task, plan.profile, plan.seed)
        X = store.load_embeddings(keys.embedding_key(
            variant.key, keys.eval_key(task, plan.profile, plan.seed)), len(seqs))
        if X is None:
            continue
        texts += [render(s) for s in seqs]
        parts.append(X)
    if not parts:
        raise HarnessError(f"variant {variant.key[:12]} has no stored embeddings to check the "
                           "export against; `harness run` it first")
    return texts, np.concatenate(parts)


def compare(folder: Path, stored: tuple[list[str], np.ndarray]) -> float:
    """The smallest cosine between the folder's embeddings (loaded by sentence-transformers,
    offline) and the stored ones, row by row."""
    texts, X = stored
    Y = encode_with_sentence_transformers(folder, texts)
    num = (X.astype(np.float64) * Y).sum(axis=1)
    den = np.linalg.norm(X.astype(np.float64), axis=1) * np.linalg.norm(Y, axis=1)
    return float(np.min(num / np.maximum(den, 1e-300)))


def encode_with_sentence_transformers(folder: Path, texts: list[str]) -> np.ndarray:
    from huggingface_hub.utils import disable_progress_bars
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging

    disable_progress_bars()  # no "Loading weights" bars on stderr: one line is the output
    logging.disable_progress_bar()

    model: Any = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return np.asarray(model.encode(texts, batch_size=64, convert_to_numpy=True),
                      dtype=np.float64)


def request_or_none(args: argparse.Namespace, kinds: tuple[str, ...]) -> Request | None:
    """The selection given on the command line, or None where none was."""
    if not (args.all or args.train_tasks or any(getattr(args, k) for k in kinds)):
        return None
    return Request(encoders=args.encoders, adapters=args.adapters, merges=args.merges,
                   tasks=args.tasks, metrics=args.metrics, train_tasks=args.train_tasks,
                   all=args.all, profile=args.profile, seed=args.seed, seeds=args.seeds)
