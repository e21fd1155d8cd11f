"""Third-party plugins: CONTRIBUTING's examples as --plugin files, and an entry-point plugin
implementing every hook, seen in `harness plugins` and in a run with no other change."""

from __future__ import annotations

import json
import re
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from harness import registry
from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass, field
    from typing import ClassVar

    import torch

    from harness import hookimpl
    from harness.api import Adapter, Backbone, Checkpoint, Encoder, Merge, Metric, Task


    class BagBackbone(Backbone):
        def __init__(self, dim):
            torch.manual_seed(0)
            self.module = torch.nn.Embedding(10, dim)

        def encode(self, seqs):
            ids = [[int(c) for c in "".join(map(str, s))] or [0] for s in seqs]
            return torch.stack([self.module(torch.tensor(r)).mean(0) for r in ids])


    @dataclass(frozen=True)
    class BagOfDigits(Encoder):
        """Mean of digit embeddings."""
        name: ClassVar[str] = "bag-of-digits"
        family: ClassVar = "non-llm"
        dim: int = field(default=8, metadata={"help": "width"})

        def load(self, device):
            return BagBackbone(self.dim)


    @dataclass(frozen=True)
    class Nudge(Adapter):
        """Adds a seeded perturbation: two stages."""
        name: ClassVar[str] = "nudge"
        scale: float = 0.1

        def fit(self, backbone, train, labels, seed, profile):
            g = torch.Generator().manual_seed(seed)
            out = []
            for stage in range(2):
                w = backbone.module.weight
                with torch.no_grad():
                    w.add_(self.scale * torch.randn(w.shape, generator=g))
                out.append(Checkpoint(stage, seed, {"weight": w.detach().clone()}))
            return out


    @dataclass(frozen=True)
    class First(Merge):
        """The first checkpoint."""
        name: ClassVar[str] = "first"

        def merge(self, base, checkpoints):
            return dict(checkpoints[0])


    @dataclass(frozen=True)
    class Even(Task):
        """Whether the first element is even."""
        name: ClassVar[str] = "first-even"
        classes: ClassVar[tuple] = ("odd", "even")

        def label(self, seq):
            return None if not seq else int(seq[0] % 2 == 0)

        def sample(self, n, rng):
            out = [tuple([2 * rng.randrange(50) + (i % 2 == 0)] +
                         [rng.randrange(100) for _ in range(3)]) for i in range(n)]
            rng.shuffle(out)
            return out


    @dataclass(frozen=True)
    class Spread(Metric):
        """Mean per-dimension standard deviation."""
        name: ClassVar[str] = "spread"
        higher_is_better: ClassVar[bool] = True

        def score(self, X, y, rng):
            return float(X.std(0).mean())


    @hookimpl
    def register_encoders(register):
        register(BagOfDigits)


    @hookimpl
    def register_adapters(register):
        register(Nudge)


    @hookimpl
    def register_merges(register):
        register(First)


    @hookimpl
    def register_tasks(register):
        register(Even)


    @hookimpl
    def register_metrics(register):
        register(Spread)
''')


@pytest.fixture
def entry_point_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Install `thirdparty_demo` as if a distribution declared it in group `harness`."""
    (tmp_path / "thirdparty_demo.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    real = registry._entry_points
    fake = metadata.EntryPoint(name="demo", value="thirdparty_demo", group="harness")
    monkeypatch.setattr(registry, "_entry_points", lambda: [*real(), fake])
    return "demo"


def test_entry_point_plugin_listed(entry_point_plugin: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for kind, name in [("encoders", "bag-of-digits"), ("adapters", "nudge"),
                       ("merges", "first"), ("tasks", "first-even"), ("metrics", "spread")]:
        entry = next(e for e in data[kind] if e["name"] == name)
        assert entry["plugin"] == "demo"
    demo = next(p for p in data["plugins"] if p["name"] == "demo")
    assert len(demo["hooks"]) == 5 and demo["error"] is None


def test_entry_point_plugin_runs(entry_point_plugin: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "lb.md"
    argv = ["run", "--encoder", "bag-of-digits", "--adapter", "nudge", "--merge", "first",
            "--task", "first-even", "--task", "parity", "--metric", "spread",
            "--metric", "silhouette", "--profile", "smoke", "--store", str(tmp_path / "s"),
            "--out", str(out)]
    assert main(argv) == 0
    # base, nudge@2 tasks x (none, first) = 5 variants x 2 tasks
    assert capsys.readouterr().out.strip() == "cells: 10 computed, 0 reused, 0 failed"
    board = out.read_text()
    for word in ("bag-of-digits + nudge@first-even + first", "spread", "first-even"):
        assert word in board
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "cells: 0 computed, 10 reused, 0 failed"


def _examples() -> dict[str, str]:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "CONTRIBUTING.md").read_text(), re.S)
    found = {}
    for block in blocks:
        name = re.search(r'name: ClassVar\[str\] = "([^"]+)"', block)
        if name and "@hookimpl" in block:
            found[name.group(1)] = block
    return found


def test_contributing_examples_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    examples = _examples()
    assert {"last-digit-7", "centroid-gap", "half-way"} <= set(examples)
    files = []
    for name, code in examples.items():
        path = tmp_path / f"example_{name.replace('-', '_')}.py"
        path.write_text(code)
        files += ["--plugin", str(path)]
    out = tmp_path / "lb.md"
    code = main([*files, "run", "--encoder", "scratch", "--adapter", "full", "--merge",
                 "half-way", "--merge", "half-way:t=0.25,0.75", "--task", "last-digit-7",
                 "--metric", "centroid-gap", "--metric", "silhouette", "--profile", "smoke",
                 "--store", str(tmp_path / "s"), "--out", str(out)])
    # base + full@task x (none + 3 half-way) = 5 variants, 1 task
    assert code == 0 and capsys.readouterr().out.strip() == "cells: 5 computed, 0 reused, 0 failed"
    board = out.read_text()
    assert "half-way:t=0.25" in board and "centroid-gap" in board
    assert "relative change 0." in board  # its stats reach the leaderboard
