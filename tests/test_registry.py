"""Plugin discovery (harness.registry) and component specs (harness.params)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import tomllib
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import pytest

from harness import registry as reg_mod
from harness.api import HarnessError
from harness.keys import content_hash
from harness.params import build, expand, label, parse_spec
from harness.registry import CORE, PluginWarning, Registry, load_registry

ROOT = Path(__file__).resolve().parents[1]

HEADER = '''
from dataclasses import dataclass
from typing import ClassVar

from harness import hookimpl
from harness.api import Merge, Metric, Task
'''


def write_plugin(tmp_path: Path, stem: str, body: str) -> str:
    path = tmp_path / f"{stem}.py"
    path.write_text(HEADER + textwrap.dedent(body))
    return str(path)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS", raising=False)


def fake_ep(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=reg_mod.GROUP)


# ------------------------------------------------------------------------------ built-ins


def test_builtins_load() -> None:
    reg = load_registry()
    comps = reg.components
    assert "scratch" in comps["encoders"]
    assert {"none", "full"} <= set(comps["adapters"])
    assert "none" in comps["merges"]
    assert len(comps["tasks"]) >= 8
    assert {"silhouette", "davies-bouldin"} <= set(comps["metrics"])
    assert reg.plugins and not reg.broken
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    for name in [CORE, *declared["harness"]]:  # others may be installed: they are not checked
        info = reg.plugins[name]
        assert info.distribution == "numgeo-harness", info
        assert info.hooks and all(h.startswith("register_") for h in info.hooks)
    assert reg.owner[("encoders", "scratch")] == "numgeo-harness.scratch"
    assert reg.owner[("adapters", "none")] == reg.owner[("merges", "none")] == "harness"


def test_no_plugin_loaded_at_import() -> None:
    code = ("import sys, harness, harness.cli, harness.registry\n"
            "bad = [m for m in ('harness.plugins.scratch', 'harness.tasks.elementwise', 'torch')"
            " if m in sys.modules]\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- --plugin


GOOD = '''
@dataclass(frozen=True)
class LastEven(Task):
    """Whether the last element is even."""
    name: ClassVar[str] = "last-even-reg"
    classes: ClassVar[tuple] = ("odd", "even")

    def label(self, seq):
        return int(seq[-1] % 2 == 0) if seq else None

    def sample(self, n, rng):
        return [(rng.randrange(100), 2 * rng.randrange(50) + i % 2) for i in range(n)]


@dataclass(frozen=True)
class Zero(Metric):
    """Always zero."""
    name: ClassVar[str] = "zero-reg"
    higher_is_better: ClassVar[bool] = True

    def score(self, X, y, rng):
        return 0.0


@dataclass(frozen=True)
class Second(Merge):
    """The second-to-last checkpoint."""
    name: ClassVar[str] = "second-reg"
    t: float = 0.5

    def merge(self, base, checkpoints):
        return dict(checkpoints[-1])


@hookimpl
def register_tasks(register):
    register(LastEven)


@hookimpl
def register_metrics(register):
    register(Zero)


@hookimpl
def register_merges(register):
    register(Second)
'''


def test_plugin_file_registers_components(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "myplug", GOOD)
    reg = load_registry([path])
    for kind, name in (("tasks", "last-even-reg"), ("metrics", "zero-reg"),
                       ("merges", "second-reg")):
        assert name in reg.components[kind]
        assert reg.owner[(kind, name)] == "myplug"
    info = reg.plugins["myplug"]
    assert info.distribution.startswith("file ")
    assert info.hooks == ["register_merges", "register_metrics", "register_tasks"]
    assert "parity" in reg.components["tasks"]  # the built-ins still load


def test_plugin_file_duplicate_name_names_both(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A --plugin file taking an installed plugin's name stays an error (unlike two installed
    plugins: a warning), naming both and the way out, which works."""
    path = write_plugin(tmp_path, "dupplug", '''
        @dataclass(frozen=True)
        class Parity(Task):
            name: ClassVar[str] = "parity"
            classes: ClassVar[tuple] = ("a", "b")

        @hookimpl
        def register_tasks(register):
            register(Parity)
    ''')
    with pytest.raises(HarnessError) as err:
        load_registry([path])
    msg = str(err.value)
    assert "'parity'" in msg and "'numgeo-harness.tasks.elementwise'" in msg and \
        "'dupplug'" in msg
    assert "HARNESS_DISABLE_PLUGINS=numgeo-harness:task:parity turns off that one" in msg
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "numgeo-harness:task:parity")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # it turned something off, and nothing clashes
        reg = load_registry([path])
    assert reg.owner[("tasks", "parity")] == "dupplug"
    assert "square" in reg.components["tasks"]  # the rest of that plugin still loads


