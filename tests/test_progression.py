"""The ``progression`` task's matched proposal (``harness.tasks.progressions``): arithmetic matches
in the cell of their geometric draw, and samples that still draw at the profiles' sizes."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from harness import samples
from harness.api import PROFILES
from harness.tasks import progressions
from harness.tasks.sequence_wide import Progression, _is_arithmetic, _is_geometric

TASK = Progression()


def _off(a: tuple[int, ...], g: tuple[int, ...]) -> int:
    """Bins (summed over the features and pairs of ``EDGES``) between two sequences' cells."""
    cells = progressions._bins(progressions._raw(np.array([sorted(a), sorted(g)])))
    return int(np.abs(cells[0].astype(int) - cells[1]).sum())


def test_every_drawn_geometric_progression_has_a_match_near_its_cell() -> None:
    weights = progressions.weights()
    drawn = [g for g, w in zip(progressions.GEOMETRIC, weights, strict=True) if w > 0]
    assert 1_400 <= len(drawn) < len(progressions.GEOMETRIC)
    assert {len(g) for g in drawn} == {3, 4, 5, 6}
    for g in drawn[::7]:
        assert progressions._options(g)
    # the rest have none near enough, and are never drawn
    rng = random.Random(0)
    assert all(weights[progressions.GEOMETRIC.index(tuple(sorted(progressions.geometric(rng))))]
               > 0 for _ in range(500))


def test_the_arithmetic_match_shares_length_direction_counts_and_cell() -> None:
    rng = random.Random(1)
    exact = 0
    for _ in range(400):
        g = progressions.geometric(rng)
        a = progressions.arithmetic_like(g, rng)
        assert _is_geometric(g) and _is_arithmetic(a) and TASK.label(a) == 0
        assert len(a) == len(g) and (a[0] < a[-1]) == (g[0] < g[-1])
        assert all(progressions.MIN_VALUE <= x <= progressions.MAX_VALUE for x in a)
        counts = tuple(int(c) for c in progressions._counts(np.array([a]))[0])
        assert counts in [w for w, _ in progressions._wants(tuple(sorted(g)))]
        off = _off(a, g)
        assert off <= progressions.MISSES[len(g)]
        exact += off == 0
    assert exact >= 300  # most draws match their cell exactly


def test_labels_and_classes_balanced() -> None:
    seqs = TASK.sample(3_000, random.Random(2))
    labels = [TASK.label(s) for s in seqs]
    assert [labels.count(c) for c in range(3)] == [1_000] * 3
    for s, y in zip(seqs, labels, strict=True):
        assert y == (0 if _is_arithmetic(s) else 1 if _is_geometric(s) else 2)
    lengths = [len(s) for s in seqs]
    assert {3, 4, 5, 6} <= set(lengths) and lengths.count(3) / len(lengths) > 0.9


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_the_profiles_samples_draw_without_leaks(profile: str) -> None:
    """Train, eval and validation samples draw (the leak rule holds them apart) with at most
    ``MAX_REPEATS`` of the eval sample repeated."""
    p = PROFILES[profile]
    for seed in (0, 1):
        ev = samples.eval_sample(TASK, p, seed)  # raises past MAX_REPEATS
        assert len(set(ev)) >= (1 - samples.MAX_REPEATS) * len(ev)
        assert len(samples.train_sample(TASK, p, seed)) == p.train_size
        assert len(samples.valid_sample(TASK, p, seed, size=p.held_out_size)) == p.held_out_size


def test_a_larger_eval_sample_repeats_little() -> None:
    """An eval sample of 600 (the quick profile's stream, larger): some 4% repeat."""
    p = dataclasses.replace(PROFILES["quick"], eval_size=600)
    for seed in (0, 1, 2):
        ev = samples.eval_sample(TASK, p, seed)
        assert len(ev) - len(set(ev)) <= 0.06 * len(ev)
