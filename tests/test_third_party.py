"""Third-party plugins: CONTRIBUTING's examples as --plugin files, an entry-point plugin
implementing every hook, seen in `harness plugins` and in a run with no other change, and
installed distributions whose entry points collide, are turned off or do not load."""

from __future__ import annotations

import json
import os
import re
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from harness import registry
from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]


def only_builtins_and(dist: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a fake distribution load beside the built-ins, and nothing else installed in the
    environment: the tests stay the same whatever third-party plugins the venv holds."""
    only = os.environ.get("HARNESS_ONLY_DISTRIBUTIONS")
    if only:
        monkeypatch.setenv("HARNESS_ONLY_DISTRIBUTIONS", f"{only},{dist}")

# the suite's HARNESS_ONLY_DISTRIBUTIONS=numgeo-harness stays: entry points faked through
# ``registry._entry_points`` load whatever it says, and ``install`` adds its distribution to it

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
    assert {"last-digit-7", "centroid-gap", "half-way", "signed-mean"} <= set(examples)
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


def test_contributing_tuned_merge_passes_the_checks(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """CONTRIBUTING's merge built on ``harness.api.TunedMerge`` passes ``harness check``, the
    exchangeable-ingredient rules included, and chooses its λ in effective units."""
    path = tmp_path / "signed_mean.py"
    path.write_text(_examples()["signed-mean"])
    assert main(["check", "--plugin", str(path), "signed-mean"]) == 0
    assert "ok    merge signed-mean" in capsys.readouterr().out


# ------------------------------------------------- installed distributions (fake dist-info)

MERGE = textwrap.dedent('''
    from dataclasses import dataclass
    from typing import ClassVar

    from harness import hookimpl
    from harness.api import Merge


    @dataclass(frozen=True)
    class Take(Merge):
        """The last checkpoint."""
        name: ClassVar[str] = "{name}"

        def merge(self, base, checkpoints):
            return dict(checkpoints[-1])


    @hookimpl
    def register_merges(register):
        register(Take)
''')

SMALL_RUN = ["run", "--encoder", "scratch", "--adapter", "none", "--task", "parity",
             "--metric", "silhouette", "--profile", "smoke"]


def install(root: Path, monkeypatch: pytest.MonkeyPatch, dist: str,
            entry_points: dict[str, str], merges: dict[str, str] | None = None) -> None:
    """A distribution as pip leaves it on sys.path: ``<dist>-1.0.dist-info`` with METADATA and
    entry_points.txt, and one module per merge it registers."""
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[harness]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for module, merge in (merges or {}).items():
        (root / f"{module}.py").write_text(MERGE.replace("{name}", merge))
    monkeypatch.syspath_prepend(str(root))
    only_builtins_and(dist, monkeypatch)


def plugins_json(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict, list[str]]:
    code = main(["plugins", "--json", *extra])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), [x for x in captured.err.splitlines() if x.strip()]


def merge_names(data: dict) -> set[str]:
    return {e["name"] for e in data["merges"]}


def test_entry_point_named_like_a_builtin_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Another distribution's `numgeo-harness.merges.soups`: the built-in one loads, one
    warning names both and the way out, and every command works."""
    ep = "numgeo-harness.merges.soups"
    install(tmp_path, monkeypatch, "acme-merges", {ep: "acme_soups"}, {"acme_soups": "acme-soup"})
    code, data, err = plugins_json(capsys)
    assert code == 0 and {"soup", "greedy-soup"} <= merge_names(data)
    assert "acme-soup" not in merge_names(data)
    assert len(err) == 1 and err[0].startswith(f"warning: entry point {ep!r} is declared by "
                                               "numgeo-harness (harness.plugins.soups) and "
                                               "acme-merges (acme_soups)"), err
    assert f"HARNESS_DISABLE_PLUGINS=numgeo-harness:{ep} loads acme-merges's" in err[0]
    assert f"HARNESS_DISABLE_PLUGINS=acme-merges:{ep} keeps numgeo-harness's" in err[0]
    assert "acme-merges should name it 'acme-merges.<name>'" in err[0]
    out = tmp_path / "lb.md"
    assert main([*SMALL_RUN, "--store", str(tmp_path / "s"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "cells: 1 computed, 0 reused, 0 failed"
    assert [x for x in captured.err.splitlines() if x.startswith("warning:")] == err
    # the way out, both ways
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", f"numgeo-harness:{ep}")
    code, data, err = plugins_json(capsys)
    assert code == 0 and not err and "acme-soup" in merge_names(data)
    assert "soup" not in merge_names(data) and "slerp" in merge_names(data)
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", f"Acme_Merges:{ep}")  # as pip compares names
    code, data, err = plugins_json(capsys)
    assert code == 0 and not err and "soup" in merge_names(data)
    assert "acme-soup" not in merge_names(data)


def test_entry_point_named_like_an_old_builtin_one(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`merges` from another distribution collides with nothing; `<dist>:merges` turns off
    that one only, plain `merges` every built-in merge and it."""
    install(tmp_path, monkeypatch, "acme-tools", {"merges": "acme_merges"},
            {"acme_merges": "acme-take"})
    code, data, err = plugins_json(capsys)
    assert code == 0 and not err and {"acme-take", "soup", "slerp"} <= merge_names(data)
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "acme-tools:merges")
    code, data, err = plugins_json(capsys)
    assert code == 0 and not err and "acme-take" not in merge_names(data)
    assert "soup" in merge_names(data)
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "merges")
    code, data, err = plugins_json(capsys)
    assert code == 0 and not err and merge_names(data) == {"none"}


def test_a_name_two_third_parties_declare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The distribution the name starts with loads, whatever the alphabet says."""
    install(tmp_path / "a", monkeypatch, "alpha-tools", {"zed-tools.extra": "alpha_extra"},
            {"alpha_extra": "alpha-take"})
    install(tmp_path / "z", monkeypatch, "zed-tools", {"zed-tools.extra": "zed_extra"},
            {"zed_extra": "zed-take"})
    code, data, err = plugins_json(capsys)
    assert code == 0 and "zed-take" in merge_names(data) and "alpha-take" not in merge_names(data)
    assert len(err) == 1 and "loaded zed-tools's only" in err[0]
    assert "alpha-tools should name it 'alpha-tools.<name>'" in err[0]
    assert "zed-tools should" not in err[0]


def test_one_component_name_in_two_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Two merges named `soup`: a warning naming both and the way out, the built-in one kept;
    `<distribution>:merge:soup` turns off one distribution's `soup` and nothing else."""
    install(tmp_path, monkeypatch, "acme-dup", {"acme-dup.soups": "acme_dup"},
            {"acme_dup": "soup"})
    code, data, err = plugins_json(capsys)
    assert code == 0 and {"soup", "greedy-soup"} <= merge_names(data)
    assert err == [
        "warning: merge 'soup' is registered by plugin 'numgeo-harness.merges.soups' "
        "(numgeo-harness) and plugin 'acme-dup.soups' (acme-dup); kept numgeo-harness's, "
        "loaded first (HARNESS_DISABLE_PLUGINS=numgeo-harness:merge:soup uses acme-dup's "
        "instead, HARNESS_DISABLE_PLUGINS=acme-dup:merge:soup keeps numgeo-harness's and "
        "silences this)"]
    assert next(e for e in data["merges"] if e["name"] == "soup")["plugin"] == \
        "numgeo-harness.merges.soups"
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "acme-dup:merge:soup")
    code, data, err2 = plugins_json(capsys)
    assert code == 0 and not err2 and "soup" in merge_names(data)
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "numgeo-harness:merge:soup")
    code, data, err2 = plugins_json(capsys)
    assert code == 0 and not err2 and "greedy-soup" in merge_names(data)
    assert next(e for e in data["merges"] if e["name"] == "soup")["plugin"] == "acme-dup.soups"


def test_disable_components_by_name(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS",
                       "slerp,metric:silhouette,slerpp,slerpp,none,harness,task:slerp")
    code, data, err = plugins_json(capsys)
    assert code == 0
    assert "slerp" not in merge_names(data) and "linear" in merge_names(data)
    metrics = {e["name"] for e in data["metrics"]}
    assert "silhouette" not in metrics and "davies-bouldin" in metrics
    assert "none" in merge_names(data) and "none" in {e["name"] for e in data["adapters"]}
    assert err == [
        "warning: HARNESS_DISABLE_PLUGINS: 'slerpp' names no plugin or component; did you mean "
        "'slerp'? (`harness plugins` lists them)",
        "warning: HARNESS_DISABLE_PLUGINS: 'none' is the core's own and cannot be turned off",
        "warning: HARNESS_DISABLE_PLUGINS: 'harness' is the core's own and cannot be turned off",
        "warning: HARNESS_DISABLE_PLUGINS: 'task:slerp' names no plugin or component; did you "
        "mean 'slerp'? (`harness plugins` lists them)"]
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "merges:soup")  # the plural works too
    code, data, err = plugins_json(capsys)
    assert code == 0 and not err and "soup" not in merge_names(data)


def test_only_distributions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    install(tmp_path, monkeypatch, "acme-tools", {"acme-tools.x": "acme_x"},
            {"acme_x": "acme-x"})
    monkeypatch.setenv("HARNESS_ONLY_DISTRIBUTIONS", "numgeo-harness,no-such-dist")
    code, data, err = plugins_json(capsys)
    assert code == 0 and "acme-x" not in merge_names(data) and "soup" in merge_names(data)
    assert err == ["warning: HARNESS_ONLY_DISTRIBUTIONS: no installed distribution "
                   "'no-such-dist' has harness entry points"]


def test_broken_installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`harness plugins` lists it and exits 1 (0 with --allow-broken); a run says so once."""
    install(tmp_path, monkeypatch, "brokenpkg", {"brokenpkg.plug": "brokenpkg_missing.mod"})
    assert main(["plugins"]) == 1
    captured = capsys.readouterr()
    assert "brokenpkg.plug (brokenpkg 1.0): FAILED TO LOAD: ModuleNotFoundError" in captured.out
    assert "  soup (" in captured.out
    err = [x for x in captured.err.splitlines() if x.strip()]
    assert err == ["harness: 1 plugin(s) failed to load: brokenpkg.plug (brokenpkg 1.0): "
                   "ModuleNotFoundError: No module named 'brokenpkg_missing' "
                   "(HARNESS_DISABLE_PLUGINS=brokenpkg:brokenpkg.plug); --allow-broken lists "
                   "them with exit code 0"]
    code, data, err = plugins_json(capsys)
    assert code == 1 and len(err) == 1
    assert next(p for p in data["plugins"] if p["name"] == "brokenpkg.plug")["error"]
    assert main(["plugins", "--allow-broken"]) == 0
    assert not capsys.readouterr().err
    out = tmp_path / "lb.md"
    assert main([*SMALL_RUN, "--store", str(tmp_path / "s"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "cells: 1 computed, 0 reused, 0 failed"
    warned = [x for x in captured.err.splitlines() if x.startswith("warning:")]
    assert warned == ["warning: plugin(s) failed to load and took no part: brokenpkg.plug "
                      "(brokenpkg 1.0): ModuleNotFoundError: No module named "
                      "'brokenpkg_missing' (HARNESS_DISABLE_PLUGINS=brokenpkg:brokenpkg.plug)"]
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "brokenpkg:brokenpkg.plug")
    assert main(["plugins"]) == 0 and not capsys.readouterr().err
