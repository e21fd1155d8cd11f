"""The sequences a run draws from its tasks: one evaluation sample per task (together the shared
evaluation pool), and per train task a train sample and a held-out validation sample disjoint
from it. Every draw is deterministic in the run's seed and checked: a task whose sampler raises
(or calls ``sys.exit()``), returns the wrong number of sequences, a sequence that is not a tuple
of ints, unbalanced classes or a label that is not a class index, or whose eval sample repeats
more than ``MAX_REPEATS`` of its sequences, is a usage error naming the task."""

from __future__ import annotations

import random

from harness import keys
from harness.api import PROFILES, HarnessError, Profile, Sequence, Task
from harness.leaks import RULE, Leaks
from harness.store.records import EvalSampleRecord

#: the largest share of an eval sample that may repeat its other sequences: every row counts as
#: one sequence in the intervals, so repeats make them too narrow. Not 0: samplers of a small
#: universe repeat a few (the built-in ``progression`` up to 6% of the paper profile's 1000)
MAX_REPEATS = 0.1


def eval_sample(task: Task, profile: Profile, seed: int) -> list[Sequence]:
    return _few_repeats(task, "eval", draw(task, profile.eval_size, random.Random(
        keys.sample_seed(seed, "eval", task.name))))


def claim_sample(task: Task, profile: Profile, seed: int) -> list[Sequence]:
    """A compositional task's larger sample for claim 1 (``Profile.claim_rows`` sequences,
    balanced, from a stream of its own): only base models embed it (``harness.claim_sample``),
    none of which trained, so it need not be disjoint from any train sample."""
    return _few_repeats(task, "claim", draw(task, profile.claim_rows, random.Random(
        keys.sample_seed(seed, "claim", task.name))))


def _few_repeats(task: Task, what: str, seqs: list[Sequence]) -> list[Sequence]:
    distinct = len(set(seqs))
    if len(seqs) - distinct > MAX_REPEATS * len(seqs):
        raise HarnessError(f"task {task.name!r}: its {what} sample of {len(seqs)} holds "
                           f"{distinct} distinct sequences (at most {MAX_REPEATS:.0%} may "
                           "repeat; its intervals would be too narrow); fix the task's "
                           "sampler to draw distinct sequences")
    return seqs


def shared_pool(tasks: list[Task], profile: Profile, seed: int
                ) -> tuple[list[Sequence], dict[str, list[int | None]]]:
    """The run's evaluation pool: every task's eval sample, in task order, and every sequence
    labelled by every task (None where a task does not apply), so that any embedding of the pool
    can be scored against any task. Cells of task T are scored on T's own (balanced) sample."""
    seqs = [s for t in tasks for s in eval_sample(t, profile, seed)]
    return seqs, {t.name: [t.label(s) for s in seqs] for t in tasks}


def train_sample(task: Task, profile: Profile, seed: int, rule: int = RULE) -> list[Sequence]:
    """A balanced train set with no sequence that leaks into the task's eval sample
    (``harness.leaks``; ``rule=1``: the exact-duplicate rule of stores made before it)."""
    return _disjoint(task, profile.train_size, seed, "train", eval_sample(task, profile, seed),
                     rule)


