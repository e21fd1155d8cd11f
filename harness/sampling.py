"""The balanced sampler the harness demands of every task, offered to task authors as
``harness.api.balanced_sample``."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

#: a sampler draws again when its proposal has the wrong label; this many misses is a bug
MAX_ATTEMPTS = 10_000


def balanced_sample(task: Any, n: int, rng: random.Random,
                    make: Callable[[int, random.Random], Sequence[int]]) -> list[tuple[int, ...]]:
    """``n`` sequences from ``make(cls, rng)``, class-balanced and shuffled: what
    ``Task.sample`` must return.

    Classes are visited round-robin (class i gets ``n // k`` plus one if ``i < n % k``, k the
    number of ``task.classes``). A proposal whose ``task.label`` is not the intended class is
    drawn again, so ``make`` may be a plain rejection proposal (a random sequence) for classes
    that are common; a class that ``make`` misses ``MAX_ATTEMPTS`` times in a row is a bug in
    the task and raises ``RuntimeError``.
    """
    if n < 0:
        raise ValueError(f"cannot sample {n} sequences")
    k = len(task.classes)
    out: list[tuple[int, ...]] = []
    for j in range(n):
        cls = j % k
        for _ in range(MAX_ATTEMPTS):
            seq = tuple(int(x) for x in make(cls, rng))
            if task.label(seq) == cls:
                out.append(seq)
                break
        else:
            raise RuntimeError(f"task {task.name}: no sequence of class "
                               f"{task.classes[cls]!r} in {MAX_ATTEMPTS} attempts")
    rng.shuffle(out)
    return out
