"""Plugin discovery: entry points of group ``harness`` and ``--plugin FILE.py`` modules.

Nothing is loaded at import time: ``load_registry()`` builds a fresh plugin manager each call.
Entry points are loaded one by one so that a broken plugin is named (with its distribution) and
the others still load. Which entry points, files and components load (one entry point per
name, HARNESS_DISABLE_PLUGINS, HARNESS_ONLY_DISTRIBUTIONS) is ``harness.discovery``'s. The core
registers its own reference components first, as plugin ``harness`` (``harness.reference``),
which cannot be disabled.

Two installed plugins registering one kind and name (two merges ``breadcrumbs``) are a warning,
never an error: the one loaded first keeps the name (the core's own, then the harness's own
distribution, then the others by distribution name: ``harness.discovery``'s order), every
command keeps working, and the warning names both plugins, their distributions and
``HARNESS_DISABLE_PLUGINS=<distribution>:<kind>:<name>``, which turns off that component of
that distribution only. A ``--plugin`` file registering a name already taken is an error: the
file is what its author asked for, so running another plugin's component under its name would
mislead; the error names the way to turn the other one off.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import sys
import unicodedata
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

import harness
from harness import api, hookspecs, reference
from harness.api import KINDS, HarnessError
from harness.discovery import (
    BUILT_IN,
    CORE,
    GROUP,
    SINGULAR,
    Disabled,
    PluginWarning,
    installed,
    names_of,
    shadowed,
    unique,
)

__all__ = ["CORE", "GROUP", "SINGULAR", "PluginWarning", "names_of"]

BASES: dict[str, type] = {"encoders": api.Encoder, "adapters": api.Adapter,
                          "merges": api.Merge, "tasks": api.Task, "metrics": api.Metric}

@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None  # set when the plugin failed to load

    @property
    def is_file(self) -> bool:
        return self.distribution.startswith("file ")

    @property
    def disable_as(self) -> str:
        """The HARNESS_DISABLE_PLUGINS name that turns off this plugin only."""
        if self.distribution == "unknown" or self.distribution.startswith("file "):
            return self.name
        return f"{self.distribution}:{self.name}"


@dataclass
class Registry:
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    components: dict[str, dict[str, type[Any]]] = field(
        default_factory=lambda: {k: {} for k in KINDS})
    owner: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> plugin
    #: (kind, name) -> the plugins that registered it after its owner, in load order: theirs
    #: was dropped
    shadowed: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @property
    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.error]

    def get(self, kind: str, name: str) -> type[Any]:
        table = self.components[kind]
        if name in table:
            return table[name]
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(table)) or "none"
        broken = "".join(f"; note: plugin {p.name!r} failed to load ({p.error})"
                         for p in self.broken)
        raise HarnessError(
            f"unknown {SINGULAR[kind]} {name!r}{hint} (known: {known}){broken}. "
            "A plugin installed or changed since? re-run `pip install -e .`")

    def add(self, kind: str, plugin: str, cls: Any) -> None:
        base = BASES[kind]
        where = f"plugin {plugin!r}"
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise HarnessError(f"{where} registered {cls!r} as {SINGULAR[kind]}, "
                               f"expected a subclass of harness.api.{base.__name__}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name or any(
                c in NOT_IN_NAMES or unicodedata.category(c)[0] in "CZ" for c in name):
            raise HarnessError(f"{where}: {cls.__name__} needs a `name` without spaces, "
                               "control characters, ':', ',', '=', '|', '`', '<' or '>', got "
                               f"{name!r}")
        if not dataclasses.is_dataclass(cls):
            raise HarnessError(f"{where}: {SINGULAR[kind]} {name!r} must be a @dataclass")
        if kind == "tasks" and not getattr(cls, "classes", ()):
            raise HarnessError(f"{where}: task {name!r} declares no classes")
        per_instance = any(f.name == "family" for f in dataclasses.fields(cls))
        if kind == "encoders" and not per_instance and \
                getattr(cls, "family", None) not in ("non-llm", "llm"):
            raise HarnessError(f"{where}: encoder {name!r} needs family 'non-llm' or 'llm'")
        if kind == "metrics" and not isinstance(getattr(cls, "higher_is_better", None), bool):
            raise HarnessError(f"{where}: metric {name!r} needs a bool higher_is_better")
        if name in self.components[kind]:
            self._taken(kind, name, plugin)
            self.shadowed.setdefault((kind, name), []).append(plugin)
            return
        self.components[kind][name] = cls
        self.owner[(kind, name)] = plugin

    def _taken(self, kind: str, name: str, plugin: str) -> None:
        """A ``--plugin`` file registering a name already taken is an error naming the way
        out; an installed plugin's is dropped (``warn_shadowed`` says so)."""
        info = self.plugins[plugin]
        if not info.is_file:
            return
        other = self.plugins[self.owner[(kind, name)]]
        what = f"{SINGULAR[kind]} {name!r}"
        where = f"--plugin {info.distribution[len('file '):]}: plugin {plugin!r} registers {what}"
        if other.name == plugin:
            raise HarnessError(f"{where} twice")
        if other.name == CORE:
            raise HarnessError(f"{where}, the core's own ({other.distribution}), which cannot "
                               "be turned off; rename yours")
        if other.is_file:
            raise HarnessError(f"{where}, which --plugin {other.distribution[len('file '):]} "
                               f"(plugin {other.name!r}) registers too; rename one")
        raise HarnessError(f"{where}, which plugin {other.name!r} ({other.distribution}) "
                           "registers too; HARNESS_DISABLE_PLUGINS="
                           f"{other.distribution}:{SINGULAR[kind]}:{name} turns off that one, "
                           "or rename yours")

    def warn_shadowed(self) -> None:
        """One warning per kind and name that more than one plugin registered."""
        for (kind, name), later in self.shadowed.items():
            plugins = [self.owner[(kind, name)], *later]
            shadowed(kind, name, [(p, self.plugins[p].distribution) for p in plugins])


