"""The matched proposal behind the ``progression`` task's sampler (``sequence_wide``).

Every draw starts from a geometric progression of the universe (``GEOMETRIC``: all 2,084 of
3 to 6 terms, rational ratios included, drawn by ``WEIGHTS``). The geometric class returns it;
the arithmetic class an arithmetic progression of the same length and direction that comes
nearest to it in magnitude and digits, with all or none of its elements divisible by each of
2, 3 and 5 as the geometric one has; ``neither`` a copy of one of the two with an interior
element moved to a nearby value divisible by the same of 2, 3 and 5. So length, magnitude,
digits and divisibility shares come out alike in all three classes (``harness.audit``).
"""

from __future__ import annotations

import random
from functools import cache
from itertools import accumulate
from math import gcd

from harness.tasks.numbers import MAX_LEN, MAX_VALUE, MIN_LEN, MIN_VALUE

PRIMES = (2, 3, 5)
#: the shortest progression drawn: 3 terms, one fewer than the universe's other sequences. Of
#: 4-6 terms the universe holds only 421 geometric progressions, too few for leak-free train,
#: validation and eval samples of the paper profile; of 3 terms it holds 1,663 more
SHORTEST = MIN_LEN - 1
#: weight of a geometric progression per prime dividing some but not all of its elements (an
#: arithmetic progression rarely has that pattern, so each such draw tells the class apart)
PARTIAL = {2: 0.1, 3: 0.2, 5: 0.3}
#: weight by length: longer progressions contain shorter ones and leak into them (and into one
#: another), so they are drawn less; 3-term ones are many (0.6 keeps 4-6 terms at about a
#: quarter of the draws with every nuisance AUC <= 0.54)
BY_LENGTH = {3: 0.6, 4: 1.0, 5: 0.3, 6: 0.3}
#: random arithmetic candidates tried per draw, the nearest one kept; the spread of their start
#: and step around the geometric one's (lower than its own: a linear sequence of the same span
#: has the larger mean and more digits)
TRIES = 8
LOW_SPREAD, STEP_SPREAD = (0.2, 1.0), (0.6, 1.1)
#: how far apart min, max, mean, digits and leading digit count in that nearness (about one bin
#: of the audit's histograms each; min is made cheap, as it is the one with room to move)
SCALES = (60.0, 70.0, 60.0, 0.15, 0.45)


