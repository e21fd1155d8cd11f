"""The cross-product of a selection as variants and cells, each under a content key.

A *variant* is encoder + adapter trained on a task with a seed + merge; every selected encoder's
base (no adapter) and every training run's unmerged final checkpoint (merge ``none``) are always
in the plan, because every comparison is made against them. A *cell* is a variant scored on one
eval task's sample of the shared evaluation pool.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from harness.api import Adapter, Encoder, HarnessError, Merge, Metric, Profile, Sequence, Task
from harness.params import content_hash, identity, label
from harness.registry import Registry

REFERENCE = "none"  # the adapter and merge that every comparison needs


@dataclass
class Selection:
    encoders: list[Encoder]
    adapters: list[Adapter]
    merges: list[Merge]
    tasks: list[Task]  # eval tasks
    metrics: list[Metric]
    train_tasks: list[Task] | None = None  # None: the eval tasks


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

    def row(self, profile: Profile) -> dict[str, Any]:
        return {"encoder": label(self.encoder), "family": self.encoder.family,
                "adapter": label(self.adapter) if self.adapter else REFERENCE,
                "train_task": self.train_task.name if self.train_task else None,
                "seed": self.seed, "merge": label(self.merge) if self.merge else REFERENCE,
                "group": self.group, "profile": profile.name if self.adapter else "",
                "info": {"encoder": identity(self.encoder),
                         "adapter": identity(self.adapter) if self.adapter else None,
                         "train_task": identity(self.train_task) if self.train_task else None,
                         "merge": identity(self.merge) if self.merge else None,
                         "profile": dataclasses.asdict(profile) if self.adapter else None}}


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


def group_of(encoder: Encoder, adapter: Adapter | None, merge: Merge | None) -> str:
    """The family row a variant belongs to in the leaderboard."""
    llm = encoder.family == "llm"
    if adapter is None:
        if encoder.from_scratch:
            return "non-LLM random init"
        return "LLM base" if llm else "non-LLM base"
    kind = "LoRA" if adapter.name == "lora" else adapter.name
    if llm:
        trained = f"LLM + {kind}"
    else:
        trained = "non-LLM from scratch" if encoder.from_scratch else f"non-LLM fine-tuned ({kind})"
    return trained if merge is None else f"{trained} + {merge.name}"


def sample_seed(seed: int, *parts: str) -> int:
    return int(content_hash("rng", seed, *parts)[:12], 16)


def eval_key(task: Task, profile: Profile, seed: int) -> str:
    return content_hash("eval", identity(task), profile.eval_size, seed)


def eval_sample(task: Task, profile: Profile, seed: int) -> list[Sequence]:
    return _draw(task, profile.eval_size, random.Random(sample_seed(seed, "eval", task.name)))


def shared_pool(tasks: list[Task], profile: Profile, seed: int
                ) -> tuple[list[Sequence], dict[str, list[int | None]]]:
    """The run's evaluation pool: every task's eval sample, in task order, and every sequence
    labelled by every task (None where a task does not apply), so that any embedding of the pool
    can be scored against any task. Cells of task T are scored on T's own (balanced) sample."""
    seqs = [s for t in tasks for s in eval_sample(t, profile, seed)]
    return seqs, {t.name: [t.label(s) for s in seqs] for t in tasks}


def train_sample(task: Task, profile: Profile, seed: int) -> list[Sequence]:
    """A balanced train set with no sequence of the task's eval sample (no leakage)."""
    return _disjoint(task, profile.train_size, seed, "train", set(eval_sample(task, profile, seed)))


def valid_sample(task: Task, profile: Profile, seed: int) -> list[Sequence]:
    """A balanced held-out set (eval-sample sized) disjoint from the task's train and eval
    samples: what merges that score candidates (greedy soup) are scored on."""
    used = set(eval_sample(task, profile, seed)) | set(train_sample(task, profile, seed))
    return _disjoint(task, profile.eval_size, seed, "valid", used)


