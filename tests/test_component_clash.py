"""One component name registered by two plugins (issue #33): a warning, never an error. The
first loaded keeps the name (the core, the built-in distribution, then the others by
distribution name), ``<distribution>:<kind>:<name>`` turns off one distribution's component
only, and a ``--plugin`` file taking a name stays an error."""

from __future__ import annotations

import os
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from harness.api import HarnessError
from harness.cli import main
from harness.registry import CORE, PluginWarning, Registry, load_registry

HEADER = '''
from dataclasses import dataclass
from typing import ClassVar

from harness import hookimpl
from harness.api import Merge
'''

MERGE = '''

@dataclass(frozen=True)
class {cls}(Merge):
    """{doc}"""
    name: ClassVar[str] = "{name}"

    def merge(self, base, checkpoints):
        return dict(checkpoints[-1])
'''

HOOK = '''

@hookimpl{marker}
def register_merges(register):
{body}
'''


def module_text(merges: dict[str, str], marker: str = "") -> str:
    """A plugin module registering ``merges`` (class name -> merge name)."""
    classes = "".join(MERGE.format(cls=c, name=n, doc=f"{c} takes the last checkpoint.")
                      for c, n in merges.items())
    body = "".join(f"    register({c})\n" for c in merges)
    return HEADER + classes + HOOK.format(marker=marker, body=body)