def _geometric() -> tuple[tuple[int, ...], ...]:
    """Every increasing geometric progression of the universe: ratio p/q > 1 in lowest terms,
    terms c * q^(n-1-i) * p^i."""
    out = []
    for n in range(SHORTEST, MAX_LEN + 1):
        p = 2
        while p ** (n - 1) <= MAX_VALUE:
            out += [tuple(c * q ** (n - 1 - i) * p ** i for i in range(n))
                    for q in range(1, p) if gcd(p, q) == 1
                    for c in range(1, MAX_VALUE // p ** (n - 1) + 1)]
            p += 1
    return tuple(out)


def shares(seq: tuple[int, ...]) -> tuple[float, ...]:
    """The share of elements divisible by each of ``PRIMES``."""
    return tuple(sum(x % s == 0 for x in seq) / len(seq) for s in PRIMES)


def _weight(seq: tuple[int, ...]) -> float:
    w = BY_LENGTH[len(seq)]
    for s, share in zip(PRIMES, shares(seq), strict=True):
        w *= PARTIAL[s] if 0 < share < 1 else 1.0
    return w


GEOMETRIC = _geometric()
WEIGHTS = tuple(_weight(g) for g in GEOMETRIC)


def _all_share(k: int) -> float:
    """Of the weight of progressions with all or none of their elements divisible by the k-th
    prime, the share with all."""
    pure = [(w, sh[k]) for w, sh in zip(WEIGHTS, map(shares, GEOMETRIC), strict=True)
            if sh[k] in (0, 1)]
    return sum(w for w, share in pure if share) / sum(w for w, _ in pure)


#: the chance that a match to a progression with some of its elements divisible by a prime has
#: all of them divisible (else none): the two patterns in the proportions of the pure ones
ALL_SHARE = tuple(_all_share(k) for k in range(len(PRIMES)))
_CUMULATIVE = tuple(accumulate(WEIGHTS))


def geometric(rng: random.Random) -> tuple[int, ...]:
    """A geometric progression by ``WEIGHTS``, increasing or decreasing."""
    seq = rng.choices(GEOMETRIC, cum_weights=_CUMULATIVE)[0]
    return seq[::-1] if rng.randrange(2) else seq


@cache
def _starts(n: int, step: int, want: tuple[bool, ...]) -> frozenset[int]:
    """The starts mod 30 whose progression of n terms with this step (mod 30) comes nearest to
    having all (True) or no (False) elements divisible by each prime."""
    def miss(a: int) -> float:
        got = shares(tuple(a + i * step for i in range(n)))
        return sum(abs(g - w) for g, w in zip(got, want, strict=True))
    best = min(miss(a) for a in range(30))
    return frozenset(a for a in range(30) if miss(a) == best)


def _profile(seq: tuple[int, ...]) -> tuple[float, ...]:
    """Magnitude and digits, as the audit's nuisances read them (``SCALES`` apart)."""
    text = [str(x) for x in seq]
    return (min(seq), max(seq), sum(seq) / len(seq), sum(map(len, text)) / len(seq),
            sum(int(t[0]) for t in text) / len(seq))


def _candidate(n: int, lo: float, span: float, want: tuple[bool, ...], rng: random.Random
               ) -> tuple[int, ...]:
    low = lo * rng.uniform(*LOW_SPREAD)
    step = span / (n - 1) * rng.uniform(*STEP_SPREAD)
    unit = next((u for u in (30, 6, 2) if u <= step * 1.2), 1)  # a step keeping the pattern
    room = (MAX_VALUE - MIN_VALUE - 30) // (n - 1)  # leaves every start residue mod 30
    d = unit * max(1, min(round(step / unit), room // unit))
    ok, top = _starts(n, d % 30, want), MAX_VALUE - (n - 1) * d
    low = min(max(MIN_VALUE, low), top)
    a = min((a for a in range(max(MIN_VALUE, int(low) - 30), min(top, int(low) + 30) + 1)
             if a % 30 in ok), key=lambda a: (abs(a - low), rng.random()))
    return tuple(a + i * d for i in range(n))


def arithmetic_like(seq: tuple[int, ...], rng: random.Random) -> tuple[int, ...]:
    """An arithmetic progression with the length and direction of the geometric ``seq``, its
    divisibility pattern (a prime dividing some elements: all or none by ``ALL_SHARE``) and
    the nearest of ``TRIES`` candidates in magnitude and digits."""
    n, lo, hi = len(seq), min(seq), max(seq)
    want = tuple(share == 1 or 0 < share and rng.random() < p
                 for share, p in zip(shares(seq), ALL_SHARE, strict=True))
    target = _profile(seq)

    def distance(c: tuple[int, ...]) -> float:
        return sum(((f - t) / s) ** 2 for f, t, s in zip(_profile(c), target, SCALES,
                                                            strict=True))
    out = min((_candidate(n, lo, hi - lo, want, rng) for _ in range(TRIES)), key=distance)
    return out if seq[0] < seq[-1] else out[::-1]


def perturbed(seq: tuple[int, ...], rng: random.Random) -> tuple[int, ...]:
    """``seq`` with one interior element moved to one of the four nearest values divisible by
    the same of ``PRIMES``; never one whose other elements keep a progression of four."""
    n = len(seq)
    i = rng.randint(1, n - 2) if n < 6 else rng.randint(2, 3)
    x = seq[i]
    near = [y for k in range(1, 31) for y in (x - k, x + k)
            if MIN_VALUE <= y <= MAX_VALUE and gcd(y, 30) == gcd(x, 30)]
    return seq[:i] + (rng.choice(near[:4]),) + seq[i + 1:]
