"""``harness check``: a good plugin file passes, a bad one fails with one line per bad
component, and the same checks run inside an author's pytest suite (``harness.testing``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.check import Checker, check_components
from harness.cli import main
from harness.registry import load_registry

HEAD = '''
import random
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from harness import hookimpl
from harness.api import Backbone, Encoder, Merge, Metric, MetricUndefined, Task


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(1000, 8)

    def forward(self, ids):
        return self.table(ids).mean(1)


class Tiny(Backbone):
    def __init__(self, short):
        torch.manual_seed(0)
        self.module, self.short = Net(), short

    def encode(self, seqs):
        X = self.module(torch.tensor([[min(abs(x), 999) for x in s[:4]] + [0] * (4 - len(s[:4]))
                                      for s in seqs]))
        return X[1:] if self.short else X


@dataclass(frozen=True)
class TinyEncoder(Encoder):
    """A lookup table of the first four elements."""

    name: ClassVar[str] = "tiny-table"
    family: ClassVar = "non-llm"
    from_scratch: ClassVar[bool] = True
    short: bool = False

    def load(self, device):
        return Tiny(self.short)


@dataclass(frozen=True)
class Half(Merge):
    """Half-way from the base to the last checkpoint."""

    name: ClassVar[str] = "half"
    identity_on_one: ClassVar[bool] = False
    examples: ClassVar[tuple[str, ...]] = ("t=0.25", "t=0.75")
    t: float = 0.5
    in_place: bool = False

    def merge(self, base, checkpoints, score=None):
        if self.in_place:
            for key, b in base.items():
                b.mul_(1 - self.t).add_(checkpoints[-1][key] * self.t)
            return base
        return {k: (b.float() * (1 - self.t) + checkpoints[-1][k].float() * self.t).to(b.dtype)
                for k, b in base.items()}


@dataclass(frozen=True)
class Small(Task):
    """Whether the first element is below 50."""

    name: ClassVar[str] = "small-first"
    classes: ClassVar[tuple[str, ...]] = ("no", "yes")
    strict: bool = False

    def label(self, seq):
        if self.strict and any(x >= 100 for x in seq):
            raise ValueError("only sequences below 100")
        return None if not seq else int(seq[0] < 50)

    def sample(self, n, rng):
        return [(rng.randrange(50) + 50 * (1 - i % 2), rng.randrange(100)) for i in range(n)]


@dataclass(frozen=True)
class Gap(Metric):
    """Distance between the first two class centroids."""

    name: ClassVar[str] = "centroid-gap"
    higher_is_better: ClassVar[bool] = True

    def score(self, X, y, rng):
        C = np.stack([X[y == c].mean(0) for c in np.unique(y)])
        gap = float(np.linalg.norm(C[0] - C[1]))
        if gap == 0:
            raise MetricUndefined("the centroids coincide")
        return gap
'''

GOOD = HEAD + '''

@hookimpl
def register_encoders(register):
    register(TinyEncoder)


@hookimpl
def register_merges(register):
    register(Half)


@hookimpl
def register_tasks(register):
    register(Small)


@hookimpl
def register_metrics(register):
    register(Gap)
'''

#: the same components, each with the bad setting as its only example and default
BAD = HEAD + '''

@dataclass(frozen=True)
class Short(TinyEncoder):
    name: ClassVar[str] = "short"
    short: bool = True


@dataclass(frozen=True)
class InPlace(Half):
    name: ClassVar[str] = "in-place"
    examples: ClassVar[tuple[str, ...]] = ()
    in_place: bool = True


@dataclass(frozen=True)
class Strict(Small):
    name: ClassVar[str] = "strict"
    strict: bool = True


@hookimpl
def register_encoders(register):
    register(Short)


@hookimpl
def register_merges(register):
    register(InPlace)


@hookimpl
def register_tasks(register):
    register(Strict)


@hookimpl
def register_metrics(register):
    register(Gap)
'''


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, text in (("good", GOOD), ("bad", BAD)):
        path = tmp_path / f"{name}_plugin.py"
        path.write_text(textwrap.dedent(text))
        out[name] = str(path)
    return out


def test_good_plugin_passes(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--plugin", files["good"], "tiny-table", "half", "small-first",
                 "centroid-gap"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0, out
    assert out[:4] == [f"ok    encoder tiny-table (file {files['good']})",
                       f"ok    merge half (file {files['good']}): 3 parameter sets",
                       f"ok    task small-first (file {files['good']})",
                       f"ok    metric centroid-gap (file {files['good']})"]
    assert out[4].startswith("checked 4 components in ") and "4 ok, 0 failed" in out[4]


def test_bad_plugin_fails_one_line_each(files: dict[str, str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--plugin", files["bad"], "short", "in-place", "strict",
                 "centroid-gap"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    where = f"(file {files['bad']})"
    assert out[0] == (f"FAIL  encoder short {where}: encoder 'short' returned embeddings of "
                      "shape (1, 8), expected (2, dim); fix its Backbone.encode")
    assert out[1].startswith(f"FAIL  merge in-place {where}: modified its input 'base' in place")
    assert out[2].startswith(f"FAIL  task strict {where}: label() raised ValueError: only "
                             "sequences below 100 on a sequence of task ")
    assert out[3] == f"ok    metric centroid-gap {where}"
    assert "1 ok, 3 failed" in out[4] and len(out) == 5


def test_every_builtin_passes_without_pretrained(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert not [line for line in out if line.startswith("FAIL")]
    skipped = [line.split()[2] for line in out if line.startswith("skip")]
    # pretrained, and a model= to give
    assert set(skipped) == {"hf", "minilm", "paraphrase-minilm", "smollm2"}
    assert "loads pretrained weights; check it with --pretrained" in "\n".join(out)


def test_examples_and_specs() -> None:
    reg = load_registry()
    checker = Checker(reg)
    [target] = [t for t in checker.targets(["slerp:t=0.2,0.8"]) if t.kind == "merges"]
    assert target.specs == ("t=0.2,0.8",)
    assert len(checker.instances("merges", target.cls, target.specs)) == 2  # a sweep: two
    assert {t.kind for t in checker.targets(["none"])} == {"adapters", "merges"}
    [result] = check_components(reg, ["slerp:t=2"])
    assert result.status == "FAIL" and "parameters 't=2'" in result.line()


def test_endpoints_are_checked(tmp_path: Path) -> None:
    """A merge declaring ``interpolates`` must give the base at 0 and the final checkpoint
    at 1 (here it interpolates toward the first checkpoint instead)."""
    path = tmp_path / "wrong_end.py"
    path.write_text(HEAD + textwrap.dedent('''

    @dataclass(frozen=True)
    class First(Merge):
        name: ClassVar[str] = "to-first"
        identity_on_one: ClassVar[bool] = False
        interpolates: ClassVar[str] = "t"
        t: float = 0.5

        def merge(self, base, checkpoints, score=None):
            return {k: (b * (1 - self.t) + checkpoints[0][k] * self.t).to(b.dtype)
                    for k, b in base.items()}


    @hookimpl
    def register_merges(register):
        register(First)
    '''))
    [result] = check_components(load_registry([str(path)]), ["to-first"])
    assert result.status == "FAIL"
    assert "interpolates='t', but t=1 does not give the final checkpoint" in result.detail


CHEATS = HEAD.replace("Merge, Metric", "Merge, Metric, PooledMerge") + textwrap.dedent('''

@dataclass(frozen=True)
class FirstOnly(PooledMerge):
    """Returns its first ingredient: across tasks, the other fine-tunes are ignored."""
    name: ClassVar[str] = "first-only"

    def merge(self, base, checkpoints, score=None):
        return {k: v.clone() for k, v in checkpoints[0].items()}


@dataclass(frozen=True)
class Ordered(PooledMerge):
    """Weights its ingredients 1, 1/2, 1/4, ... in the order given."""
    name: ClassVar[str] = "ordered"

    def merge(self, base, checkpoints, score=None):
        w = [0.5 ** i for i in range(len(checkpoints))]
        return {k: (sum(wi * c[k].float() for wi, c in zip(w, checkpoints)) / sum(w)).to(b.dtype)
                for k, b in base.items()}


@dataclass(frozen=True)
class Copies(PooledMerge):
    """Claims to give k copies back but sums their task vectors."""
    name: ClassVar[str] = "copies"
    identity_on_copies: ClassVar[bool] = True

    def merge(self, base, checkpoints, score=None):
        return {k: (b.float() + sum(c[k].float() - b.float() for c in checkpoints)).to(b.dtype)
                for k, b in base.items()}


@dataclass(frozen=True)
class Picky(PooledMerge):
    """Keeps the ingredient with the largest first entry only, and says so."""
    name: ClassVar[str] = "picky"
    drops_ingredients: ClassVar[str] = "it keeps one ingredient only, for this test"

    def merge(self, base, checkpoints, score=None):
        best = max(checkpoints, key=lambda c: float(c["w"].flatten()[0]))
        return {k: v.clone() for k, v in best.items()}


@hookimpl
def register_merges(register):
    for cls in (FirstOnly, Ordered, Copies, Picky):
        register(cls)
''')


def test_a_merge_that_ignores_or_orders_its_ingredients_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Across tasks the ingredients are exchangeable: a merge that returns its first input,
    depends on their order, or breaks a declared identity on copies fails with one line; one
    that says why it drops ingredients passes."""
    path = tmp_path / "cheats.py"
    path.write_text(CHEATS)
    code = main(["check", "--plugin", str(path), "first-only", "ordered", "copies", "picky"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    where = f"(file {path})"
    assert out[0] == (f"FAIL  merge first-only {where}: with over=tasks, its result did not "
                      "change when ingredient 2 of 3 changed (a merge that returns one input, "
                      "or ignores one); use every ingredient, or say why not in "
                      "drops_ingredients")
    assert out[1] == (f"FAIL  merge ordered {where}: with over=tasks, its result depends on the "
                      "order of its ingredients (tensor 'w' differs when they are reordered); "
                      "tasks come in an order with no meaning: combine them symmetrically, e.g. "
                      "in harness.api.canonical_order")
    assert out[2].startswith(f"FAIL  merge copies {where}: with over=tasks, three copies of one "
                             "ingredient do not give it back")
    assert out[3] == f"ok    merge picky {where}"


def test_unknown_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "slrep"]) == 2
    assert "no component named 'slrep'; did you mean 'slerp'?" in capsys.readouterr().err


def test_pytest_door(files: dict[str, str], tmp_path: Path) -> None:
    """``-p harness.testing`` gives the fixture; an import gives one test per component."""
    (tmp_path / "test_author.py").write_text(textwrap.dedent(f'''
        from harness.testing import contract_tests

        test_components = contract_tests(["half", "small-first"], plugin_files=[{files["good"]!r}])


        def test_fixture(harness_check):
            harness_check("in-place", plugin_files=[{files["bad"]!r}])
    '''))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "harness.testing",
                          "-p", "no:cacheprovider", str(tmp_path / "test_author.py")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert "1 failed, 2 passed" in run.stdout, run.stdout + run.stderr
    assert "FAIL  merge in-place" in run.stdout