#: characters a component name may not hold: the spec syntax's (``name:k=v,...``), and those
#: that would break the leaderboard's markdown or HTML; control and space characters neither
NOT_IN_NAMES = frozenset(":,= |`<>")


def _load_file(path: str) -> ModuleType:
    file = Path(path)
    if not file.is_file():
        raise HarnessError(f"--plugin {path}: no such file")
    name = f"harness_plugin_file_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise HarnessError(f"--plugin {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _entry_points() -> list[metadata.EntryPoint]:
    return installed()


def load_registry(plugin_files: tuple[str, ...] | list[str] = (),
                  strict: bool = False) -> Registry:
    """Load every enabled plugin into a fresh registry.

    A plugin that fails to import is recorded (``Registry.broken``) and skipped, unless
    ``strict``, where it is an error. Registration mistakes are always errors.
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    reg = Registry()
    disabled = Disabled()
    modules: list[tuple[PluginInfo, ModuleType]] = []
    core = PluginInfo(CORE, BUILT_IN, harness.__version__)
    reg.plugins[CORE] = core
    modules.append((core, reference))
    enabled = []
    for ep in _entry_points():
        if ep.name == CORE:
            dist = ep.dist.name if ep.dist else "unknown"
            warnings.warn(f"entry point {ep.name!r} ({ep.value}, from {dist}) takes the name "
                          f"the core's own plugin has and is not loaded; {dist} should name it "
                          f"'{dist}.<name>'", PluginWarning, stacklevel=2)
        elif not disabled.entry_point(ep):
            enabled.append(ep)
    for ep in unique(enabled):
        dist = ep.dist.name if ep.dist else "unknown"
        info = PluginInfo(ep.name, dist, ep.dist.version if ep.dist else "?")
        reg.plugins[ep.name] = info
        try:
            modules.append((info, ep.load()))
        except (Exception, SystemExit) as err:  # a broken plugin must not take the others down
            info.error = f"{type(err).__name__}: {err}"
            if strict:
                raise HarnessError(f"failed to load plugin {ep.name!r} (from distribution "
                                   f"{dist}): {info.error}") from None
    for path in plugin_files:
        stem = Path(path).stem
        if disabled.file(stem):
            continue
        if stem in reg.plugins:
            raise HarnessError(f"--plugin {path}: a plugin named {stem!r} is already loaded "
                               f"from {reg.plugins[stem].distribution}; rename the file")
        info = PluginInfo(stem, f"file {path}", "-")
        reg.plugins[stem] = info
        try:
            modules.append((info, _load_file(path)))
        except HarnessError:
            raise
        except (Exception, SystemExit) as err:
            raise HarnessError(f"--plugin {path}: failed to import: "
                               f"{type(err).__name__}: {err}") from None
    for info, module in modules:
        try:
            pm.register(module, name=info.name)
        except pluggy.PluginValidationError as err:
            raise HarnessError(f"plugin {info.name!r} ({info.distribution}): "
                               f"{_one_line(err)}") from None
        info.hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])
        if not info.hooks:
            warnings.warn(f"plugin {info.name!r} ({info.distribution}) implements no harness "
                          "hook; is its @hookimpl from harness.hookspecs?", PluginWarning,
                          stacklevel=2)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        raise HarnessError(f"{_one_line(err)}; hooks are named register_<kind>(register)"
                           ) from None
    order = {info.name: i for i, (info, _) in enumerate(modules)}
    for kind in KINDS:
        hook = getattr(pm.hook, f"register_{kind}")
        # in load order, whatever tryfirst/trylast say: the first loaded keeps a name
        for impl in sorted(hook.get_hookimpls(), key=lambda i: order[i.plugin_name]):
            plugin = impl.plugin_name

            def register(cls: Any, _kind: str = kind, _plugin: str = plugin) -> None:
                name = getattr(cls, "name", None)
                dist = reg.plugins[_plugin].distribution
                if not (isinstance(name, str) and disabled.component(_kind, name, _plugin, dist)):
                    reg.add(_kind, _plugin, cls)

            try:
                impl.function(register)
            except HarnessError:
                raise
            except (Exception, SystemExit) as err:  # a plugin's sys.exit() too
                raise HarnessError(f"plugin {plugin!r} failed in register_{kind}: "
                                   f"{type(err).__name__}: {err}") from None
    reg.warn_shadowed()
    disabled.warn_unused(list(reg.plugins))
    return reg