def _disjoint(task: Task, n: int, seed: int, stream: str, used: set[Sequence]
              ) -> list[Sequence]:
    k = len(task.classes)
    size = 3 * n + 3 * k
    pool = _draw(task, size, random.Random(sample_seed(seed, stream, task.name)))
    per_class: dict[int, list[Sequence]] = {c: [] for c in range(k)}
    for seq in pool:
        if seq not in used:
            per_class[int(task.label(seq) or 0)].append(seq)
    want = [n // k + (1 if c < n % k else 0) for c in range(k)]
    if any(len(per_class[c]) < want[c] for c in range(k)):
        raise HarnessError(f"task {task.name!r}: cannot draw {n} {stream} sequences disjoint "
                           "from its other samples; its universe is too small")
    picked = [s for c in range(k) for s in per_class[c][:want[c]]]
    random.Random(sample_seed(seed, "shuffle" if stream == "train" else f"shuffle-{stream}",
                              task.name)).shuffle(picked)
    return picked


def _draw(task: Task, n: int, rng: random.Random) -> list[Sequence]:
    """``task.sample(n, rng)``, checked: n labelled sequences, class-balanced."""
    try:
        seqs = list(task.sample(n, rng))
        labels = [task.label(seq) for seq in seqs]
    except Exception as err:
        raise HarnessError(f"task {task.name!r}: sample({n}) or label raised "
                           f"{type(err).__name__}: {' '.join(str(err).split())}; fix the task "
                           "plugin") from None
    if len(seqs) != n:
        raise HarnessError(f"task {task.name!r}: sample({n}) returned {len(seqs)} sequences; "
                           "fix the task's sampler")
    counts = [0] * len(task.classes)
    for seq, y in zip(seqs, labels, strict=True):
        if y is None or not hasattr(y, "__index__") or not 0 <= int(y) < len(counts):
            raise HarnessError(f"task {task.name!r}: sampled {seq} has label {y!r}, not a class "
                               "index; fix the task's sampler or label")
        counts[int(y)] += 1
    if n and max(counts) - min(counts) > 1:
        raise HarnessError(f"task {task.name!r}: sample({n}) is unbalanced (class counts "
                           f"{counts}); fix the task's sampler to balance its classes")
    return seqs


def base_key(encoder: Encoder) -> str:
    """The content key of an encoder's base variant (no adapter, no merge)."""
    return content_hash("variant", identity(encoder), None, None)


def train_key(encoder: Encoder, adapter: Adapter, task: Task, seed: int, eval_seed: int,
              profile: Profile) -> str:
    """The content key of one training run (its checkpoints are stored under it)."""
    return content_hash("train", identity(encoder), identity(adapter), identity(task), seed,
                        eval_seed, dataclasses.asdict(profile))


def build_plan(registry: Registry, sel: Selection, profile: Profile, seed: int,
               seeds: int) -> Plan:
    if not sel.encoders:
        raise HarnessError("no encoder selected; pass --encoder NAME or --all")
    if not sel.tasks:
        raise HarnessError("no task selected; pass --task NAME or --all")
    if not sel.metrics:
        raise HarnessError("no metric selected; pass --metric NAME or --all")
    variants: dict[str, Variant] = {}
    skipped: list[tuple[str, str]] = []
    trainers = [a for a in sel.adapters if a.name != REFERENCE]
    merges = [m for m in sel.merges if m.name != REFERENCE]
    for enc in sel.encoders:
        enc_id = identity(enc)
        key = base_key(enc)
        variants.setdefault(key, Variant(key, enc, None, None, None, None, None,
                                         group_of(enc, None, None)))
        for adapter in trainers:
            ok = adapter.supports(enc)
            if ok is not True:
                reason = ok if isinstance(ok, str) else "not supported"
                skipped.append((f"{label(enc)} + {label(adapter)}", reason))
                continue
            for task in (sel.tasks if sel.train_tasks is None else sel.train_tasks):
                for s in range(seed, seed + seeds):
                    for merge in [None, *merges]:
                        n_runs = merge.ingredients()[1] if merge else 1
                        runs = [(r, train_key(enc, adapter, task, r, seed, profile))
                                for r in range(s, s + n_runs)]
                        key = content_hash("variant", enc_id, runs[0][1],
                                           identity(merge) if merge else None)
                        variants[key] = Variant(key, enc, adapter, task, s, merge, runs[0][1],
                                                group_of(enc, adapter, merge), runs)
    scorers = {}
    for merge in merges:
        wanted = merge.ingredients()
        if wanted[0] not in ("stages", "seeds", "both") or wanted[1] < 1:
            raise HarnessError(f"merge {merge.name!r}: ingredients() returned {wanted!r}; "
                               "expected ('stages'|'seeds'|'both', runs >= 1)")
        metric = merge.scored_by()
        if metric is not None and metric not in scorers:
            try:
                scorers[metric] = registry.get("metrics", metric)()
            except HarnessError as err:
                raise HarnessError(f"merge {label(merge)!r} scores with {err}") from None
    for task in sel.tasks:
        eval_sample(task, profile, seed)  # a broken sampler is a usage error before the run
    cells = [Cell(content_hash("cell", v.key, eval_key(t, profile, seed)), v, t)
             for v in variants.values() for t in sel.tasks]
    return Plan(profile, seed, list(variants.values()), cells, list(sel.tasks),
                list(sel.metrics), skipped, scorers)