def fit_sample(task: Task, profile: Profile, seed: int) -> list[Sequence]:
    """The part of a task's train sample that a fine-tune is scored on to tell memorising from
    learning (``harness.learnability``): eval-sample sized and balanced, each class's first
    sequences of the train sample in its order."""
    seqs = train_sample(task, profile, seed)
    k = len(task.classes)
    n = min(profile.eval_size, len(seqs))
    want = [n // k + (1 if c < n % k else 0) for c in range(k)]
    out: list[Sequence] = []
    for seq in seqs:
        c = int(task.label(seq) or 0)
        if want[c] > 0:
            want[c] -= 1
            out.append(seq)
    return out


def valid_sample(task: Task, profile: Profile, seed: int, rule: int = RULE,
                 size: int | None = None) -> list[Sequence]:
    """A balanced held-out set (eval-sample sized, or ``size``) with no sequence that leaks
    into the task's train or eval samples: what merges that score candidates (greedy soup, λ)
    are scored on (``Profile.held_out_size`` of it)."""
    used = eval_sample(task, profile, seed) + train_sample(task, profile, seed, rule)
    return _disjoint(task, size or profile.eval_size, seed, "valid", used, rule)


def rule_changes(task: Task, profile: Profile, seed: int) -> bool:
    """Whether the leak rule draws other train or validation sequences for this task than the
    exact-duplicate rule did: then its training runs get new keys (``keys.train_key``), and a
    store made before the rule retrains them instead of reusing what other data made."""
    for f in (train_sample, valid_sample):
        now = f(task, profile, seed, RULE)  # raises first: a universe too small is an error
        try:
            if now != f(task, profile, seed, 1):
                return True
        except HarnessError:  # the old rule could not draw it at all
            return True
    return False


#: a sample short of sequences that do not leak draws this many more pools before it gives up
EXTRA_POOLS = 8


def _disjoint(task: Task, n: int, seed: int, stream: str, used: list[Sequence], rule: int
              ) -> list[Sequence]:
    """``n`` balanced sequences of ``stream`` none of which is in (rule 1) or leaks into
    (rule 2) ``used``: from a pool of 3n + 3k draws, then, while a class is short (a small
    universe), from further pools of their own streams (rule 2 only, so a sample that the
    first pool fills is what it always was)."""
    k = len(task.classes)
    size = 3 * n + 3 * k
    taken: set[Sequence] | Leaks = set(used) if rule == 1 else Leaks(used)
    per_class: dict[int, list[Sequence]] = {c: [] for c in range(k)}
    want = [n // k + (1 if c < n % k else 0) for c in range(k)]
    for extra in range(1 + (EXTRA_POOLS if rule != 1 else 0)):
        name = stream if not extra else f"{stream}-more-{extra}"
        for seq in draw(task, size, random.Random(keys.sample_seed(seed, name, task.name))):
            if seq not in taken:
                per_class[int(task.label(seq) or 0)].append(seq)
        if all(len(per_class[c]) >= want[c] for c in range(k)):
            break
    if any(len(per_class[c]) < want[c] for c in range(k)):
        raise HarnessError(f"task {task.name!r}: cannot draw {n} {stream} sequences that do not "
                           "leak into its other samples (no reordering, sub-sequence or same "
                           "progression); its universe is too small for this profile")
    picked = [s for c in range(k) for s in per_class[c][:want[c]]]
    random.Random(keys.sample_seed(seed, "shuffle" if stream == "train" else f"shuffle-{stream}",
                              task.name)).shuffle(picked)
    return picked


def draw(task: Task, n: int, rng: random.Random) -> list[Sequence]:
    """``task.sample(n, rng)``, checked: n labelled sequences, class-balanced."""
    try:
        seqs = list(task.sample(n, rng))
        labels = [task.label(seq) for seq in seqs]
    except (Exception, SystemExit) as err:  # a plugin's sys.exit() too
        raise HarnessError(f"task {task.name!r}: sample({n}) or label raised "
                           f"{type(err).__name__}: {' '.join(str(err).split())}; fix the task "
                           "plugin") from None
    if len(seqs) != n:
        raise HarnessError(f"task {task.name!r}: sample({n}) returned {len(seqs)} sequences; "
                           "fix the task's sampler")
    for seq in seqs:
        if not (isinstance(seq, tuple) and all(isinstance(x, int) for x in seq)):
            kinds = ", ".join(sorted({type(x).__name__ for x in seq}
                                     if isinstance(seq, tuple) else {type(seq).__name__}))
            raise HarnessError(f"task {task.name!r}: sample({n}) returned {seq!r} ({kinds}), "
                               "not a tuple of ints; return each sequence as a tuple of ints")
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
