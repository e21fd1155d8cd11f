"""What a run asks for, as plain strings, and the components that stands for.

A ``Request`` is everything ``harness run`` was told (component specs ``name[:k=v,...]`` per
kind, train tasks, ``--all``, profile, seeds): plain data, so a Ray worker rebuilds the same
plan from it. ``select`` turns it into component instances against a registry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.api import KINDS, Adapter, Encoder, HarnessError, Merge, Metric, Task
from harness.component import plugin_call
from harness.params import build, expand, parse_spec
from harness.registry import SINGULAR, Registry


@dataclass(frozen=True)
class Request:
    encoders: list[str] = field(default_factory=list)
    adapters: list[str] = field(default_factory=list)
    merges: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    train_tasks: list[str] = field(default_factory=list)
    all: bool = False
    profile: str = "quick"
    seed: int = 0
    #: training seeds per variant (``--seeds``); None: the profile's (``Profile.seeds_for``)
    seeds: int | None = None
    #: score tuned cross-task merges' candidates on the eval samples (``--oracle``); None:
    #: the profile's (``Profile.oracle``)
    oracle: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Request:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass
class Selection:
    encoders: list[Encoder]
    adapters: list[Adapter]
    merges: list[Merge]
    tasks: list[Task]  # eval tasks
    metrics: list[Metric]
    train_tasks: list[Task] | None = None  # None: the eval tasks


def instances(reg: Registry, kind: str, specs: list[str]) -> list[Any]:
    """The components ``name[:k=v,...]`` specs stand for, sweeps expanded, duplicates dropped."""
    items: list[Any] = []
    for text in specs:
        name, raw = parse_spec(text)
        for item in expand(reg.get(kind, name), SINGULAR[kind], raw):
            if item not in items:
                items.append(item)
    return items


def comparators(reg: Registry) -> list[Merge]:
    """The merge-method ranking's comparators: ``over=tasks`` of every merge marked
    ``comparator``, and of each parameter set it lists in ``also_compared`` (``--all`` runs
    them over the train tasks)."""
    out = []
    for name, cls in sorted(reg.components["merges"].items()):
        if getattr(cls, "comparator", False):
            with plugin_call(f"merge {cls.name!r}: __post_init__"):
                try:
                    out.append(cls(over="tasks"))
                except TypeError:
                    raise HarnessError(f"merge {cls.name!r} sets comparator but takes no "
                                       "over=tasks; derive it from harness.api.PooledMerge"
                                       ) from None
        out += instances(reg, "merges", [f"{name}:over=tasks,{params}"
                                         for params in getattr(cls, "also_compared", ())])
    return out


def _over(merge: Merge) -> str:
    with plugin_call(f"merge {merge.name!r}: ingredients()"):
        return merge.ingredients()[0]


def select(reg: Registry, request: Request) -> Selection:
    """A kind not named takes every component of that kind marked ``in_all`` and every
    ``also_in_all`` parameter set; with ``--all`` and no merge named, or a cross-task merge
    named, the comparators across tasks too."""
    given = {kind: getattr(request, kind) for kind in KINDS}
    if not request.all and not any(given.values()):
        raise HarnessError("nothing selected; pass --all, or --encoder/--adapter/--merge/"
                           "--task/--metric NAME")
    chosen: dict[str, list[Any]] = {}
    for kind in KINDS:
        if given[kind]:
            chosen[kind] = instances(reg, kind, given[kind])
        else:
            chosen[kind] = [build(cls, SINGULAR[kind], {}) for _, cls in
                            sorted(reg.components[kind].items()) if cls.in_all]
            chosen[kind] += instances(reg, kind, [
                f"{name}:{params}" for name, cls in sorted(reg.components[kind].items())
                for params in getattr(cls, "also_in_all", ())])
    if request.all and (not given["merges"] or any(
            _over(m) == "tasks" for m in chosen["merges"])):
        # --all merges across tasks with the ranking's comparators; a cross-task merge named
        # with --all is ranked against them
        chosen["merges"] += [m for m in comparators(reg) if m not in chosen["merges"]]
    if request.all and reg.broken:
        names = ", ".join(f"{p.name} ({p.distribution}): {p.error}" for p in reg.broken)
        raise HarnessError(f"--all needs every plugin but some failed to load: {names}; fix "
                           "or disable them with HARNESS_DISABLE_PLUGINS=NAME")
    train: list[Task] | None
    if request.train_tasks:
        train = instances(reg, "tasks", request.train_tasks)
    elif request.all and not given["tasks"]:
        train = [t for t in chosen["tasks"] if t.trains_by_default]
    else:
        train = None
    return Selection(**chosen, train_tasks=train)
