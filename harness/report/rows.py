"""The leaderboard's rows: one per variant aggregated over training seeds, loaded from a store
through its named reads (``ResultsReader``) alone."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import keys, oracle
from harness.reference import NONE
from harness.store.records import AnalysisRecord, ResultsReader, ScoreRecord, VariantRecord

#: the analyses of claim 1's larger sample (``harness.claim_sample`` writes them): a base's mean
#: on it with its interval, and its rows, whose per-row values are kept beside the embeddings
CLAIM, CLAIM_ROWS = "claim", "claim-rows"


@dataclass
class Row:
    """One variant aggregated over seeds."""

    group: str
    encoder: str
    adapter: str
    train_task: str | None
    merge: str
    family: str = ""
    #: trained (an adapter applied); False for an encoder's base model
    trained: bool = False
    #: merged (a merge applied); False for the unmerged final checkpoint and for bases
    merged: bool = False
    #: what the components declared (``plan.roles_of``)
    roles: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    variants: set[str] = field(default_factory=set)
    # (task, metric) -> values over seeds; per-row values over seeds where the metric has them
    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    samples: dict[tuple[str, str], list[np.ndarray]] = field(default_factory=dict)
    cka: tuple[float, float, float] | None = None  # (value, low, high), mean over seeds
    encoded: dict[str, float] = field(default_factory=dict)
    #: metric -> (gain, low, high) on the train task's fit sample, one per seed
    #: (``harness.learnability``)
    fit: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    #: (task, metric) -> (sample key, per-row values) on a compositional task's larger sample
    #: for claim 1, base models only (``harness.claim_sample``)
    claim: dict[tuple[str, str], tuple[str, np.ndarray]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        parts = [self.encoder]
        if self.train_task:
            parts.append(f"{self.adapter}@{self.train_task}")
        if self.merged:
            parts.append(self.merge)
        return " + ".join(parts)

    @property
    def merge_kind(self) -> str:
        """The merge's name ("" when unmerged)."""
        return self.merge.split(":", 1)[0] if self.merged else ""

    @property
    def from_scratch(self) -> bool:
        return bool(self.roles.get("from_scratch"))

    @property
    def parameter_efficient(self) -> bool:
        return bool(self.roles.get("parameter_efficient"))


@dataclass
class Loaded:
    rows: list[Row]
    tasks: list[str]
    metrics: list[str]
    #: metric label -> higher is better (as stored with its scores; True where not recorded)
    higher: dict[str, bool]


def merge_label(v: VariantRecord) -> str:
    """A variant's merge label without its replicate seed (``Merge.replicates``): the draws of
    one random merge share a row."""
    name = v.roles.get("replicate") if v.roles else None
    if not name or ":" not in v.merge:
        return v.merge
    head, _, params = v.merge.partition(":")
    kept = [p for p in params.split(",") if not p.startswith(f"{name}=")]
    return head + (":" + ",".join(kept) if kept else "")


def encoder_label(v: VariantRecord) -> str:
    """A variant's encoder as its row names it: its label, with the precision added where the
    label leaves it out and it is not fp32 (a variant stored before precision was settled says
    ``precision=auto``), so that rows of two precisions are never one row."""
    fmt = v.precision
    if fmt == "fp32" or f"precision={fmt}" in v.encoder:
        return v.encoder
    return v.encoder + ("," if ":" in v.encoder else ":") + f"precision={fmt}"


def _row(v: VariantRecord) -> Row:
    # a trained variant always has a train task; merged: the identity of a merge is stored
    # (the label of an unmerged variant is the reference's name, for info that does not parse)
    merged = v.info["merge"] is not None if "merge" in v.info else v.merge != NONE
    return Row(v.group, encoder_label(v), v.adapter, v.train_task, merge_label(v), v.family,
               trained=v.train_task is not None, merged=merged, roles=dict(v.roles))


def load_rows(store: ResultsReader, profile: str, seed: int, only: set[str] | None = None
              ) -> Loaded:
    """The rows of a profile and eval seed, unordered; ``only``: these variant keys."""
    variants = store.variants()
    rows: dict[tuple, Row] = {}
    by_variant: dict[str, Row] = {}
    tasks: set[str] = set()
    metrics: set[str] = set()
    higher: dict[str, bool] = {}
    cells: dict[tuple[str, str], tuple[Row, str, str]] = {}
    latest: dict[tuple[str, str], ScoreRecord] = {}  # (cell, metric): a newer one replaces
    for s in store.scores(profile, seed):
        if s.variant in variants and (only is None or s.variant in only):
            latest[(s.cell, s.metric)] = s
    for s in sorted(latest.values(), key=lambda s: (  # a row's replicates: in variant order
            variants[s.variant].seed if variants[s.variant].seed is not None else -1,
            s.variant, s.cell, s.metric)):
        v = variants[s.variant]
        row = rows.setdefault((encoder_label(v), v.adapter, v.train_task, merge_label(v)),
                              _row(v))
        if v.seed is not None and v.seed not in row.seeds:
            row.seeds.append(v.seed)
        row.variants.add(s.variant)
        by_variant[s.variant] = row
        row.values.setdefault((s.task, s.metric), []).append(s.value)
        cells[(s.cell, s.metric_key)] = (row, s.task, s.metric)
        tasks.add(s.task)
        metrics.add(s.metric)
        if s.higher_is_better is not None:
            higher.setdefault(s.metric, s.higher_is_better)
    found = store.samples({c for c, _ in cells})
    for key, (row, task, metric) in cells.items():  # in seed order, as ``values`` is
        if key in found:
            row.samples.setdefault((task, metric), []).append(found[key])
    _add_analyses(store, profile, seed, by_variant, sorted(tasks))
    return Loaded(list(rows.values()), sorted(tasks), sorted(metrics),
                  {m: higher.get(m, True) for m in sorted(metrics)})


