"""The task audit (``harness.audit``): nuisance AUCs alone and jointly, label dependence, the
built-in tasks' bound, and ``harness tasks --audit``."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from harness import audit, audit_joint
from harness.api import Task, balanced_sample
from harness.cli import main
from harness.registry import Registry
from harness.report import design

#: built-in tasks whose nuisances *together* still predict the label (issue #32, point 5), with
#: the joint AUCs (logistic, trees) measured on 10,000 draws, seed 0, METHOD 2: known failures
#: of the samplers, kept visible here until they are fixed (then the test below asks to remove
#: them). None now. Fibonacci and square were fixed by matching each value's negatives on
#: parity, divisibility by 3 and 5 and digits (samplers version 3); progression (0.65, 0.68
#: from min, max and mean: a geometric progression's mean lies below its midrange) by drawing
#: each arithmetic match from its geometric draw's cell of the audit's bins (sampler version 3:
#: 0.51, 0.54)
KNOWN_JOINT_FAILURES: dict[str, tuple[float, float]] = {}


@pytest.fixture(scope="module")
def built_in(registry: Registry) -> list[Task]:
    return [cls() for _, cls in sorted(registry.components["tasks"].items())]


def test_every_built_in_task_meets_the_bound_on_10000_draws(built_in: list[Task]) -> None:
    found = audit.run_audit(built_in, seed=0, draws=10_000)
    assert {t.task for t in found.tasks} == {t.name for t in built_in}
    for t in found.tasks:
        name, value = t.strongest
        assert set(t.aucs) == set(audit.NUISANCES) and not t.error
        # above the bound only where the property allows no less, said in the docstring
        said = f"{value:.2f}" in (type_of(built_in, t.task).__doc__ or "")
        assert value <= audit.BOUND or (said and value <= audit.CEILING), (t.task, name, value)
        # all of them together: the same bound, but for the known failures listed above
        assert set(t.joint) == set(audit_joint.MODELS)
        model, joint = t.joint_best
        if t.task in KNOWN_JOINT_FAILURES:
            assert joint > audit.BOUND, f"{t.task} passes the joint audit now: unlist it"
            assert joint == pytest.approx(max(KNOWN_JOINT_FAILURES[t.task]), abs=0.03), (
                f"{t.task}'s joint AUC moved to {joint:.2f}: update KNOWN_JOINT_FAILURES")
            assert not t.passes and "together" in t.reason
        else:
            assert joint <= audit.BOUND, (t.task, model, joint)


def type_of(tasks: list[Task], name: str) -> type[Task]:
    return type(next(t for t in tasks if t.name == name))


def test_the_old_shortcuts_are_gone(built_in: list[Task]) -> None:
    """What the issue measured: primality by the odd share (0.94), fibonacci and square by the
    mean (0.96, 0.80), progression by the mean."""
    tasks = [t for t in built_in if t.name in ("primality", "fibonacci", "square", "progression")]
    found = {t.task: t for t in audit.run_audit(tasks, seed=1, draws=4_000).tasks}
    assert found["primality"].aucs["odd-share"] < 0.56
    for name in ("fibonacci", "square", "progression"):
        assert found[name].aucs["mean"] < 0.6, name


@dataclass(frozen=True)
class Small(Task):
    """All elements below 500 vs all above: a shortcut by construction."""

    name: ClassVar[str] = "small"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("large", "small")

    def label(self, seq):  # type: ignore[no-untyped-def]
        if all(x < 500 for x in seq):
            return 1
        return 0 if all(x >= 500 for x in seq) else None

    def sample(self, n: int, rng: random.Random):  # type: ignore[no-untyped-def]
        return balanced_sample(self, n, rng, lambda c, r: tuple(
            r.randint(0, 499) + (0 if c else 500) for _ in range(4)))


@dataclass(frozen=True)
class SmallExempt(Small):
    """The same, declaring magnitude its property."""

    name: ClassVar[str] = "small-exempt"
    exempt_nuisances: ClassVar[tuple[str, ...]] = ("min", "max", "mean", "digits",
                                                   "leading-digit")


def test_a_shortcut_task_is_flagged_and_exemptions_count() -> None:
    found = audit.run_audit([Small(), SmallExempt()], seed=0, draws=2_000)
    small, exempt = found.tasks
    assert small.aucs["mean"] > 0.99 and not small.passes
    assert small.strongest[0] in ("min", "max", "mean", "leading-digit")
    assert exempt.strongest[0] not in exempt.exempt and exempt.passes
    assert found.dependence[("small", "small-exempt")] == pytest.approx(1.0)


def test_predictive_auc_sees_a_relation_that_is_not_monotone() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 4000)
    y = ((x > 0.25) & (x < 0.75)).astype(int)  # the middle band: a monotone score gets 0.5
    assert audit.predictive_auc(x, y, 2) > 0.95
    assert abs(audit.predictive_auc(rng.uniform(0, 1, 4000), y, 2) - 0.5) < 0.05
    three = np.digitize(x, [1 / 3, 2 / 3])
    assert audit.predictive_auc(x, three, 3) > 0.95


def test_cramers_v_by_hand() -> None:
    a = [0, 0, 1, 1, None, 1]
    assert audit.cramers_v(a, [1, 1, 0, 0, 0, None]) == (pytest.approx(1.0), 4)
    # a 2x2 table [[2, 1], [1, 2]]: chi2 = 2/3 on 6, V = sqrt(chi2 / 6) = 1/3
    v, n = audit.cramers_v([0, 0, 0, 1, 1, 1], [0, 0, 1, 0, 1, 1])
    assert n == 6 and v == pytest.approx(1 / 3)
    assert audit.cramers_v([0, None], [None, 1]) == (pytest.approx(float("nan"), nan_ok=True), 0)


def test_dependent_tasks_are_named(built_in: list[Task]) -> None:
    found = audit.run_audit(built_in, seed=0, draws=2_000)
    v = found.dependence
    assert all(v[(a, b)] == v[(b, a)] for a, b in v)
    # an all-even sequence holds no prime but 2: parity and primality are one skill
    assert "primality" in found.dependent_on("parity")
    assert "fibonacci" not in found.dependent_on("parity")
    assert audit.Audit.from_dict(json.loads(json.dumps(found.as_dict()))).dependence == v


def test_harness_tasks_audit_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["tasks", "--audit", "--json", "--draws", "500", "--task", "parity",
                 "--task", "sum-parity"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["task"] for t in data["tasks"]] == ["parity", "sum-parity"]
    parity = data["tasks"][0]
    assert set(parity["nuisance_auc"]) == set(audit.NUISANCES)
    assert parity["exempt"] == ["odd-share"] and parity["nuisance_auc"]["odd-share"] > 0.99
    assert set(parity["joint_auc"]) == set(audit_joint.MODELS)
    assert parity["joint"][0] in audit_joint.MODELS and parity["joint"][1] < 0.7
    assert {(d["a"], d["b"]) for d in data["dependence"]} == {
        ("parity", "sum-parity"), ("sum-parity", "parity")}
    assert main(["tasks", "--audit", "--draws", "200", "--task", "parity"]) == 0
    assert "Nuisance AUCs" in capsys.readouterr().out
    assert main(["tasks", "--draws", "3"]) == 2
    assert "--draws" in capsys.readouterr().err


def _xor_seq(c: int, r: random.Random) -> tuple[int, ...]:
    """(length is 5) XOR (max > 500) = c, each of the two a fair coin: neither alone says c."""
    five = r.random() < 0.5
    big = five != bool(c)
    seq = [r.randint(0, 499) for _ in range(5 if five else r.choice((4, 6)))]
    if big:
        seq[r.randrange(len(seq))] = r.randint(501, 999)
    return tuple(seq)


@dataclass(frozen=True)
class Xor(Task):
    """A shortcut no nuisance shows alone: the label is the XOR of two coarse nuisances."""

    name: ClassVar[str] = "xor"
    version: ClassVar[str] = "1"
    classes: ClassVar[tuple[str, ...]] = ("same", "differ")

    def label(self, seq):  # type: ignore[no-untyped-def]
        return int((len(seq) == 5) != (max(seq) > 500)) if seq else None

    def sample(self, n: int, rng: random.Random):  # type: ignore[no-untyped-def]
        return balanced_sample(self, n, rng, _xor_seq)


@dataclass(frozen=True)
class XorExempt(Xor):
    """The same, declaring magnitude its property: the joint models leave it out (and the
    length alone says nothing; exempting the length instead would not do, as the shares'
    granularity, fifths against quarters and sixths, tells it)."""

    name: ClassVar[str] = "xor-exempt"
    exempt_nuisances: ClassVar[tuple[str, ...]] = ("min", "max", "mean", "digits",
                                                   "leading-digit")


def test_the_joint_audit_sees_what_no_nuisance_shows_alone() -> None:
    found = audit.run_audit([Xor(), XorExempt()], seed=0, draws=2_000)
    xor, exempt = found.tasks
    assert xor.strongest[1] < 0.56 and xor.joint["logistic"] < 0.56  # alone, and linearly: chance
    assert xor.joint_best == ("trees", pytest.approx(1.0, abs=0.03))
    assert not xor.passes and "together" in xor.reason
    assert abs(exempt.joint_best[1] - 0.5) < 0.05 and exempt.passes  # without magnitude
    head, rows = design.nuisance_table(found)
    assert rows[0][head.index("joint")].endswith("trees")
    assert rows[0][head.index("verdict")] == "flagged: joint"


def test_the_joint_auc_of_an_independent_label_is_chance() -> None:
    rng = np.random.default_rng(1)
    cols = [rng.integers(0, 1000, 4000).astype(float), rng.integers(3, 9, 4000).astype(float),
            rng.uniform(0, 1, 4000)]
    for k in (2, 3):
        found = audit_joint.joint_aucs(cols, rng.integers(0, k, 4000), k, audit.folds(4000, 0),
                                       audit.BINS)
        assert set(found) == set(audit_joint.MODELS)
        assert all(abs(v - 0.5) < 0.04 for v in found.values()), (k, found)
    assert audit_joint.best({}) == ("", pytest.approx(float("nan"), nan_ok=True))


def test_a_stored_audit_without_the_joint_auc_still_reads_and_renders() -> None:
    """An audit stored by METHOD 1 has no joint figures: read, judged on the single ones, shown
    with "—" for the joint column."""
    assert audit.METHOD >= 2
    data = audit.run_audit([Small(), SmallExempt()], seed=0, draws=300).as_dict()
    assert set(data["tasks"][0]["joint_auc"]) == set(audit_joint.MODELS)
    for t in data["tasks"]:
        del t["joint_auc"], t["joint"]
    old = audit.Audit.from_dict(json.loads(json.dumps(data)))
    small, exempt = old.tasks
    assert small.joint == {} and small.joint_best[0] == "" and exempt.passes and not small.passes
    head, rows = design.nuisance_table(old)
    assert [r[head.index("joint")] for r in rows] == ["—", "—"]
    assert "Nuisance AUCs" in design.terminal(old)
    assert any("flagged" in line.lower() for line in design.markdown(old))
