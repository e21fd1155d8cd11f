"""No eval sequence is a reordering, a sub-sequence or the same progression as a train (or
validation) sequence of the same task (``harness.leaks``, ``harness.samples``)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from itertools import combinations

import pytest

from harness import keys
from harness.api import PROFILES
from harness.leaks import Leaks, progression_keys
from harness.registry import Registry
from harness.samples import eval_sample, rule_changes, train_sample, valid_sample


@pytest.mark.parametrize("seq", [
    (5, 1, 9, 3),          # a reordering
    (1, 5, 3, 9),          # the same sequence
    (1, 9, 7),             # an order-preserving sub-sequence (of (1, 5, 9, 3, 7) below)
    (2, 4, 8, 16, 32),     # the geometric (2, 4, 8, 16) at another length
    (16, 8, 4, 2),         # ... reversed
    (16, 8, 4),            # ... a shorter run down from its largest element
    (16, 32, 64),          # continuing up from its largest element: another start
    (30, 20, 10),          # the arithmetic (10, 20, 30, 40) reversed and shorter
])
def test_leaks_found(seq: tuple[int, ...]) -> None:
    used = Leaks([(1, 5, 3, 9), (1, 5, 9, 3, 7), (2, 4, 8, 16), (10, 20, 30, 40)])
    if seq == (16, 32, 64):
        assert seq not in used
    else:
        assert seq in used


def test_unrelated_sequences_do_not_leak() -> None:
    used = Leaks([(1, 5, 3, 9), (2, 4, 8, 16), (10, 20, 30, 40)])
    for seq in [(1, 5, 4), (9, 3, 5), (3, 6, 12, 24), (11, 21, 31), (9, 3, 5, 1, 0)]:
        assert seq not in used, seq
    assert (0, 1, 5, 3, 9) in used and (1, 5) not in Leaks([(1, 5, 3, 9)], shortest=4)


def _subs(seq: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    for k in range(2, len(seq)):
        for idx in combinations(range(len(seq)), k):
            yield tuple(seq[i] for i in idx)


def _prog(seq: tuple[int, ...]) -> set[tuple[object, ...]]:
    """An independent reading of "the same progression": step or ratio, and an end."""
    if len(seq) < 3:
        return set()
    steps = {b - a for a, b in zip(seq, seq[1:], strict=False)}
    if len(steps) == 1 and 0 not in steps:
        d = steps.pop()  # each reading: (its start, its signed step)
        return {("a", seq[0], d), ("a", seq[-1], -d)}
    if min(seq) > 0:
        ratios = {Fraction(b, a) for a, b in zip(seq, seq[1:], strict=False)}
        if len(ratios) == 1 and 1 not in ratios:
            r = ratios.pop()
            return {("g", seq[0], r), ("g", seq[-1], 1 / r)}
    return set()


def _leaks_into(seqs: set[tuple[int, ...]], other: set[tuple[int, ...]]) -> list[tuple]:
    """The sequences of ``seqs`` that leak into ``other``, by the rule read independently."""
    multisets = {tuple(sorted(o)) for o in other}
    subs = {s for o in other for s in _subs(o)}
    progs = {k for o in other for k in _prog(o)}
    return [a for a in seqs if tuple(sorted(a)) in multisets or a in subs
            or any(s in other for s in _subs(a)) or _prog(a) & progs]


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_built_in_samples_do_not_leak(registry: Registry, profile: str) -> None:
    """Checked pairwise with its own reading of the rule, for every built-in task."""
    for name, cls in sorted(registry.components["tasks"].items()):
        task, p = cls(), PROFILES[profile]
        ev, tr, va = eval_sample(task, p, 0), train_sample(task, p, 0), valid_sample(task, p, 0)
        assert not _leaks_into(set(tr), set(ev)), name
        assert not _leaks_into(set(ev), set(tr)), name
        assert not _leaks_into(set(va), set(tr) | set(ev)), name


def test_progression_keys() -> None:
    assert progression_keys((3, 6, 12)) == {("geometric", 2, 3),
                                            ("geometric", Fraction(1, 2), 12)}
    assert progression_keys((12, 6, 3)) == progression_keys((3, 6, 12))
    assert progression_keys((8, 12, 18, 27)) == {("geometric", Fraction(3, 2), 8),
                                                 ("geometric", Fraction(2, 3), 27)}
    assert progression_keys((5, 5, 5)) == set() and progression_keys((1, 2, 4, 7)) == set()


def test_training_keys_change_only_where_the_rule_draws_other_sequences(
        registry: Registry) -> None:
    """A task whose train and validation sequences the leak rule leaves alone keeps the keys
    of stores made before it (their checkpoints are reused); one it changes gets new keys."""
    parity = registry.get("tasks", "parity")()
    quick = PROFILES["quick"]
    assert not rule_changes(parity, quick, 0)
    assert train_sample(parity, quick, 0, rule=1) == train_sample(parity, quick, 0)
    enc = registry.get("encoders", "scratch")()
    full = registry.get("adapters", "full")()
    assert keys.train_key(enc, full, parity, 0, 0, quick) != \
        keys.train_key(enc, full, parity, 0, 0, quick, rule=2)
