"""What counts as the same item on both sides of a train / eval split.

A sequence leaks into another sample when it is, of a sequence there, a reordering (the same
multiset, the same sequence included), an order-preserving sub-sequence (or contains one as
such), or the same progression: both have a constant nonzero difference d (or, all positive, a
constant ratio r other than 1) and the same start and step read in either direction, at any
length: the same smallest element and |d| (or r > 1) going up, or the same largest element
going down. A train sample is drawn with no sequence that leaks into its eval sample, and a
validation sample with none that leaks into either (``harness.samples``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from itertools import combinations, pairwise

#: how the harness keeps samples apart: 1, exact duplicates only (before issue #16); 2, leaks
RULE = 2
#: beyond this many sub-sequences a sequence is compared pairwise instead of enumerated
MAX_SUBSEQUENCES = 4096


def progression_keys(seq: tuple[int, ...]) -> set[tuple[object, ...]]:
    """The (kind, step, start) keys of a progression-shaped sequence, one per reading: upwards
    from its smallest element (step |d|, ratio r > 1) and downwards from its largest (-|d|,
    1/r); empty for any other sequence. Two sequences sharing a key are the same progression:
    the same start and step, read in either direction, at any length."""
    if len(seq) < 3:
        return set()
    d = seq[1] - seq[0]
    if d != 0 and all(b - a == d for a, b in pairwise(seq)):
        return {("arithmetic", abs(d), min(seq)), ("arithmetic", -abs(d), max(seq))}
    if all(x > 0 for x in seq) and seq[1] != seq[0] and all(
            seq[i + 1] * seq[i - 1] == seq[i] ** 2 for i in range(1, len(seq) - 1)):
        r = Fraction(seq[1], seq[0])
        r = r if r > 1 else 1 / r
        return {("geometric", r, min(seq)), ("geometric", 1 / r, max(seq))}
    return set()


def _sub_sequences(seq: tuple[int, ...], shortest: int) -> Iterator[tuple[int, ...]]:
    """Order-preserving sub-sequences of ``seq`` no shorter than ``shortest`` and shorter than
    ``seq`` itself."""
    for k in range(max(shortest, 1), len(seq)):
        for idx in combinations(range(len(seq)), k):
            yield tuple(seq[i] for i in idx)


def _count(n: int, shortest: int) -> int:
    return sum(math.comb(n, k) for k in range(max(shortest, 1), n))


def is_sub_sequence(short: tuple[int, ...], long: tuple[int, ...]) -> bool:
    it = iter(long)
    return len(short) < len(long) and all(x in it for x in short)


class Leaks:
    """An index of ``used`` sequences answering whether a candidate leaks into them."""

    def __init__(self, used: Iterable[tuple[int, ...]], shortest: int = 2):
        self.used = list(dict.fromkeys(tuple(s) for s in used))
        self.shortest = max(shortest, 2)  # a shared single element is not a leak
        self.sorted = {tuple(sorted(s)) for s in self.used}
        self.exact = set(self.used)
        self.progressions: set[tuple[object, ...]] = set()
        self.subs: set[tuple[int, ...]] = set()
        self.long: list[tuple[int, ...]] = []  # too many sub-sequences to enumerate
        for s in self.used:
            self.progressions |= progression_keys(s)
            if _count(len(s), self.shortest) <= MAX_SUBSEQUENCES:
                self.subs.update(_sub_sequences(s, self.shortest))
            else:
                self.long.append(s)
        self.min_len = min((len(s) for s in self.used), default=0)

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, tuple) and self.leaks(seq)

    def leaks(self, seq: tuple[int, ...]) -> bool:
        if not self.used:
            return False
        if tuple(sorted(seq)) in self.sorted or progression_keys(seq) & self.progressions:
            return True
        if len(seq) >= self.shortest and (seq in self.subs or any(
                is_sub_sequence(seq, s) for s in self.long)):
            return True
        shortest = max(self.min_len, self.shortest)
        if _count(len(seq), shortest) <= MAX_SUBSEQUENCES:
            return any(sub in self.exact for sub in _sub_sequences(seq, shortest))
        return any(is_sub_sequence(s, seq) for s in self.used)
