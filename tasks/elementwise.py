"""Built-in element-wise tasks: class 1 when every element has the property, class 0 when none
has, None when mixed or empty (parity, primality, divisibility by 3 and 5, squares, Fibonacci
numbers). Samplers draw every element from the sorted list of in-universe values having (or
lacking) the property, so no class relies on rejection. ``harness run --all`` trains on
``parity`` and ``primality`` (and evaluates on every task)."""

from __future__ import annotations

import random
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

    def sample(self, n: int, rng: random.Random) -> list[Sequence]:
        pools = _pools(type(self))

        def make(cls: int, rng: random.Random) -> Sequence:
            pool = pools[cls]
            return tuple(rng.choice(pool) for _ in range(random_length(rng)))

        return balanced_sample(self, n, rng, make)


@dataclass(frozen=True)
class Parity(_Elementwise):
    """Every element even vs every element odd."""

    name: ClassVar[str] = "parity"
    version: ClassVar[str] = "1"
    trains_by_default: ClassVar[bool] = True
    classes: ClassVar[tuple[str, ...]] = ("even", "odd")

    @classmethod
    def has(cls, x: int) -> bool:
        return x % 2 == 1


@dataclass(frozen=True)
class Primality(_Elementwise):
    """Every element prime vs no element prime."""

    name: ClassVar[str] = "primality"
    version: ClassVar[str] = "1"
    trains_by_default: ClassVar[bool] = True
    classes: ClassVar[tuple[str, ...]] = ("no-primes", "all-primes")

    @classmethod
    def has(cls, x: int) -> bool:
        return is_prime(x)


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
        return is_square(x)


@dataclass(frozen=True)
class Fibonacci(_Elementwise):
    """Every element a Fibonacci number vs none (0, 1, 2, 3, 5, 8, ...)."""

    name: ClassVar[str] = "fibonacci"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("no-fibonacci", "all-fibonacci")

    @classmethod
    def has(cls, x: int) -> bool:
        return is_fibonacci(x)


TASKS: tuple[type[Task], ...] = (Parity, Primality, DivisibleBy3, DivisibleBy5, Square, Fibonacci)


@hookimpl
def register_tasks(register: Register) -> None:
    for cls in TASKS:
        register(cls)
