"""The cross-product of a selection as variants and cells, each under a content key.

A *variant* is encoder + adapter trained on a task with a seed + merge; every selected encoder's
base (no adapter) and every training run's unmerged final checkpoint (no merge) are always in
the plan, because every comparison is made against them. A *cell* is a variant scored on one
eval task's sample of the shared evaluation pool. Nothing here runs a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import keys
from harness.api import (
    PROFILES,
    REPLICATES,
    Adapter,
    Encoder,
    HarnessError,
    Merge,
    Metric,
    Profile,
    Task,
)
from harness.component import plugin_call
from harness.leaks import RULE
from harness.params import describe, label, params_of
from harness.reference import NONE
from harness.registry import Registry
from harness.samples import eval_sample, rule_changes
from harness.selection import Request, Selection, select
from harness.settle import settled
from harness.store.records import VariantRecord

#: the most training runs per variant (``--seeds``, a merge's ``runs``): far above any real use
#: (the paper's profile trains 3), low enough that a typo cannot plan without end
MAX_SEEDS = 100


@dataclass
class Variant:
    key: str
    encoder: Encoder
    adapter: Adapter | None
    train_task: Task | None
    seed: int | None
    merge: Merge | None
    train_key: str | None
    group: str
    #: (seed, train key) of every training run the merge pools, the variant's own first
    runs: list[tuple[int, str]] = field(default_factory=list)
    #: a cross-task merge (``over=tasks``): the task each of ``runs`` trained on, by name;
    #: empty for every other variant (its runs trained on ``train_task``)
    run_tasks: list[Task] = field(default_factory=list)

    def task_of(self, run: int) -> Task | None:
        """The task training run ``runs[run]`` trains on."""
        return self.run_tasks[run] if self.run_tasks else self.train_task

    @property
    def merged_names(self) -> list[str]:
        return [t.name for t in self.run_tasks]

    def record(self, profile: Profile) -> VariantRecord:
        train_task = "+".join(self.merged_names) if self.run_tasks else \
            self.train_task.name if self.train_task else None
        roles = roles_of(type(self.encoder), type(self.adapter) if self.adapter else None,
                         type(self.merge) if self.merge else None,
                         params_of(self.merge) if self.merge else {})
        if self.run_tasks:
            roles["tasks"] = self.merged_names
        with plugin_call(f"encoder {self.encoder.name!r}: number_format()"):
            number_format = self.encoder.number_format()
        return VariantRecord(
            key=self.key, encoder=label(self.encoder), family=self.encoder.family,
            adapter=label(self.adapter) if self.adapter else NONE,
            train_task=train_task, seed=self.seed,
            merge=label(self.merge) if self.merge else NONE, group=self.group,
            profile=profile.name if self.adapter else "",
            info={"encoder": keys.identity(self.encoder),
                  "precision": number_format,
                  "adapter": keys.identity(self.adapter) if self.adapter else None,
                  "train_task": keys.identity(self.train_task) if self.train_task else None,
                  "merge": keys.identity(self.merge) if self.merge else None,
                  "profile": {k: v for k, v in dataclasses.asdict(profile).items()
                              if k != "oracle"} if self.adapter else None,  # not the weights
                  **({"merged_tasks": [keys.identity(t) for t in self.run_tasks]}
                     if self.run_tasks else {})},
            roles=roles)


@dataclass
class Cell:
    key: str
    variant: Variant
    task: Task


@dataclass
class Plan:
    profile: Profile
    seed: int
    variants: list[Variant]
    cells: list[Cell]
    tasks: list[Task]
    metrics: list[Metric]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: metric name -> metric, for merges that score candidates (``Merge.scored_by``)
    scorers: dict[str, Metric] = field(default_factory=dict)
    #: (identity as selected, parameters once settled) of each encoder ``settled`` changed:
    #: what a Ray worker applies so that it plans the driver's keys
    pins: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)


def roles_of(encoder: type[Any] | None, adapter: type[Any] | None, merge: type[Any] | None,
             merge_params: dict[str, Any]) -> dict[str, Any]:
    """What a variant's components declared about themselves, as the report reads it: the
    encoder's ``from_scratch``, the adapter's ``parameter_efficient``, the merge's name, its
    ``control`` and, for a merge that ``interpolates`` with every other parameter at its
    default, that parameter's value as ``t`` (a point of a sweep from the base to the
    unmerged model)."""
    roles: dict[str, Any] = {"from_scratch": bool(getattr(encoder, "from_scratch", False)),
                             "parameter_efficient": bool(adapter and getattr(
                                 adapter, "parameter_efficient", False)),
                             "merge": merge.name if merge else None,
                             "control": (getattr(merge, "control", "") or "") if merge else "",
                             "t": None}
    replicate = str(getattr(merge, "replicates", "") or "") if merge is not None else ""
    if replicate:
        roles["replicate"] = replicate
    sweep = (getattr(merge, "interpolates", "") or "") if merge else ""
    if merge is not None and sweep in merge_params:
        defaults = {d["name"]: d["default"] for d in describe(merge)}
        if all(v == defaults.get(k) for k, v in merge_params.items() if k != sweep):
            roles["t"] = float(merge_params[sweep])
    return roles


def group_of(encoder: Encoder, adapter: Adapter | None, merge: Merge | None) -> str:
    """The family row a variant belongs to in the leaderboard, from what its components
    declare: the encoder's family and ``from_scratch``, the adapter's ``kind``."""
    llm = encoder.family == "llm"
    if adapter is None:
        if encoder.from_scratch:
            return "non-LLM random init"
        return "LLM base" if llm else "non-LLM base"
    kind = adapter.kind or adapter.name
    if llm:
        trained = f"LLM + {kind}"
    else:
        trained = "non-LLM from scratch" if encoder.from_scratch else f"non-LLM fine-tuned ({kind})"
    if merge is None:
        return trained
    across = " across tasks" if merge.ingredients()[0] == "tasks" else ""
    return f"{trained} + {merge.name}{across}"


def replicated(merge: Merge, draws: int = REPLICATES) -> list[Merge]:
    """A merge with a random seed (``Merge.replicates``) left at its default, as ``draws``
    merges with consecutive seeds; any other merge as itself."""
    name = getattr(merge, "replicates", "") or ""
    if not name or not dataclasses.is_dataclass(merge):
        return [merge]
    default = {f.name: f.default for f in dataclasses.fields(merge)}.get(name)
    if not isinstance(default, int) or getattr(merge, name) != default:
        return [merge]
    return [merge, *(dataclasses.replace(merge, **{name: default + i})  # type: ignore[misc]
                     for i in range(1, draws))]


def merged_tasks(merge: Merge, tasks: list[Task], train_tasks: list[Task]) -> list[Task]:
    """The tasks a cross-task merge combines, in name order: those it names (each must be an
    eval task of the run, where its retention is measured), else the run's train tasks."""
    with plugin_call(f"merge {merge.name!r}: merged_tasks()"):
        names = list(merge.merged_tasks())
    by_name = {t.name: t for t in tasks}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise HarnessError(f"merge {label(merge)!r}: task {unknown[0]!r} is not an eval "
                               f"task of this run; add --task {unknown[0]}")
        chosen = [by_name[n] for n in names]
    else:
        chosen = [t for t in train_tasks if t.name in by_name]
    return sorted(chosen, key=lambda t: t.name)