def install(root: Path, monkeypatch: pytest.MonkeyPatch, dist: str,
            entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A distribution as pip leaves it on sys.path (``<dist>-1.0.dist-info`` with METADATA and
    entry_points.txt) and its modules, loaded beside the built-ins and nothing else."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[harness]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for module, text in modules.items():
        (root / f"{module}.py").write_text(text)
        monkeypatch.delitem(sys.modules, module, raising=False)  # another test's, same name
    monkeypatch.syspath_prepend(str(root))
    only = os.environ.get("HARNESS_ONLY_DISTRIBUTIONS")
    if only:
        monkeypatch.setenv("HARNESS_ONLY_DISTRIBUTIONS", f"{only},{dist}")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS", raising=False)


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """harness-extra and zz-crumbs each register a merge ``clash-crumbs`` and one of their own."""
    install(tmp_path / "a", monkeypatch, "harness-extra",
            {"harness-extra.merges": "hx_clash_merges"},
            {"hx_clash_merges": module_text({"HxCrumbs": "clash-crumbs", "HxOnly": "hx-only"})})
    install(tmp_path / "z", monkeypatch, "zz-crumbs", {"zz-crumbs.merges": "zz_clash_merges"},
            {"zz_clash_merges": module_text({"ZzCrumbs": "clash-crumbs", "ZzOnly": "zz-only"})})


def load(files: tuple[str, ...] = ()) -> tuple[Registry, list[str]]:
    """A registry and every warning its loading gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = load_registry(files)
    assert all(issubclass(w.category, PluginWarning) for w in caught), caught
    return reg, [str(w.message) for w in caught]


def kept(reg: Registry, name: str = "clash-crumbs") -> tuple[str, str]:
    """The class name and plugin that own merge ``name``."""
    return reg.components["merges"][name].__name__, reg.owner[("merges", name)]


def others_load(reg: Registry) -> None:
    merges = set(reg.components["merges"])
    assert {"hx-only", "zz-only", "soup", "slerp", "none"} <= merges
    assert not reg.broken


CLASH = ("merge 'clash-crumbs' is registered by plugin 'harness-extra.merges' (harness-extra) "
         "and plugin 'zz-crumbs.merges' (zz-crumbs); kept harness-extra's, loaded first "
         "(HARNESS_DISABLE_PLUGINS=harness-extra:merge:clash-crumbs uses zz-crumbs's instead, "
         "HARNESS_DISABLE_PLUGINS=zz-crumbs:merge:clash-crumbs keeps harness-extra's and "
         "silences this)")


@pytest.mark.usefixtures("two")
def test_two_distributions_one_merge_name_is_a_warning() -> None:
    reg, caught = load()
    assert caught == [CLASH]
    assert kept(reg) == ("HxCrumbs", "harness-extra.merges")
    assert reg.shadowed == {("merges", "clash-crumbs"): ["zz-crumbs.merges"]}
    others_load(reg)


@pytest.mark.usefixtures("two")
@pytest.mark.parametrize("disable", ["zz-crumbs:merge:clash-crumbs",
                                     "Zz_Crumbs:merges:clash-crumbs", "zz-crumbs:clash-crumbs"])
def test_turning_off_the_second_s_component(monkeypatch: pytest.MonkeyPatch,
                                            disable: str) -> None:
    """No warning at all (the name turned something off), the first kept, the rest loads."""
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", disable)
    reg, caught = load()
    assert caught == []
    assert kept(reg) == ("HxCrumbs", "harness-extra.merges")
    assert not reg.shadowed
    others_load(reg)


@pytest.mark.usefixtures("two")
def test_turning_off_the_first_s_component(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "harness-extra:merge:clash-crumbs")
    reg, caught = load()
    assert caught == []
    assert kept(reg) == ("ZzCrumbs", "zz-crumbs.merges")
    others_load(reg)


@pytest.mark.usefixtures("two")
def test_a_distribution_qualified_name_that_turns_off_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "zz-crumbs:merge:clash-crumb,zz-crumbs:soup")
    reg, caught = load()
    assert caught[:2] == [
        CLASH,
        "HARNESS_DISABLE_PLUGINS: 'zz-crumbs:merge:clash-crumb' names no plugin or component; "
        "did you mean 'zz-crumbs:merge:clash-crumbs'? (`harness plugins` lists them)"]
    assert len(caught) == 3 and caught[2].startswith(
        "HARNESS_DISABLE_PLUGINS: 'zz-crumbs:soup' names no plugin or component")
    assert kept(reg) == ("HxCrumbs", "harness-extra.merges")
    assert "soup" in reg.components["merges"]  # another distribution's soup stays


@pytest.mark.usefixtures("two")
def test_every_command_keeps_working(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"warning: {CLASH}"]
    assert "  clash-crumbs (harness-extra.merges) HxCrumbs takes" in captured.out
    assert "  zz-only (zz-crumbs.merges)" in captured.out
    assert main(["check", "clash-crumbs", "zz-only"]) == 0
    assert f"warning: {CLASH}" in capsys.readouterr().err.splitlines()
    code = main(["run", "--encoder", "scratch", "--adapter", "none", "--task", "parity",
                 "--metric", "silhouette", "--profile", "smoke", "--store", str(tmp_path / "s"),
                 "--out", str(tmp_path / "lb.md")])
    captured = capsys.readouterr()
    assert code == 0 and captured.out.strip() == "cells: 1 computed, 0 reused, 0 failed"
    assert [x for x in captured.err.splitlines() if x.startswith("warning:")] == [
        f"warning: {CLASH}"]


def test_three_distributions_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for dist in ("cc-crumbs", "aa-crumbs", "bb-crumbs"):
        module = f"{dist.replace('-', '_')}_mod"
        install(tmp_path / dist, monkeypatch, dist, {f"{dist}.merges": module},
                {module: module_text({dist.replace("-", "_").title(): "clash-crumbs"})})
    reg, caught = load()
    assert caught == [
        "merge 'clash-crumbs' is registered by plugin 'aa-crumbs.merges' (aa-crumbs), plugin "
        "'bb-crumbs.merges' (bb-crumbs) and plugin 'cc-crumbs.merges' (cc-crumbs); kept "
        "aa-crumbs's, loaded first (HARNESS_DISABLE_PLUGINS=aa-crumbs:merge:clash-crumbs uses "
        "bb-crumbs's instead, HARNESS_DISABLE_PLUGINS=bb-crumbs:merge:clash-crumbs,"
        "cc-crumbs:merge:clash-crumbs keeps aa-crumbs's and silences this)"]
    assert kept(reg) == ("Aa_Crumbs", "aa-crumbs.merges")


def test_the_distribution_name_decides_not_the_entry_point_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misnamed entry point that sorts first does not jump ahead, and neither does a hook
    marked trylast (pluggy lists those first)."""
    install(tmp_path / "b", monkeypatch, "bb-crumbs", {"bb-crumbs.merges": "bb_order_mod"},
            {"bb_order_mod": module_text({"BbCrumbs": "clash-crumbs"}, "(trylast=True)")})
    install(tmp_path / "a", monkeypatch, "aa-crumbs", {"zz-misnamed": "aa_order_mod"},
            {"aa_order_mod": module_text({"AaCrumbs": "clash-crumbs"}, "(tryfirst=True)")})
    reg, caught = load()
    assert kept(reg) == ("AaCrumbs", "zz-misnamed")
    assert len(caught) == 1 and "kept aa-crumbs's, loaded first" in caught[0]


def test_the_built_in_stays_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, monkeypatch, "aa-crumbs", {"aa-crumbs.merges": "aa_slerp_mod"},
            {"aa_slerp_mod": module_text({"MySlerp": "slerp", "Mine": "aa-only"})})
    reg, caught = load()
    assert caught == [
        "merge 'slerp' is registered by plugin 'numgeo-harness.merges.interpolation' "
        "(numgeo-harness) and plugin 'aa-crumbs.merges' (aa-crumbs); kept numgeo-harness's, "
        "loaded first (HARNESS_DISABLE_PLUGINS=numgeo-harness:merge:slerp uses aa-crumbs's "
        "instead, HARNESS_DISABLE_PLUGINS=aa-crumbs:merge:slerp keeps numgeo-harness's and "
        "silences this)"]
    assert kept(reg, "slerp")[1] == "numgeo-harness.merges.interpolation"
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "numgeo-harness:merge:slerp")
    reg, caught = load()
    assert caught == [] and kept(reg, "slerp") == ("MySlerp", "aa-crumbs.merges")
    assert {"linear", "aa-only"} <= set(reg.components["merges"])