def test_plugin_file_without_hooks_warns(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "hookless", "X = 1\n")
    with pytest.warns(PluginWarning, match="'hookless'"):
        reg = load_registry([path])
    assert reg.plugins["hookless"].hooks == []


def test_plugin_file_misspelled_hook(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "typoplug", '''
        @hookimpl
        def register_encoder(register):
            pass
    ''')
    with pytest.raises(HarnessError, match="register_encoder") as err:
        load_registry([path])
    assert "typoplug" in str(err.value)


def test_plugin_file_wrong_hook_argument(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "argplug", '''
        @hookimpl
        def register_tasks(reg):
            pass
    ''')
    with pytest.raises(HarnessError, match="'argplug'"):
        load_registry([path])


def test_plugin_file_raising_at_import(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "boomplug", "raise RuntimeError('kaboom')\n")
    with pytest.raises(HarnessError) as err:
        load_registry([path])
    msg = str(err.value)
    assert path in msg and "kaboom" in msg and "RuntimeError" in msg


def test_plugin_file_missing(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no such file"):
        load_registry([str(tmp_path / "absent.py")])


def test_two_plugin_files_with_one_stem(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = write_plugin(tmp_path / "a", "same", GOOD)
    two = write_plugin(tmp_path / "b", "same", "X = 1\n")
    with pytest.raises(HarnessError, match="'same' is already loaded"):
        load_registry([one, two])


def test_plugin_file_named_like_the_core(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "harness", GOOD)
    with pytest.raises(HarnessError, match="rename the file"):
        load_registry([path])


def test_plugin_file_named_like_an_old_builtin(tmp_path: Path) -> None:
    """The built-ins' entry points are namespaced: a file called metrics.py collides with
    nothing."""
    reg = load_registry([write_plugin(tmp_path, "metrics", GOOD)])
    assert reg.owner[("metrics", "zero-reg")] == "metrics"
    assert "silhouette" in reg.components["metrics"]


BAD_REGISTRATIONS = {
    "wrong-base": ('''
        @dataclass(frozen=True)
        class NotATask(Metric):
            name: ClassVar[str] = "not-a-task"
            higher_is_better: ClassVar[bool] = True
    ''', "expected a subclass of harness.api.Task"),
    "no-name": ('''
        @dataclass(frozen=True)
        class Nameless(Task):
            classes: ClassVar[tuple] = ("a", "b")
    ''', "needs a `name`"),
    "pipe-in-name": ('''
        @dataclass(frozen=True)
        class Piped(Task):
            name: ClassVar[str] = "a|b"
            classes: ClassVar[tuple] = ("a", "b")
    ''', "needs a `name`"),
    "colon-in-name": ('''
        @dataclass(frozen=True)
        class Coloned(Task):
            name: ClassVar[str] = "a:b"
            classes: ClassVar[tuple] = ("a", "b")
    ''', "needs a `name`"),
    "not-dataclass": ('''
        class Plain(Task):
            name: ClassVar[str] = "plain-task"
            classes: ClassVar[tuple] = ("a", "b")
    ''', "must be a @dataclass"),
    "not-a-class": ('''
        def Plain():
            pass
    ''', "expected a subclass"),
    "no-classes": ('''
        @dataclass(frozen=True)
        class Classless(Task):
            name: ClassVar[str] = "classless"
    ''', "declares no classes"),
}

BAD_REGISTRATIONS.update({  # names the command line or the leaderboard's markdown would misread
    case: (f'''
        @dataclass(frozen=True)
        class Odd(Task):
            name: ClassVar[str] = {name}
            classes: ClassVar[tuple] = ("a", "b")
    ''', "needs a `name`")
    for case, name in {"cr-in-name": r'"enc\r"', "tab-in-name": r'"a\tb"',
                       "backtick-in-name": '"a`b"', "html-in-name": '"<script>"',
                       "nbsp-in-name": r'"a\u00a0b"'}.items()})


@pytest.mark.parametrize("case", sorted(BAD_REGISTRATIONS))
def test_bad_registration(tmp_path: Path, case: str) -> None:
    body, expected = BAD_REGISTRATIONS[case]
    cls_name = body.split("class ")[-1].split("(")[0] if "class " in body else "Plain"
    path = write_plugin(tmp_path, "badreg", textwrap.dedent(body) + textwrap.dedent(f'''
        @hookimpl
        def register_tasks(register):
            register({cls_name})
    '''))
    with pytest.raises(HarnessError, match="'badreg'") as err:
        load_registry([path])
    assert expected in str(err.value)


def test_bad_metric_needs_higher_is_better(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "badmetric", '''
        @dataclass(frozen=True)
        class NoDirection(Metric):
            name: ClassVar[str] = "no-direction"

        @hookimpl
        def register_metrics(register):
            register(NoDirection)
    ''')
    with pytest.raises(HarnessError, match="higher_is_better"):
        load_registry([path])


def test_register_hook_raising_is_named(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "raiser", '''
        @hookimpl
        def register_tasks(register):
            raise KeyError("oops")
    ''')
    with pytest.raises(HarnessError, match="'raiser' failed in register_tasks"):
        load_registry([path])


# -------------------------------------------------------------------------- entry points


def test_broken_entry_point_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    real = reg_mod._entry_points()
    broken = fake_ep("broken", "no_such_module_xyz")
    monkeypatch.setattr(reg_mod, "_entry_points", lambda: [*real, broken])
    reg = load_registry()
    assert [p.name for p in reg.broken] == ["broken"]
    info = reg.broken[0]
    assert info.distribution == "unknown"
    assert "ModuleNotFoundError" in (info.error or "")
    assert "no_such_module_xyz" in (info.error or "")
    assert "parity" in reg.components["tasks"]  # the others still load
    assert "silhouette" in reg.components["metrics"]
    with pytest.raises(HarnessError) as err:
        reg.get("tasks", "nope-task")
    assert "'broken' failed to load" in str(err.value)
    with pytest.raises(HarnessError, match="'broken'"):
        load_registry(strict=True)


@pytest.mark.installed_plugins
def test_installed_plugin_that_cannot_import(tmp_path: Path) -> None:
    """A real installed distribution whose entry point names a module that is not there:
    ``harness plugins`` lists the others, names it with its distribution and exits 1
    (``--allow-broken``: 0); ``run --all`` refuses; a grid that does not need it runs and says
    so once."""
    info = tmp_path / "brokenpkg-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenpkg\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text("[harness]\nbrokenplug = brokenpkg_missing.mod\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def harness(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                              text=True, cwd=ROOT, timeout=120, env=env)

    listing = harness("plugins")
    assert listing.returncode == 1, listing.stderr
    assert listing.stderr.startswith("harness: 1 plugin(s) failed to load: brokenplug ")
    assert harness("plugins", "--allow-broken").stdout == listing.stdout
    line = next(x for x in listing.stdout.splitlines() if x.startswith("brokenplug "))
    assert line.startswith("brokenplug (brokenpkg 1.2): FAILED TO LOAD: ModuleNotFoundError")
    assert "brokenpkg_missing" in line
    assert "  parity (" in listing.stdout and "  silhouette (" in listing.stdout
    refused = harness("run", "--all", "--profile", "smoke", "--store", str(tmp_path / "S"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "brokenplug (brokenpkg)" in refused.stderr and not (tmp_path / "S").exists()
    ok = harness("run", "--encoder", "scratch", "--adapter", "none", "--task", "parity",
                 "--metric", "silhouette", "--profile", "smoke", "--store", str(tmp_path / "S"),
                 "--out", str(tmp_path / "o.md"))
    assert ok.returncode == 0, ok.stderr
    assert [x for x in ok.stderr.splitlines() if "brokenplug" in x] == [
        "warning: plugin(s) failed to load and took no part: brokenplug (brokenpkg 1.2): "
        "ModuleNotFoundError: No module named 'brokenpkg_missing' "
        "(HARNESS_DISABLE_PLUGINS=brokenpkg:brokenplug)"]


def test_duplicate_entry_point_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two entry points of one name are a warning naming both, not an error; one loads."""
    eps = [fake_ep("dup", "second_module_def"), fake_ep("dup", "first_module_abc")]
    monkeypatch.setattr(reg_mod, "_entry_points", lambda: list(eps))
    with pytest.warns(PluginWarning) as caught:
        reg = load_registry()
    (msg,) = [str(w.message) for w in caught if "'dup'" in str(w.message)]
    assert "first_module_abc" in msg and "second_module_def" in msg
    assert [p.name for p in reg.broken] == ["dup"]  # neither module exists
    assert "first_module_abc" in (reg.broken[0].error or "")


# ---------------------------------------------------------------------------- disabling


def test_disable_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "metrics")
    reg = load_registry()
    assert reg.components["metrics"] == {}
    assert "metrics" not in reg.plugins
    assert "parity" in reg.components["tasks"]
    with pytest.raises(HarnessError, match="known: none"):
        reg.get("metrics", "silhouette")


@pytest.mark.parametrize(("disabled", "gone", "kept"), [
    ("merges", {"soup", "slerp", "linear", "ties", "dare"}, {"none"}),
    ("merges.interpolation", {"slerp", "linear"}, {"soup", "ties", "none"}),
    ("numgeo-harness.merges.task-vectors", {"ties", "dare", "model-stock"}, {"soup", "slerp"}),
    ("numgeo-harness.merges", {"soup", "slerp", "ties"}, {"none"}),
    ("numgeo-harness", {"soup", "slerp", "ties"}, {"none"}),  # the distribution: all of it
    ("Numgeo_Harness", {"soup", "slerp", "ties"}, {"none"}),  # as pip compares names
    ("harness", set(), {"none", "soup"}),  # the core's own cannot be turned off
    ("slerp", {"slerp"}, {"linear", "soup"}),  # a component name
    ("merge:linear", {"linear"}, {"slerp"}),
])
def test_disable_by_alias(monkeypatch: pytest.MonkeyPatch, disabled: str, gone: set[str],
                          kept: set[str]) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", disabled)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        merges = set(load_registry().components["merges"])
    assert not gone & merges and kept <= merges
    assert bool(caught) == (disabled == "harness")  # the core's own: cannot be turned off


def test_a_distribution_s_name_turns_off_all_its_entry_points(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "numgeo-harness")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # it turns something off: no warning
        reg = load_registry()
    assert sorted(reg.plugins) == [CORE]
    assert {k: sorted(v) for k, v in reg.components.items() if v} == {
        "adapters": ["none"], "merges": ["none"]}  # the core's own stay


def test_old_entry_point_names_still_disable(monkeypatch: pytest.MonkeyPatch) -> None:
    for old, kind, name in [("tasks", "tasks", "progression"), ("metrics", "metrics", "kmeans-ari"),
                            ("adapters", "adapters", "full"), ("lora", "adapters", "lora"),
                            ("scratch", "encoders", "scratch"), ("hf", "encoders", "hf"),
                            ("pretrained", "encoders", "minilm")]:
        monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", old)
        assert name not in load_registry().components[kind], old


def test_names_of_only_shortens_under_the_own_distribution() -> None:
    assert reg_mod.names_of("numgeo-harness.merges.soups", "numgeo-harness") >= {
        "merges", "merges.soups", "numgeo-harness.merges", "numgeo-harness.merges.soups"}
    assert reg_mod.names_of("acme.merges", "other-dist") == {"acme.merges"}
    assert "merges" not in reg_mod.names_of("acme.merges.x", "acme-tools")
    # the distribution's name as pip compares it, dots in it included
    assert "merges" in reg_mod.names_of("Acme_Tools.merges.x", "acme-tools")
    assert "x" in reg_mod.names_of("zope.interface.x", "zope.interface")


def test_entry_point_named_like_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [fake_ep("harness", "some_module")]
    monkeypatch.setattr(reg_mod, "_entry_points", lambda: list(eps))
    with pytest.warns(PluginWarning, match="takes the name the core's own plugin has"):
        reg = load_registry()
    assert reg.plugins[CORE].distribution == "numgeo-harness" and not reg.broken


def test_disable_plugin_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_plugin(tmp_path, "myplug", GOOD)
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", " scratch , myplug ")
    reg = load_registry([path])
    assert "myplug" not in reg.plugins and "scratch" not in reg.plugins
    assert "last-even-reg" not in reg.components["tasks"]
    assert "scratch" not in reg.components["encoders"]


# -------------------------------------------------------------------------------- lookup


@pytest.mark.parametrize(("kind", "typo", "right"), [("tasks", "parityy", "parity"),
                                                    ("encoders", "scratc", "scratch")])
def test_get_suggests(registry: Registry, kind: str, typo: str, right: str) -> None:
    assert registry.get(kind, right) is registry.components[kind][right]
    with pytest.raises(HarnessError) as err:
        registry.get(kind, typo)
    msg = str(err.value)
    assert f"did you mean {right!r}" in msg
    assert "pip install -e ." in msg
    assert "\n" not in msg


# -------------------------------------------------------------------------------- params


@dataclass(frozen=True)
class Knobs:
    """A component-like dataclass with one field of each convertible type."""

    name: ClassVar[str] = "knobs"
    version: ClassVar[str] = "1"
    t: float = 0.5
    k: int = 3
    on: bool = False
    mode: str = "a"
    cap: int | None = None

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError("k must be >= 0")


def test_parse_spec() -> None:
    assert parse_spec("slerp:t=0.1,0.5,0.9") == ("slerp", {"t": ["0.1", "0.5", "0.9"]})
    assert parse_spec("silhouette") == ("silhouette", {})
    assert parse_spec(" knn-accuracy:k=3,test_fraction=0.2 ") == (
        "knn-accuracy", {"k": ["3"], "test_fraction": ["0.2"]})


@pytest.mark.parametrize("bad", ["", ":t=1", "x:=1", "x:1", "x:t=1,t=2"])
def test_parse_spec_rejects(bad: str) -> None:
    with pytest.raises(HarnessError):
        parse_spec(bad)


def test_expand_cross_product() -> None:
    name, raw = parse_spec("knobs:t=0.1,0.9,k=1,2,3")
    assert name == "knobs"
    items = expand(Knobs, "merge", raw)
    assert [(i.t, i.k) for i in items] == [(0.1, 1), (0.1, 2), (0.1, 3),
                                           (0.9, 1), (0.9, 2), (0.9, 3)]
    assert expand(Knobs, "merge", {}) == [Knobs()]


def test_build_converts_types() -> None:
    obj = build(Knobs, "merge", {"t": "0.25", "k": "7", "on": "yes", "mode": "b", "cap": "4"})
    assert obj == Knobs(t=0.25, k=7, on=True, mode="b", cap=4)
    assert isinstance(obj.t, float) and isinstance(obj.k, int) and obj.on is True
    assert build(Knobs, "merge", {"on": "off", "cap": "none"}) == Knobs(on=False, cap=None)


def test_build_unknown_key_lists_known() -> None:
    with pytest.raises(HarnessError) as err:
        build(Knobs, "merge", {"tt": "1"})
    msg = str(err.value)
    assert "'tt'" in msg
    for key in ("cap", "k", "mode", "on", "t"):
        assert key in msg.split("its parameters:")[1]


@pytest.mark.parametrize(("raw", "expected"), [({"t": "abc"}, "not a valid float"),
                                               ({"k": "1.5"}, "not a valid int"),
                                               ({"on": "maybe"}, "not a valid bool")])
def test_build_bad_value(raw: dict[str, str], expected: str) -> None:
    with pytest.raises(HarnessError, match=expected):
        build(Knobs, "merge", raw)


def test_build_post_init_error_names_component() -> None:
    with pytest.raises(HarnessError, match="merge 'knobs': k must be >= 0"):
        build(Knobs, "merge", {"k": "-1"})


@dataclass(frozen=True)
class Bounded:
    """Fields bounded by their metadata (``min``, ``max``), and one left free."""

    name: ClassVar[str] = "bounded"
    seed: int = dataclasses.field(default=0, metadata={"min": 0, "max": 2**64 - 1})
    share: float = dataclasses.field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    free: int = 0


@pytest.mark.parametrize(("raw", "expected"), [
    ({"seed": str(2**64)}, "merge 'bounded': seed=18446744073709551616 is not in "
                           "0..18446744073709551615"),
    ({"seed": "-1"}, "merge 'bounded': seed=-1 is not in 0..18446744073709551615"),
    ({"share": "1.5"}, "merge 'bounded': share=1.5 is not in 0.0..1.0"),
])
def test_build_refuses_values_outside_a_field_s_bounds(raw: dict[str, str],
                                                        expected: str) -> None:
    with pytest.raises(HarnessError) as err:
        build(Bounded, "merge", raw)
    assert str(err.value) == expected


def test_build_keeps_values_inside_a_field_s_bounds() -> None:
    assert build(Bounded, "merge", {"seed": str(2**64 - 1), "share": "1", "free": str(2**70)}
                 ) == Bounded(seed=2**64 - 1, share=1.0, free=2**70)


def test_build_real_component(registry: Registry) -> None:
    with pytest.raises(HarnessError, match="'knn-accuracy'"):
        build(registry.get("metrics", "knn-accuracy"), "metric", {"k": "0"})


def test_label_shows_non_defaults() -> None:
    assert label(Knobs()) == "knobs"
    assert label(Knobs(k=4)) == "knobs:k=4"
    assert label(Knobs(t=0.1, mode="z")) == "knobs:t=0.1,mode=z"
    assert label(Knobs(t=0.5)) == "knobs"  # given explicitly but equal to the default


def test_content_hash() -> None:
    assert content_hash("a", {"x": 1, "y": [1, 2]}) == content_hash("a", {"y": [1, 2], "x": 1})
    assert content_hash("a", {"x": 1}) != content_hash("a", {"x": 2})
    assert content_hash("a", 1) != content_hash("b", 1)
    assert content_hash(dataclasses.asdict(Knobs())) == content_hash(dataclasses.asdict(Knobs()))
    assert len(content_hash("a")) == 20


def test_no_warning_for_builtins() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_registry()

