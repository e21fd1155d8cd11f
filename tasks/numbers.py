"""The universe every built-in task samples from, and the number theory the tasks share.

Sequences have ``MIN_LEN``..``MAX_LEN`` elements (inclusive), each a value in
``MIN_VALUE``..``MAX_VALUE`` (inclusive); ``progression`` also draws 3-term sequences. A task's
``label`` is defined well beyond that universe: on any sequence of integers, of any length and
size (negative values included), it returns a class index or None where the property does not
apply; it never raises (a sequence that is not one of integers gets None).
"""

from __future__ import annotations

import math
import operator
import random
from typing import Any

from harness.api import Sequence

#: shortest sampled sequence (inclusive)
MIN_LEN = 4
#: longest sampled sequence (inclusive)
MAX_LEN = 6
#: smallest sampled value (inclusive)
MIN_VALUE = 0
#: largest sampled value (inclusive)
MAX_VALUE = 999


def ints(seq: Any) -> tuple[int, ...] | None:
    """``seq`` as a tuple of python ints, or None where it is not a sequence of integers.

    Anything with ``__index__`` counts as an integer (numpy integers included); floats do not.
    """
    try:
        return tuple(operator.index(x) for x in seq)
    except TypeError:
        return None


def random_length(rng: random.Random) -> int:
    return rng.randint(MIN_LEN, MAX_LEN)


def random_seq(rng: random.Random) -> Sequence:
    """A sequence uniform over the universe's lengths, then uniform over its values."""
    return tuple(rng.randint(MIN_VALUE, MAX_VALUE) for _ in range(random_length(rng)))


def is_square(n: int) -> bool:
    if n < 0:
        return False
    r = math.isqrt(n)
    return r * r == n


def sieve(limit: int) -> list[bool]:
    flags = [True] * (limit + 1)
    flags[0] = False
    if limit >= 1:
        flags[1] = False
    for p in range(2, math.isqrt(limit) + 1):
        if flags[p]:
            flags[p * p::p] = [False] * len(range(p * p, limit + 1, p))
    return flags


SMALL_PRIME_FLAGS = sieve(MAX_VALUE)
MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n: int) -> bool:
    """Exact below 3.3e24 (Miller-Rabin with the first twelve prime bases is deterministic
    there); above, a strong probable-prime test to those twelve bases."""
    if n <= MAX_VALUE:
        return n >= 2 and SMALL_PRIME_FLAGS[n]
    for p in MR_BASES:
        if n % p == 0:
            return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def is_fibonacci(n: int) -> bool:
    """n is a Fibonacci number iff 5n^2 + 4 or 5n^2 - 4 is a perfect square."""
    if n < 0:
        return False
    s = 5 * n * n
    return is_square(s + 4) or is_square(s - 4)
