"""The sequences a run draws from its tasks: one evaluation sample per task (together the shared
evaluation pool), and per train task a train sample and a held-out validation sample disjoint
from it. Every draw is deterministic in the run's seed and checked: a task whose sampler raises,
returns the wrong number of sequences, unbalanced classes or a label that is not a class index
is a usage error naming the task."""

from __future__ import annotations

import random

from harness import keys
from harness.api import PROFILES, HarnessError, Profile, Sequence, Task
from harness.store.records import EvalSampleRecord


def eval_sample(task: Task, profile: Profile, seed: int) -> list[Sequence]:
    return draw(task, profile.eval_size, random.Random(keys.sample_seed(seed, "eval", task.name)))


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
    pool = draw(task, size, random.Random(keys.sample_seed(seed, stream, task.name)))
    per_class: dict[int, list[Sequence]] = {c: [] for c in range(k)}
    for seq in pool:
        if seq not in used:
            per_class[int(task.label(seq) or 0)].append(seq)
    want = [n // k + (1 if c < n % k else 0) for c in range(k)]
    if any(len(per_class[c]) < want[c] for c in range(k)):
        raise HarnessError(f"task {task.name!r}: cannot draw {n} {stream} sequences disjoint "
                           "from its other samples; its universe is too small")
    picked = [s for c in range(k) for s in per_class[c][:want[c]]]
    random.Random(keys.sample_seed(seed, "shuffle" if stream == "train" else f"shuffle-{stream}",
                              task.name)).shuffle(picked)
    return picked


def draw(task: Task, n: int, rng: random.Random) -> list[Sequence]:
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


def eval_sample_record(task: Task, profile_name: str, seed: int, run_id: int
                       ) -> EvalSampleRecord:
    """A task's eval sample of a run, with the flags it declares."""
    profile = PROFILES[profile_name]
    seqs = eval_sample(task, profile, seed)
    info = {"identity": keys.identity(task), "classes": list(task.classes),
            "compositional": bool(task.compositional),
            "trains_by_default": bool(task.trains_by_default)}
    return EvalSampleRecord(keys.eval_key(task, profile, seed), task.name, profile_name, seed,
                            run_id, info, seqs, [int(task.label(s) or 0) for s in seqs])