def build_plan(registry: Registry, sel: Selection, profile: Profile, seed: int,
               seeds: int | None = None, settle: Callable[[Encoder], Encoder] | None = None
               ) -> Plan:
    """``seeds``: training seeds per variant; None: the profile's (``Profile.seeds_for``).
    ``settle``: makes each encoder's machine-dependent choices before any key (default: its
    ``settled("cpu")``)."""
    if not sel.encoders:
        raise HarnessError("no encoder selected; pass --encoder NAME or --all")
    pins: list[tuple[dict[str, Any], dict[str, Any]]] = []
    sel = dataclasses.replace(sel, encoders=settled(
        sel.encoders, settle or (lambda e: e.settled("cpu")), pins))
    if not sel.tasks:
        raise HarnessError("no task selected; pass --task NAME or --all")
    if not sel.metrics:
        raise HarnessError("no metric selected; pass --metric NAME or --all")
    variants: dict[str, Variant] = {}
    skipped: list[tuple[str, str]] = []
    rules: dict[str, int | None] = {}
    trainers = [a for a in sel.adapters if not a.reference]
    merges = [m for m in sel.merges if not m.reference]
    for task in sel.tasks:
        eval_sample(task, profile, seed)  # a broken sampler is a usage error before the run
    for given in merges:
        with plugin_call(f"merge {given.name!r}: ingredients()"):
            wanted = given.ingredients()
        if wanted[0] not in ("stages", "seeds", "both", "tasks") or wanted[1] < 1:
            raise HarnessError(f"merge {given.name!r}: ingredients() returned {wanted!r}; "
                               "expected ('stages'|'seeds'|'both'|'tasks', runs >= 1)")
        if wanted[0] != "tasks" and wanted[1] > MAX_SEEDS:
            raise HarnessError(f"merge {given.name!r}: ingredients() asks for {wanted[1]} "
                               f"runs; at most {MAX_SEEDS}")
    merges = [r for m in merges for r in replicated(m, profile.replicates or REPLICATES)]
    cross = [m for m in merges if m.ingredients()[0] == "tasks"]
    merges = [m for m in merges if m not in cross]
    train_tasks = list(sel.tasks if sel.train_tasks is None else sel.train_tasks)
    task_sets = {id(m): merged_tasks(m, sel.tasks, train_tasks) for m in cross}
    for m in cross:
        if len(task_sets[id(m)]) < 2:
            skipped.append((label(m), "merges across tasks and needs two train tasks or more "
                            "(--train-task, or tasks=a+b)"))
    cross = [m for m in cross if len(task_sets[id(m)]) >= 2]
    # a merged task nobody trains on still needs its fine-tune (retention is measured
    # against it): trained, unmerged only
    extra = [t for m in cross for t in task_sets[id(m)] if t not in train_tasks]
    extra = [t for i, t in enumerate(extra) if t not in extra[:i]]
    for enc in sel.encoders:
        key = keys.base_key(enc)
        variants.setdefault(key, Variant(key, enc, None, None, None, None, None,
                                         group_of(enc, None, None)))
        for adapter in trainers:
            with plugin_call(f"adapter {adapter.name!r}: supports(encoder {enc.name!r})"):
                ok = adapter.supports(enc)
            if ok is not True:
                reason = ok if isinstance(ok, str) else "not supported"
                skipped.append((f"{label(enc)} + {label(adapter)}", reason))
                continue
            n_seeds = profile.seeds_for(adapter, seeds)
            for task in [*train_tasks, *extra]:
                if task.name not in rules:  # drawn here: a universe too small is a usage error
                    rules[task.name] = RULE if rule_changes(task, profile, seed) else None
                for s in range(seed, seed + n_seeds):
                    single: list[Merge | None] = [None, *(merges if task in train_tasks else [])]
                    for merge in single:
                        n_runs = merge.ingredients()[1] if merge else 1
                        runs = [(r, keys.train_key(enc, adapter, task, r, seed, profile,
                                                   rules[task.name]))
                                for r in range(s, s + n_runs)]
                        key = keys.variant_key(enc, runs[0][1], merge, profile)
                        variants[key] = Variant(key, enc, adapter, task, s, merge, runs[0][1],
                                                group_of(enc, adapter, merge), runs)
            for across in cross:
                for s in range(seed, seed + n_seeds):
                    tasks = task_sets[id(across)]
                    runs = [(s, keys.train_key(enc, adapter, t, s, seed, profile, rules[t.name]))
                            for t in tasks]
                    key = keys.cross_key(enc, [k for _, k in runs], across, profile)
                    variants[key] = Variant(key, enc, adapter, None, s, across, runs[0][1],
                                            group_of(enc, adapter, across), runs, list(tasks))
    scorers: dict[str, Metric] = {}
    for scored in [*merges, *cross]:
        with plugin_call(f"merge {scored.name!r}: scored_by()"):
            metrics_of = [scored.scored_by(), str(getattr(scored, "rescale", "") or "")]
        for scorer_metric in metrics_of:
            if scorer_metric and scorer_metric not in scorers:
                try:
                    scorers[scorer_metric] = registry.get("metrics", scorer_metric)()
                except HarnessError as err:
                    raise HarnessError(f"merge {label(scored)!r} scores with {err}") from None
    cells = [Cell(keys.cell_key(v.key, keys.eval_key(t, profile, seed)), v, t)
             for v in variants.values() for t in sel.tasks]
    return Plan(profile, seed, list(variants.values()), cells, list(sel.tasks),
                list(sel.metrics), skipped, scorers, pins)


def plan_request(registry: Registry, request: Request, device: str = "cpu",
                 settle: Callable[[Encoder], Encoder] | None = None) -> Plan:
    """The plan of a ``Request`` on ``device`` (whose kind and CPU settle each encoder's
    ``precision=auto``; ``settle`` replaces that step, e.g. with a Ray driver's choices)."""
    if request.seeds is not None and not 1 <= request.seeds <= MAX_SEEDS:
        raise HarnessError(f"--seeds must be in 1..{MAX_SEEDS}, got {request.seeds}")
    if request.profile not in PROFILES:
        raise HarnessError(f"unknown profile {request.profile!r} (known: "
                           f"{', '.join(sorted(PROFILES))})")
    profile = PROFILES[request.profile]
    if request.oracle is not None:  # what a run scores beside its cells: keys stay
        profile = dataclasses.replace(profile, oracle=request.oracle)
    return build_plan(registry, select(registry, request), profile,
                      request.seed, request.seeds, settle or (lambda e: e.settled(device)))