def test_the_core_s_own_cannot_be_turned_off(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, monkeypatch, "aa-crumbs", {"aa-crumbs.merges": "aa_none_mod"},
            {"aa_none_mod": module_text({"MyNone": "none", "Mine": "aa-only"})})
    reg, caught = load()
    assert caught == [
        "merge 'none' is registered by plugin 'harness' (numgeo-harness) and plugin "
        "'aa-crumbs.merges' (aa-crumbs); kept the core's own, which cannot be turned off "
        "(HARNESS_DISABLE_PLUGINS=aa-crumbs:merge:none silences this)"]
    assert kept(reg, "none")[1] == CORE and "aa-only" in reg.components["merges"]
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "numgeo-harness:merge:none")
    reg, caught = load()
    assert kept(reg, "none")[1] == CORE
    assert caught[-1] == ("HARNESS_DISABLE_PLUGINS: 'numgeo-harness:merge:none' is the core's "
                          "own and cannot be turned off")
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "aa-crumbs:merge:none")
    reg, caught = load()
    assert caught == [] and kept(reg, "none")[1] == CORE
    assert "aa-only" in reg.components["merges"]


def test_one_distribution_registering_a_name_twice(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Its authors' bug, which no HARNESS_DISABLE_PLUGINS name of one component fixes: said so,
    and the rest still loads."""
    install(tmp_path, monkeypatch, "aa-crumbs",
            {"aa-crumbs.one": "aa_twice_one", "aa-crumbs.two": "aa_twice_two"},
            {"aa_twice_one": module_text({"One": "clash-crumbs"}),
             "aa_twice_two": module_text({"Two": "clash-crumbs", "Mine": "aa-only"})})
    reg, caught = load()
    assert caught == [
        "merge 'clash-crumbs' is registered by plugin 'aa-crumbs.one' (aa-crumbs) and plugin "
        "'aa-crumbs.two' (aa-crumbs); kept aa-crumbs's, loaded first; aa-crumbs registers it "
        "more than once (plugin 'aa-crumbs.one' and 'aa-crumbs.two'), which only its authors "
        "can fix"]
    assert kept(reg) == ("One", "aa-crumbs.one") and "aa-only" in reg.components["merges"]


# ------------------------------------------------------ --plugin files: still an error


def plugin_file(tmp_path: Path, stem: str, merges: dict[str, str]) -> str:
    path = tmp_path / f"{stem}.py"
    path.write_text(textwrap.dedent(module_text(merges)))
    return str(path)


@pytest.mark.usefixtures("two")
def test_a_plugin_file_taking_an_installed_name_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its author asked for the file's component: the error names the way out, which works."""
    path = plugin_file(tmp_path, "mycrumbs", {"Mine": "clash-crumbs"})
    with pytest.raises(HarnessError) as err:
        load_registry([path])
    assert str(err.value) == (
        f"--plugin {path}: plugin 'mycrumbs' registers merge 'clash-crumbs', which plugin "
        "'harness-extra.merges' (harness-extra) registers too; "
        "HARNESS_DISABLE_PLUGINS=harness-extra:merge:clash-crumbs turns off that one, or rename "
        "yours")
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS",
                       "harness-extra:merge:clash-crumbs,zz-crumbs:merge:clash-crumbs")
    reg, caught = load(files=(path,))
    assert caught == [] and kept(reg) == ("Mine", "mycrumbs")
    others_load(reg)


def test_a_plugin_file_taking_the_core_s_name(tmp_path: Path) -> None:
    path = plugin_file(tmp_path, "mynone", {"Mine": "none"})
    with pytest.raises(HarnessError, match="the core's own .*cannot be turned off; rename yours"):
        load_registry([path])


def test_two_plugin_files_one_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = plugin_file(tmp_path, "one", {"One": "crumbs-file"})
    two = plugin_file(tmp_path, "two", {"Two": "crumbs-file"})
    with pytest.raises(HarnessError, match=f"which --plugin {one} .*'one'.* registers too"):
        load_registry([one, two])
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "one")
    reg, caught = load(files=(one, two))
    assert caught == [] and kept(reg, "crumbs-file") == ("Two", "two")


def test_registered_twice_by_one_plugin_file(tmp_path: Path) -> None:
    path = plugin_file(tmp_path, "twice", {"One": "crumbs-file", "Two": "crumbs-file"})
    with pytest.raises(HarnessError, match="registers merge 'crumbs-file' twice"):
        load_registry([path])
