"""The built-in tasks: number-theoretic properties of short integer sequences.

Every task samples from one common universe: sequences of ``MIN_LEN``..``MAX_LEN`` elements
(inclusive), each a value in ``MIN_VALUE``..``MAX_VALUE`` (inclusive). ``label`` is defined
well beyond that universe: on any sequence of integers, of any length and size (negative values
included), it returns a class index or None where the property does not apply; it never raises
(a sequence that is not one of integers gets None).

Elementwise tasks (parity, primality, divisibility, squares, Fibonacci numbers) share one
scheme: class 1 when every element has the property, class 0 when none has, None when mixed or
empty. Their samplers draw every element from the sorted list of in-universe values having (or
lacking) the property, so no class relies on rejection. The other tasks sample by rejection
where a class is common (acceptance well above 20%) and build rare classes directly.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar

from harness.api import Sequence, Task
from harness.hookspecs import Register, hookimpl

#: shortest sampled sequence (inclusive)
MIN_LEN = 4
#: longest sampled sequence (inclusive)
MAX_LEN = 6
#: smallest sampled value (inclusive)
MIN_VALUE = 0
#: largest sampled value (inclusive)
MAX_VALUE = 999

#: a sampler draws again when its proposal has the wrong label; this many misses is a bug
_MAX_ATTEMPTS = 10_000


# -------------------------------------------------------------------------------------- helpers


def _ints(seq: Any) -> tuple[int, ...] | None:
    """``seq`` as a tuple of python ints, or None where it is not a sequence of integers.

    Anything with ``__index__`` counts as an integer (numpy integers included); floats do not.
    """
    try:
        return tuple(operator.index(x) for x in seq)
    except TypeError:
        return None


def _random_length(rng: random.Random) -> int:
    return rng.randint(MIN_LEN, MAX_LEN)


def _random_seq(rng: random.Random) -> Sequence:
    """A sequence uniform over the universe's lengths, then uniform over its values."""
    return tuple(rng.randint(MIN_VALUE, MAX_VALUE) for _ in range(_random_length(rng)))


def _balanced(task: Task, n: int, rng: random.Random,
              make: Callable[[int, random.Random], Sequence]) -> list[Sequence]:
    """``n`` sequences from ``make(cls, rng)``, class-balanced and shuffled.

    Classes are visited round-robin (class i gets ``n // k`` plus one if ``i < n % k``). A
    proposal whose label is not the intended class is drawn again, so ``make`` may be a plain
    rejection proposal (a random sequence) for classes that are common.
    """
    if n < 0:
        raise ValueError(f"cannot sample {n} sequences")
    k = len(task.classes)
    out: list[Sequence] = []
    for j in range(n):
        cls = j % k
        for _ in range(_MAX_ATTEMPTS):
            seq = tuple(int(x) for x in make(cls, rng))
            if task.label(seq) == cls:
                out.append(seq)
                break
        else:  # pragma: no cover - a sampler bug, not a user mistake
            raise RuntimeError(f"task {task.name}: no sequence of class "
                               f"{task.classes[cls]!r} in {_MAX_ATTEMPTS} attempts")
    rng.shuffle(out)
    return out


def _is_square(n: int) -> bool:
    if n < 0:
        return False
    r = math.isqrt(n)
    return r * r == n


def _sieve(limit: int) -> list[bool]:
    flags = [True] * (limit + 1)
    flags[0] = False
    if limit >= 1:
        flags[1] = False
    for p in range(2, math.isqrt(limit) + 1):
        if flags[p]:
            flags[p * p::p] = [False] * len(range(p * p, limit + 1, p))
    return flags


_SMALL_PRIME_FLAGS = _sieve(MAX_VALUE)
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def _is_prime(n: int) -> bool:
    """Exact below 3.3e24 (Miller-Rabin with the first twelve prime bases is deterministic
    there); above, a strong probable-prime test to those twelve bases."""
    if n <= MAX_VALUE:
        return n >= 2 and _SMALL_PRIME_FLAGS[n]
    for p in _MR_BASES:
        if n % p == 0:
            return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _MR_BASES:
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


def _is_fibonacci(n: int) -> bool:
    """n is a Fibonacci number iff 5n^2 + 4 or 5n^2 - 4 is a perfect square."""
    if n < 0:
        return False
    s = 5 * n * n
    return _is_square(s + 4) or _is_square(s - 4)


# ---------------------------------------------------------------------------- elementwise tasks


_POOLS: dict[type[Task], tuple[tuple[int, ...], tuple[int, ...]]] = {}


