"""The built-in tasks: hand-picked labels, and the sampling contract for every task."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import numpy as np
import pytest

from harness.api import Task
from harness.tasks import elementwise, numbers, sequence_wide

ALL_TASKS = (*elementwise.TASKS, *sequence_wide.TASKS)

TASKS = {cls.name: cls() for cls in ALL_TASKS}
EXPECTED_NAMES = [
    "parity", "primality", "divisible-by-3", "divisible-by-5", "square", "fibonacci",
    "progression", "sum-parity", "digit-sum-mod-3", "monotonic",
]
task_params = pytest.mark.parametrize("task", list(TASKS.values()), ids=list(TASKS))

FIB_100 = 354224848179261915075  # the 100th Fibonacci number
M61 = 2**61 - 1  # a Mersenne prime

# (task name, sequence, expected label)
LABELS = [
    # parity: all even -> 0, all odd -> 1
    ("parity", (), None),
    ("parity", (0,), 0),
    ("parity", (1,), 1),
    ("parity", (2, 4, 6, 0), 0),
    ("parity", (1, 3, 5, 999), 1),
    ("parity", (1, 2), None),
    ("parity", (10**20, 2), 0),
    ("parity", (-3, -5), 1),
    ("parity", (-2,), 0),
    # primality: all prime -> 1, none prime -> 0
    ("primality", (), None),
    ("primality", (2, 3, 5, 7), 1),
    ("primality", (0, 1, 4, 9), 0),
    ("primality", (2, 4), None),
    ("primality", (0,), 0),
    ("primality", (1,), 0),
    ("primality", (2,), 1),
    ("primality", (997,), 1),
    ("primality", (999,), 0),
    ("primality", (1_000_003, 10_007), 1),
    ("primality", (1_000_001,), 0),
    ("primality", (561,), 0),  # a Carmichael number
    ("primality", (M61,), 1),
    ("primality", (2**61 + 1,), 0),
    ("primality", (M61 * (2**31 - 1),), 0),
    ("primality", (-7,), 0),  # negatives are not prime
    # divisible-by-k: all -> 1, none -> 0; 0 is divisible by every k
    ("divisible-by-3", (), None),
    ("divisible-by-3", (0,), 1),
    ("divisible-by-3", (3, 6, 9, 999), 1),
    ("divisible-by-3", (1, 2, 4), 0),
    ("divisible-by-3", (3, 4), None),
    ("divisible-by-3", (-3,), 1),
    ("divisible-by-3", (10**18,), 0),
    ("divisible-by-3", (3 * 10**30,), 1),
    ("divisible-by-5", (0, 5, 10, 995), 1),
    ("divisible-by-5", (1, 2, 3, 4, 6), 0),
    ("divisible-by-5", (5, 6), None),
    ("divisible-by-5", (1,), 0),
    # square: 0 and 1 are squares
    ("square", (), None),
    ("square", (0, 1, 4, 9, 961), 1),
    ("square", (2, 3, 5, 999), 0),
    ("square", (4, 5), None),
    ("square", (10**40,), 1),
    ("square", (10**40 + 1,), 0),
    ("square", (-4,), 0),
    # fibonacci
    ("fibonacci", (), None),
    ("fibonacci", (0, 1, 1, 2, 3, 5, 8), 1),
    ("fibonacci", (4, 6, 7, 9, 999), 0),
    ("fibonacci", (1, 4), None),
    ("fibonacci", (987,), 1),
    ("fibonacci", (FIB_100,), 1),
    ("fibonacci", (FIB_100 + 1,), 0),
    ("fibonacci", (-1,), 0),
    # progression: arithmetic 0, geometric 1, neither 2, constant/short None
    ("progression", (), None),
    ("progression", (1,), None),
    ("progression", (1, 2), None),
    ("progression", (1, 2, 3, 4), 0),
    ("progression", (10, 7, 4, 1), 0),
    ("progression", (0, 2, 4), 0),
    ("progression", (-3, -1, 1), 0),
    ("progression", (2, 4, 8, 16), 1),
    ("progression", (16, 8, 4, 2), 1),
    ("progression", (4, 6, 9), 1),  # ratio 3/2
    ("progression", (1, 3, 9, 27, 81, 243), 1),
    ("progression", (5, 5, 5, 5), None),  # constant: both, so neither class
    ("progression", (0, 0, 0), None),
    ("progression", (1, 2, 4, 7), 2),
    ("progression", (2, 4, 8, 15), 2),
    ("progression", (0, 0, 1), 2),
    ("progression", (1, -1, 1), 2),
    ("progression", (-1, -2, -4), 2),  # geometric needs positive terms
    ("progression", (0, 1, 2, 10**30), 2),
    # sum-parity
    ("sum-parity", (), None),
    ("sum-parity", (0,), 0),
    ("sum-parity", (1,), 1),
    ("sum-parity", (1, 2, 3), 0),
    ("sum-parity", (1, 2, 4), 1),
    ("sum-parity", (10**30 + 1,), 1),
    ("sum-parity", (-1,), 1),
    # digit-sum-mod-3
    ("digit-sum-mod-3", (), None),
    ("digit-sum-mod-3", (0,), 0),
    ("digit-sum-mod-3", (1,), 1),
    ("digit-sum-mod-3", (5,), 2),
    ("digit-sum-mod-3", (19, 28), 2),  # 1+9+2+8 = 20
    ("digit-sum-mod-3", (999,), 0),
    ("digit-sum-mod-3", (12, 345), 0),  # 15
    ("digit-sum-mod-3", (10**5000,), 1),  # too long for str()
    ("digit-sum-mod-3", (-7,), 1),
    # monotonic: strictly increasing 0, strictly decreasing 1, neither 2
    ("monotonic", (), None),
    ("monotonic", (5,), None),
    ("monotonic", (1, 2), 0),
    ("monotonic", (2, 1), 1),
    ("monotonic", (1, 1), 2),
    ("monotonic", (0, 1, 2, 999), 0),
    ("monotonic", (9, 5, 2, 0), 1),
    ("monotonic", (1, 3, 2), 2),
    ("monotonic", (1, 2, 2, 3), 2),
    ("monotonic", (-5, -3, 0, 10**30), 0),
]


def _expected_counts(n: int, k: int) -> list[int]:
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


# ---------------------------------------------------------------------------------- definitions


def test_names() -> None:
    names = [cls.name for cls in ALL_TASKS]
    assert names == EXPECTED_NAMES
    assert len(set(names)) == len(names) >= 9


def test_hook_registers_every_task_in_order() -> None:
    registered: list[type] = []
    elementwise.register_tasks(registered.append)
    sequence_wide.register_tasks(registered.append)
    assert registered == list(ALL_TASKS)


@task_params
def test_task_definition(task: Task) -> None:
    cls = type(task)
    assert issubclass(cls, Task)
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert dataclasses.fields(cls) == ()
    # 2: the matched samplers of issue #16; 3: negatives matched mod 2, 3 and 5 (joint audit)
    assert cls.version in ("1", "2", "3")
    assert isinstance(cls.classes, tuple) and len(cls.classes) >= 2
    assert all(isinstance(c, str) for c in cls.classes)
    assert len(set(cls.classes)) == len(cls.classes)
    doc = cls.__doc__ or ""
    summary = doc.strip().split("\n\n")[0]  # a one-line summary, then why, where needed
    assert summary and "\n" not in summary
    assert task == cls() and hash(task) == hash(cls())
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.name = "other"  # type: ignore[misc]


def test_divisible_by_factory() -> None:
    seven = elementwise.divisible_by(7)
    assert issubclass(seven, elementwise.DivisibleBy)
    assert seven.name == "divisible-by-7" and seven.k == 7
    assert seven().label((7, 14, 0)) == 1
    assert seven().label((1, 8)) == 0
    assert seven().label((7, 8)) is None
    assert elementwise.DivisibleBy3.k == 3 and elementwise.DivisibleBy5.k == 5
    with pytest.raises(ValueError):
        elementwise.divisible_by(1)


# ----------------------------------------------------------------------------------------- labels


@pytest.mark.parametrize(("name", "seq", "expected"), LABELS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(LABELS)])
def test_label(name: str, seq: tuple[int, ...], expected: int | None) -> None:
    assert TASKS[name].label(seq) == expected
    assert TASKS[name].label(list(seq)) == expected  # any sequence type


def test_every_task_has_label_examples_for_every_class() -> None:
    for name, task in TASKS.items():
        seen = {expected for n, _, expected in LABELS if n == name}
        assert seen >= set(range(len(task.classes))) | {None}, name


ODD_INPUTS = [
    (), (0,), (1,), (999,), (1000,), (10**30,), (-1,), (-5, -5, -5), (-4, -2, 0, 2),
    (3, -3, 9), (10**5000, 1), tuple(range(50)), (7,) * 20,
]


@task_params
@pytest.mark.parametrize("seq", ODD_INPUTS, ids=range(len(ODD_INPUTS)))
def test_label_never_raises(task: Task, seq: tuple[int, ...]) -> None:
    label = task.label(seq)
    assert label is None or (type(label) is int and 0 <= label < len(task.classes))


@task_params
def test_label_accepts_numpy_ints_and_rejects_non_integers(task: Task) -> None:
    seq = (2, 3, 5, 7, 11)
    assert task.label(np.array(seq, dtype=np.int64)) == task.label(seq)
    assert task.label(tuple(np.int32(x) for x in seq)) == task.label(seq)
    assert task.label((1.5, 2.0, 3.0)) is None
    assert task.label(("1", "2", "3")) is None
    assert task.label(None) is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- sampling


def _check_sample(task: Task, seqs: list[tuple[int, ...]], n: int) -> None:
    assert isinstance(seqs, list) and len(seqs) == n
    labels = [task.label(s) for s in seqs]
    assert None not in labels
    counts = Counter(labels)
    assert [counts[i] for i in range(len(task.classes))] == _expected_counts(n, len(task.classes))
    for s in seqs:
        assert type(s) is tuple
        # progression also draws 3-term sequences (the universe's 4-6 hold too few geometric
        # progressions for leak-free samples; see its docstring)
        shortest = numbers.MIN_LEN - (task.name == "progression")
        assert shortest <= len(s) <= numbers.MAX_LEN
        assert all(type(x) is int for x in s)
        assert all(numbers.MIN_VALUE <= x <= numbers.MAX_VALUE for x in s)


def test_universe_constants() -> None:
    assert (numbers.MIN_LEN, numbers.MAX_LEN) == (4, 6)
    assert (numbers.MIN_VALUE, numbers.MAX_VALUE) == (0, 999)


@task_params
def test_sample_balanced_labelled_and_in_bounds(task: Task) -> None:
    seqs = task.sample(200, random.Random(0))
    _check_sample(task, seqs, 200)
    assert len(set(seqs)) >= 150  # not degenerate
    assert {len(s) for s in seqs} == ({3, 4, 5, 6} if task.name == "progression" else {4, 5, 6})


@task_params
def test_sample_shuffled(task: Task) -> None:
    labels = [task.label(s) for s in task.sample(60, random.Random(3))]
    k = len(task.classes)
    assert labels != [i % k for i in range(60)]
    assert labels != sorted(labels)


@task_params
def test_sample_deterministic(task: Task) -> None:
    first = task.sample(200, random.Random(42))
    assert first == task.sample(200, random.Random(42))
    assert first != task.sample(200, random.Random(43))


@task_params
def test_sample_uses_only_the_given_rng(task: Task) -> None:
    state = random.getstate()
    rng = random.Random(5)
    task.sample(50, rng)
    assert random.getstate() == state
    rng_b = random.Random(5)
    task.sample(50, rng_b)
    assert rng.getstate() == rng_b.getstate()  # consumed the same way


@task_params
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
def test_sample_small_n(task: Task, n: int) -> None:
    seqs = task.sample(n, random.Random(n))
    _check_sample(task, seqs, n)
    if n == 0:
        assert seqs == []


@task_params
def test_sample_many(task: Task) -> None:
    seqs = task.sample(10_000, random.Random(7))
    _check_sample(task, seqs, 10_000)


def test_progression_samples_cover_increasing_and_decreasing() -> None:
    seqs = TASKS["progression"].sample(300, random.Random(1))
    arith = [s for s in seqs if TASKS["progression"].label(s) == 0]
    geom = [s for s in seqs if TASKS["progression"].label(s) == 1]
    assert any(s[1] > s[0] for s in arith) and any(s[1] < s[0] for s in arith)
    assert any(s[1] > s[0] for s in geom) and any(s[1] < s[0] for s in geom)
    assert all(x >= 1 for s in geom for x in s)


def test_sample_rejects_negative_n() -> None:
    with pytest.raises(ValueError):
        TASKS["parity"].sample(-1, random.Random(0))