def _add_analyses(store: ResultsReader, profile: str, seed: int, by_variant: dict[str, Row],
                  tasks: list[str]) -> None:
    task_set = json.dumps(tasks)
    cka: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    enc: dict[tuple[str, str], list[float]] = defaultdict(list)
    fits: dict[tuple[str, str], AnalysisRecord] = {}  # the latest run's (its fit sample's)
    claims: dict[tuple[str, str, str], AnalysisRecord] = {}  # the latest run's, per task
    for a in store.analyses(profile, seed):
        if a.kind == "fit" and a.variant in by_variant:  # on its train task's fit sample
            if (a.variant, a.name) not in fits or a.run_id > fits[(a.variant, a.name)].run_id:
                fits[(a.variant, a.name)] = a
            continue
        if a.kind == CLAIM_ROWS and a.variant in by_variant and a.tasks:
            at = (a.variant, a.tasks[0], a.name)
            if at not in claims or a.run_id > claims[at].run_id:
                claims[at] = a
            continue
        if a.variant not in by_variant or json.dumps(sorted(a.tasks)) != task_set:
            continue  # analysed on another pool than the one shown
        if a.kind == "cka":
            cka[a.variant].append((a.value, a.lo, a.hi))
        elif a.kind == "encoded":
            enc[(a.variant, a.name)].append(a.value)
    for variant, row in by_variant.items():
        if variant in cka and row.cka is None:
            found = [c for v in sorted(row.variants) for c in cka.get(v, [])]
            row.cka = (statistics.fmean(c[0] for c in found),
                       statistics.fmean(c[1] for c in found),
                       statistics.fmean(c[2] for c in found))
    for (variant, name), a in sorted(fits.items()):
        by_variant[variant].fit.setdefault(name, []).append((a.value, a.lo, a.hi))
    for (variant, task, name), a in sorted(claims.items()):  # its per-row values, if kept
        kept = store.load_embeddings(keys.claim_values_key(variant, a.pool, name),
                                     int(a.value)) if a.value >= 1 else None
        if kept is not None:
            by_variant[variant].claim[(task, name)] = (a.pool, kept[:, 0].astype(np.float64))
    for (variant, name), values in enc.items():
        by_variant[variant].encoded.setdefault(name, values[0])


#: the merge stats the harness adds across tasks (``harness.weights``): shown on their own
COEFFICIENT, OUTSIDE = "coefficient on ", "outside task vectors"


def coefficients(row: Row, stats: dict[str, dict[str, float]]
                 ) -> tuple[dict[str, float], float | None]:
    """A cross-task merge's effective coefficient on each merged task's vector and the share
    of its merged task vector outside their span, each the mean over its seeds (and draws)."""
    found = [stats[v] for v in sorted(row.variants) if v in stats]
    per: dict[str, list[float]] = {}
    for s in found:
        for k, v in s.items():
            if k.startswith(COEFFICIENT) and math.isfinite(v):
                per.setdefault(k[len(COEFFICIENT):], []).append(v)
    outside = [s[OUTSIDE] for s in found if OUTSIDE in s and math.isfinite(s[OUTSIDE])]
    return ({t: statistics.fmean(v) for t, v in sorted(per.items())},
            statistics.fmean(outside) if outside else None)


def merge_note(row: Row, stats: dict[str, dict[str, float]]) -> str:
    """What a merge reported about itself (mean over seeds), e.g. SLERP's linear fallback;
    "—" when it reported nothing."""
    found = [stats[v] for v in sorted(row.variants) if v in stats]
    if not found:
        return "—"
    parts = []
    for k in sorted({k for s in found for k in s if not k.startswith(COEFFICIENT)
                     and k not in (OUTSIDE, oracle.COUNT) and oracle.parse(k) is None}):
        values = [s[k] for s in found if k in s and math.isfinite(s[k])]
        parts.append(f"{k} {statistics.fmean(values):.3g}" if values else f"{k} n/a")
    return ", ".join(parts)