def _pools(cls: type[_Elementwise]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The sorted in-universe values lacking and having ``cls``'s property (cached)."""
    if cls not in _POOLS:
        values = range(MIN_VALUE, MAX_VALUE + 1)
        lack = tuple(v for v in values if not cls.has(v))
        have = tuple(v for v in values if cls.has(v))
        if not lack or not have:  # pragma: no cover - a task definition bug
            raise RuntimeError(f"task {cls.name}: a class has no values in the universe")
        _POOLS[cls] = (lack, have)
    return _POOLS[cls]


@dataclass(frozen=True)
class _Elementwise(Task):
    """Base of the elementwise tasks: class 1 if every element has the property, 0 if none."""

    @classmethod
    def has(cls, x: int) -> bool:
        """Whether the integer ``x`` (any size, any sign) has the property."""
        raise NotImplementedError

    def label(self, seq: Seq[int]) -> int | None:
        vals = _ints(seq)
        if not vals:
            return None
        flags = [self.has(x) for x in vals]
        if all(flags):
            return 1
        if not any(flags):
            return 0
        return None

    def sample(self, n: int, rng: random.Random) -> list[Sequence]:
        pools = _pools(type(self))

        def make(cls: int, rng: random.Random) -> Sequence:
            pool = pools[cls]
            return tuple(rng.choice(pool) for _ in range(_random_length(rng)))

        return _balanced(self, n, rng, make)


@dataclass(frozen=True)
class Parity(_Elementwise):
    """Every element even vs every element odd."""

    name: ClassVar[str] = "parity"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("even", "odd")

    @classmethod
    def has(cls, x: int) -> bool:
        return x % 2 == 1


@dataclass(frozen=True)
class Primality(_Elementwise):
    """Every element prime vs no element prime."""

    name: ClassVar[str] = "primality"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("no-primes", "all-primes")

    @classmethod
    def has(cls, x: int) -> bool:
        return _is_prime(x)


@dataclass(frozen=True)
class DivisibleBy(_Elementwise):
    """Every element divisible by k vs none (make one with ``divisible_by(k)``)."""

    k: ClassVar[int]
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("none-divisible", "all-divisible")

    @classmethod
    def has(cls, x: int) -> bool:
        return x % cls.k == 0


def divisible_by(k: int) -> type[DivisibleBy]:
    """The ``divisible-by-{k}`` task class (k >= 2; 0 counts as divisible by every k)."""
    if k < 2:
        raise ValueError(f"divisible_by needs k >= 2, got {k}")
    qualname = f"DivisibleBy{k}"
    namespace = {
        "__doc__": f"Every element divisible by {k} vs no element divisible by {k}.",
        "__module__": __name__,
        "__qualname__": qualname,
        "name": f"divisible-by-{k}",
        "k": k,
    }
    return dataclass(frozen=True)(type(qualname, (DivisibleBy,), namespace))


DivisibleBy3 = divisible_by(3)
DivisibleBy5 = divisible_by(5)


@dataclass(frozen=True)
class Square(_Elementwise):
    """Every element a perfect square vs none (0 and 1 are squares)."""

    name: ClassVar[str] = "square"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("no-squares", "all-squares")

    @classmethod
    def has(cls, x: int) -> bool:
        return _is_square(x)


@dataclass(frozen=True)
class Fibonacci(_Elementwise):
    """Every element a Fibonacci number vs none (0, 1, 2, 3, 5, 8, ...)."""

    name: ClassVar[str] = "fibonacci"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("no-fibonacci", "all-fibonacci")

    @classmethod
    def has(cls, x: int) -> bool:
        return _is_fibonacci(x)


# -------------------------------------------------------------------------- sequence-wide tasks


def _is_arithmetic(vals: tuple[int, ...]) -> bool:
    """A constant nonzero difference."""
    d = vals[1] - vals[0]
    return d != 0 and all(b - a == d for a, b in pairwise(vals))


def _is_geometric(vals: tuple[int, ...]) -> bool:
    """All positive with a constant (possibly rational) ratio other than 1."""
    if any(x <= 0 for x in vals) or vals[1] == vals[0]:
        return False
    return all(vals[i + 1] * vals[i - 1] == vals[i] ** 2 for i in range(1, len(vals) - 1))


@dataclass(frozen=True)
class Progression(Task):
    """Arithmetic vs geometric vs neither (length >= 3; constant sequences excluded)."""

    compositional: ClassVar[bool] = True

    name: ClassVar[str] = "progression"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("arithmetic", "geometric", "neither")

    def label(self, seq: Seq[int]) -> int | None:
        vals = _ints(seq)
        if vals is None or len(vals) < 3 or len(set(vals)) == 1:
            return None  # too short, or constant: both progressions with difference 0 / ratio 1
        if _is_arithmetic(vals):
            return 0
        if _is_geometric(vals):
            return 1
        return 2

    def sample(self, n: int, rng: random.Random) -> list[Sequence]:
        return _balanced(self, n, rng, self._make)

    @staticmethod
    def _make(cls: int, rng: random.Random) -> Sequence:
        length = _random_length(rng)
        steps = length - 1
        if cls == 0:  # nonzero difference of either sign, every term within the universe
            d = rng.randint(1, (MAX_VALUE - MIN_VALUE) // steps) * rng.choice((1, -1))
            lo = MIN_VALUE if d > 0 else MIN_VALUE - steps * d
            hi = MAX_VALUE - steps * d if d > 0 else MAX_VALUE
            a = rng.randint(lo, hi)
            return tuple(a + i * d for i in range(length))
        if cls == 1:  # integer ratio 2..5 from a >= 1, reversed half the time (ratio 1/r)
            ratios = [r for r in range(2, 6) if r ** steps <= MAX_VALUE]  # a = 1 fits
            r = rng.choice(ratios)
            a = rng.randint(1, MAX_VALUE // r ** steps)
            seq = tuple(a * r ** i for i in range(length))
            return seq[::-1] if rng.randrange(2) else seq
        return _random_seq(rng)  # neither: rejection, nearly every random sequence qualifies


@dataclass(frozen=True)
class SumParity(Task):
    """Even vs odd sum of the elements."""

    compositional: ClassVar[bool] = True

    name: ClassVar[str] = "sum-parity"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("even-sum", "odd-sum")

    def label(self, seq: Seq[int]) -> int | None:
        vals = _ints(seq)
        if not vals:
            return None
        return sum(vals) % 2

    def sample(self, n: int, rng: random.Random) -> list[Sequence]:
        return _balanced(self, n, rng, lambda cls, rng: _random_seq(rng))


@dataclass(frozen=True)
class DigitSumMod3(Task):
    """Sum of all decimal digits of all elements, mod 3."""

    compositional: ClassVar[bool] = True

    name: ClassVar[str] = "digit-sum-mod-3"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("0", "1", "2")

    def label(self, seq: Seq[int]) -> int | None:
        vals = _ints(seq)
        if not vals:
            return None
        # A number is congruent to its digit sum mod 3, so this is the digit sum of |x| mod 3
        # without rendering huge ints as text (str() refuses ints of more than 4300 digits).
        return sum(abs(x) % 3 for x in vals) % 3

    def sample(self, n: int, rng: random.Random) -> list[Sequence]:
        return _balanced(self, n, rng, lambda cls, rng: _random_seq(rng))


@dataclass(frozen=True)
class Monotonic(Task):
    """Strictly increasing vs strictly decreasing vs neither (length >= 2)."""

    compositional: ClassVar[bool] = True

    name: ClassVar[str] = "monotonic"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("increasing", "decreasing", "neither")

    def label(self, seq: Seq[int]) -> int | None:
        vals = _ints(seq)
        if vals is None or len(vals) < 2:
            return None
        pairs = list(pairwise(vals))
        if all(a < b for a, b in pairs):
            return 0
        if all(a > b for a, b in pairs):
            return 1
        return 2

    def sample(self, n: int, rng: random.Random) -> list[Sequence]:
        return _balanced(self, n, rng, self._make)

    @staticmethod
    def _make(cls: int, rng: random.Random) -> Sequence:
        seq = _random_seq(rng)
        if cls == 2:
            return seq  # rejection: most random sequences are neither
        # sorted random values; the rare draw with a repeated value is rejected by _balanced
        return tuple(sorted(seq, reverse=cls == 1))


TASKS: tuple[type[Task], ...] = (
    Parity,
    Primality,
    DivisibleBy3,
    DivisibleBy5,
    Square,
    Fibonacci,
    Progression,
    SumParity,
    DigitSumMod3,
    Monotonic,
)

# `harness run --all` trains on these three (one element-wise, one number-theoretic, one
# compositional) and evaluates on every task: each train task multiplies the LLM variants, and
# the default grid must fit a 2-core CPU. `--train-task NAME` trains on any task.
DEFAULT_TRAIN_TASKS = ("parity", "primality", "progression")
for _cls in TASKS:
    _cls.trains_by_default = _cls.name in DEFAULT_TRAIN_TASKS


@hookimpl
def register_tasks(register: Register) -> None:
    for cls in TASKS:
        register(cls)
