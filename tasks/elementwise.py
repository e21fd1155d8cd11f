"""Built-in element-wise tasks: class 1 when every element has the property, class 0 when none
has, None when mixed or empty (parity, primality, divisibility by 3 and 5, squares, Fibonacci
numbers). ``harness run --all`` trains on ``parity``, ``divisible-by-5`` and ``square`` (and
evaluates on every task). Every default encoder + adapter learned four tasks under the quick
profile (two seeds) on the samples of seed 1 (``harness.learnability``): these three and
``fibonacci``, all pairwise independent (Cramér's V 0.05-0.19); ``square`` is taken over
``fibonacci`` because its sampler passes the joint-nuisance audit with room (0.50 against
fibonacci's 0.53-0.56 over seeds 0-5, whose weights were searched to pass it), and a fourth
train task would not fit the cold run's budget. ``primality`` stays an eval task: no encoder +
adapter learned it (MiniLM fine-tuned in full +0.33 [-0.89, 1.54]; scratch +0.00, neither
learned nor memorised).

Samplers draw each element independently, from *strata* of the universe: a stratum holds some
values with the property and some without, and both classes pick strata with the same weights,
then a value of their own kind inside it. Strata that keep magnitude, digits, leading digit and
residues alike in both classes are what keep those nuisances from predicting the label
(``harness tasks --audit``); a value no stratum can match is never drawn. Tasks whose property
leaves the nuisances alike under uniform draws use one stratum: the whole universe."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import ClassVar

from harness.api import Sequence, Task, balanced_sample
from harness.hookspecs import Register, hookimpl
from harness.tasks.numbers import (
    MAX_VALUE,
    MIN_VALUE,
    ints,
    is_fibonacci,
    is_prime,
    is_square,
    random_length,
)

_POOLS: dict[type[Task], tuple[tuple[int, ...], tuple[int, ...]]] = {}
_STRATA: dict[type[Task], tuple[list[float], list[tuple[tuple[int, ...], tuple[int, ...]]]]] = {}

#: a stratum: (weight, values lacking the property, values having it)
Stratum = tuple[float, tuple[int, ...], tuple[int, ...]]


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

    trains_by_default: ClassVar[bool] = False

    @classmethod
    def has(cls, x: int) -> bool:
        """Whether the integer ``x`` (any size, any sign) has the property."""
        raise NotImplementedError

    def label(self, seq: Seq[int]) -> int | None:
        vals = ints(seq)
        if not vals:
            return None
        flags = [self.has(x) for x in vals]
        if all(flags):
            return 1
        if not any(flags):
            return 0
        return None

    @classmethod
    def strata(cls) -> list[Stratum]:
        """The strata elements are drawn from; by default one, the whole universe (every value
        with the property equally likely, and every value without)."""
        lack, have = _pools(cls)
        return [(1.0, lack, have)]

    def sample(self, n: int, rng: random.Random) -> list[Sequence]:
        cls = type(self)
        if cls not in _STRATA:
            found = [s for s in cls.strata() if s[0] > 0 and s[1] and s[2]]
            _STRATA[cls] = ([s[0] for s in found], [(s[1], s[2]) for s in found])
        weights, pairs = _STRATA[cls]

        def make(label: int, rng: random.Random) -> Sequence:
            length = random_length(rng)
            if len(pairs) == 1:  # the whole universe: the draws of version 1 samplers
                return tuple(rng.choice(pairs[0][label]) for _ in range(length))
            picked = rng.choices(pairs, weights=weights, k=length)
            return tuple(rng.choice(p[label]) for p in picked)

        return balanced_sample(self, n, rng, make)


def decade_strata(cls: type[_Elementwise], allowed: Callable[[int], bool] = lambda v: True
                  ) -> list[Stratum]:
    """One stratum per decade from 10 up (10-19, 20-29, ..., 990-999: the number of digits and
    the leading digit are the same throughout), of the ``allowed`` values, weighted by the
    smaller of its two classes. Single digits are left out: each is a class of its own."""
    found: dict[int, tuple[list[int], list[int]]] = {}
    for v in range(max(MIN_VALUE, 10), MAX_VALUE + 1):
        if allowed(v):
            found.setdefault(v // 10, ([], []))[int(cls.has(v))].append(v)
    return [(float(min(len(a), len(b))), tuple(a), tuple(b))
            for _, (a, b) in sorted(found.items()) if a and b]


def _flags(v: int) -> tuple[bool, bool, bool, int]:
    """What the audit's shares and digits read of one value: odd, divisible by 3, divisible by
    5, number of digits."""
    return v % 2 == 1, v % 3 == 0, v % 5 == 0, len(str(v))


def matched_strata(cls: type[_Elementwise], alike: Callable[[int, int], bool]) -> list[Stratum]:
    """One stratum per value h with the property (from 10 up): against it, every value v from
    10 up lacking it that is odd, divisible by 3 and by 5 as h is, has as many digits, and is
    ``alike(h, v)`` (near it); h is left out where none is."""
    out: list[Stratum] = []
    values = range(max(MIN_VALUE, 10), MAX_VALUE + 1)
    for h in values:
        if cls.has(h):
            near = tuple(v for v in values
                         if not cls.has(v) and _flags(v) == _flags(h) and alike(h, v))
            if near:
                out.append((1.0, near, (h,)))
    return out


@dataclass(frozen=True)
class Parity(_Elementwise):
    """Every element even vs every element odd."""

    name: ClassVar[str] = "parity"
    version: ClassVar[str] = "1"
    trains_by_default: ClassVar[bool] = True
    classes: ClassVar[tuple[str, ...]] = ("even", "odd")
    exempt_nuisances: ClassVar[tuple[str, ...]] = ("odd-share",)  # the property itself

    @classmethod
    def has(cls, x: int) -> bool:
        return x % 2 == 1


@dataclass(frozen=True)
class Primality(_Elementwise):
    """Every element prime vs no element prime.

    Sampled from the values coprime to 30, decade by decade: every prime but 2, 3 and 5 is odd
    and coprime to 3 and 5, so the negatives are too (composites such as 49, 77, 91, 119), and
    both classes take each decade as often as its scarcer class allows. Composites coprime to
    30 are rare below 200 and primes thin out above, so small and large values are drawn less
    than uniform; 2, 3, 5 and 7 are never drawn. Largest nuisance AUC on 10,000 draws: 0.52
    (min; it was 0.99 for the odd share when the negatives were any non-primes)."""

    name: ClassVar[str] = "primality"
    version: ClassVar[str] = "2"
    trains_by_default: ClassVar[bool] = False
    classes: ClassVar[tuple[str, ...]] = ("no-primes", "all-primes")

    @classmethod
    def has(cls, x: int) -> bool:
        return is_prime(x)

    @classmethod
    def strata(cls) -> list[Stratum]:
        return decade_strata(cls, lambda v: math.gcd(v, 30) == 1)


@dataclass(frozen=True)
class DivisibleBy(_Elementwise):
    """Every element divisible by k vs none (make one with ``divisible_by(k)``)."""

    k: ClassVar[int]
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("none-divisible", "all-divisible")

    @classmethod
    def has(cls, x: int) -> bool:
        return x % cls.k == 0


def divisible_by(k: int, trains_by_default: bool = False) -> type[DivisibleBy]:
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
        # the share of multiples of k is the property itself (the audit measures 3 and 5)
        "exempt_nuisances": (f"div{k}-share",),
        "trains_by_default": trains_by_default,
    }
    return dataclass(frozen=True)(type(qualname, (DivisibleBy,), namespace))


DivisibleBy3 = divisible_by(3)
DivisibleBy5 = divisible_by(5, trains_by_default=True)


@dataclass(frozen=True)
class Square(_Elementwise):
    """Every element a perfect square vs none (0 and 1 are squares).

    Sampled square by square from 10 up: each against the non-squares of its decade (so
    magnitude, digits and leading digit match) that are odd, divisible by 3 and by 5 as it is
    (so the shares match element by element). The 18 squares with such a match are drawn
    equally often (16, 49, 64, 81, 121, ..., 961); 25, 36, 100, 144 and six more are not,
    nor 0, 1, 4 and 9. Largest nuisance AUC on 10,000 draws: 0.51 (the mean was 0.82 with
    uniform draws); joint AUC 0.50 at seeds 0 and 1 (0.63 when each decade's squares met
    all its non-squares: the max with the shares of multiples of 2, 3 and 5)."""

    name: ClassVar[str] = "square"
    version: ClassVar[str] = "3"
    trains_by_default: ClassVar[bool] = True
    classes: ClassVar[tuple[str, ...]] = ("no-squares", "all-squares")

    @classmethod
    def has(cls, x: int) -> bool:
        return is_square(x)

    @classmethod
    def strata(cls) -> list[Stratum]:
        return matched_strata(cls, lambda h, v: h // 10 == v // 10)


@dataclass(frozen=True)
class Fibonacci(_Elementwise):
    """Every element a Fibonacci number vs none (0, 1, 2, 3, 5, 8, ...).

    Only 16 Fibonacci numbers lie below 1000, so each drawn one h is matched by its own pair of
    negatives (``NEGATIVES``): the nearest values below and above it that have as many digits
    and are odd, divisible by 3 and by 5 as h is (so the shares match element by element), the
    nearer one drawn more often so that their mean is h. 21 has none below (it is matched by 27
    alone, and drawn rarely); 55's nearest (35, 65) are too far off, as are those of the single
    digits, so those are not drawn. ``WEIGHTS`` are how often each h is drawn: the audit's
    histograms of the min and max cut a pair where a bin edge falls between its two values,
    and the weights keep the pairs so cut rare (a search on seeds 0 and 1, the nine values
    being the fewest that let the paper profile's samples draw without leaks). Largest
    nuisance AUC on 10,000 draws: 0.52 (the mean was 0.96 with uniform negatives); joint AUC
    0.55 and 0.53 at seeds 0 and 1 (0.53-0.56 over seeds 0-5; 0.81 with the negatives h +- 2,
    h +- 4, which differ from h mod 3 and 5)."""

    name: ClassVar[str] = "fibonacci"
    version: ClassVar[str] = "3"
    classes: ClassVar[tuple[str, ...]] = ("no-fibonacci", "all-fibonacci")
    #: each drawn Fibonacci number -> its negatives (below, above; or one value)
    NEGATIVES: ClassVar[dict[int, tuple[int, ...]]] = {
        13: (11, 17), 21: (27,), 34: (32, 38), 89: (83, 91), 144: (138, 156),
        233: (229, 239), 377: (373, 379), 610: (590, 620), 987: (981, 993)}
    #: how often each is drawn (relative)
    WEIGHTS: ClassVar[dict[int, float]] = {
        13: 1.5, 21: 0.15, 34: 1.3, 89: 0.35, 144: 0.65, 233: 1.15, 377: 1.1, 610: 1.4,
        987: 0.75}

    @classmethod
    def has(cls, x: int) -> bool:
        return is_fibonacci(x)

    @classmethod
    def strata(cls) -> list[Stratum]:
        out: list[Stratum] = []
        for h, near in cls.NEGATIVES.items():
            if not all(_flags(v) == _flags(h) and not cls.has(v) for v in near):
                raise RuntimeError(f"fibonacci: {near} do not match {h}")  # pragma: no cover
            # (b, a) -> b (a - h) times and a (h - b) times: their mean is h
            negs = near if len(near) == 1 else ((near[0],) * (near[1] - h)
                                                 + (near[1],) * (h - near[0]))
            out.append((cls.WEIGHTS[h], negs, (h,)))
        return out


TASKS: tuple[type[Task], ...] = (Parity, Primality, DivisibleBy3, DivisibleBy5, Square, Fibonacci)


@hookimpl
def register_tasks(register: Register) -> None:
    for cls in TASKS:
        register(cls)
