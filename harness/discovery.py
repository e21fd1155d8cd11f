"""Which installed entry points, ``--plugin`` files and components a registry loads.

Entry points of group ``harness`` share one namespace across distributions, so a third-party
entry point is named ``<its distribution>.<anything>``. Two distributions declaring one name
are a warning, never an error: the harness's own distribution loads first, then the one whose
name the entry point starts with, then the others by distribution name; only the first loads.

Plugins load in one order, which decides every tie: the core's own plugin ``harness``, the
harness's own distribution's entry points, the other distributions' by distribution name (as
pip compares names, then by entry point name), then ``--plugin`` files in the order given. A
component name that two installed plugins register for one kind (two merges ``breadcrumbs``)
is a warning, never an error: the first loaded keeps it, and the warning names every plugin
with its distribution and the way out, ``<distribution>:<kind>:<name>``, which turns off that
one component of that one distribution (the core's own cannot be turned off: it always stays).
A ``--plugin`` file registering a name some plugin already has is an error, since its author
asked for that file's component: the error names the ``<distribution>:<kind>:<name>`` that
turns the other one off.

``HARNESS_ONLY_DISTRIBUTIONS=a,b`` loads the entry points of those distributions only (the
test suite runs on ``numgeo-harness`` alone). ``HARNESS_DISABLE_PLUGINS=a,b`` turns off, for
each name (every match, no error for several):

- an entry point by its name, any dotted prefix of it, and for one named ``<distribution>.<rest>``
  by ``<rest>`` or a dotted prefix of that (``merges`` turns off every built-in merge);
- every entry point of a distribution by the distribution's name (``numgeo-harness``: every
  built-in plugin; compared as pip compares names);
- a ``--plugin`` file by its stem;
- a component by its name (``slerp``: of every kind) or ``<kind>:<name>`` (``merge:slerp``,
  ``merges:slerp``);
- any of these prefixed ``<distribution>:``, for that distribution's entry points and
  components only: ``acme-tools:merges`` is its entry point ``merges`` (how one of two entry
  points with one name is turned off), ``acme-tools:merge:breadcrumbs`` its merge
  ``breadcrumbs`` only (how one of two components with one name is). Component names hold no
  ``:``, so a name with two is always a component; ``acme-tools:breadcrumbs`` turns off both
  an entry point and a component of acme-tools so named, if it has both (every match, as for
  an unprefixed name), and ``merge:slerp`` a distribution ``merge``'s ``slerp`` as well.

The core's own plugin ``harness`` and its components cannot be turned off. A name that turns
off nothing is a warning.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from importlib import metadata

GROUP = "harness"
CORE = "harness"  # the plugin name of the core's own components
BUILT_IN = "numgeo-harness"  # the harness's own distribution
SINGULAR = {"encoders": "encoder", "adapters": "adapter", "merges": "merge",
            "tasks": "task", "metrics": "metric"}


class PluginWarning(UserWarning):
    pass


def warn(message: str) -> None:
    warnings.warn(message, PluginWarning, stacklevel=3)


def normalized(distribution: str) -> str:
    """A distribution's name as pip compares it: case and runs of ``-_.`` do not matter."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def distribution(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist else "unknown"


def _listed(variable: str) -> list[str]:
    return [p.strip() for p in os.environ.get(variable, "").split(",") if p.strip()]


def _own_parts(entry_point: str, dist: str | None) -> int:
    """How many leading dotted parts of ``entry_point`` spell its distribution's name (0: none)."""
    parts = entry_point.split(".")
    if dist:
        for i in range(1, len(parts)):
            if normalized(".".join(parts[:i])) == normalized(dist):
                return i
    return 0


def names_of(entry_point: str, distribution: str | None) -> set[str]:
    """The names that disable an entry point: its own, and for one named
    ``<distribution>.<rest>``, ``<rest>`` and every dotted prefix of either."""
    names = {entry_point}
    parts = entry_point.split(".")
    names |= {".".join(parts[:i]) for i in range(2, len(parts))}
    own = _own_parts(entry_point, distribution)
    if own:
        rest = parts[own:]
        names |= {".".join(rest[:i]) for i in range(1, len(rest) + 1)}
    return names


def installed() -> list[metadata.EntryPoint]:
    """The entry points of group ``harness``, of HARNESS_ONLY_DISTRIBUTIONS' only when set."""
    eps = list(metadata.entry_points(group=GROUP))
    only = _listed("HARNESS_ONLY_DISTRIBUTIONS")
    if not only:
        return eps
    present = {normalized(distribution(ep)) for ep in eps}
    for name in only:
        if normalized(name) not in present:
            warn(f"HARNESS_ONLY_DISTRIBUTIONS: no installed distribution {name!r} has harness "
                 "entry points")
    keep = {normalized(name) for name in only}
    return [ep for ep in eps if normalized(distribution(ep)) in keep]


def _order(ep: metadata.EntryPoint) -> tuple[bool, bool, str, str]:
    dist = distribution(ep)
    return (normalized(dist) != BUILT_IN, not _own_parts(ep.name, dist), normalized(dist),
            ep.value)


def unique(eps: list[metadata.EntryPoint]) -> list[metadata.EntryPoint]:
    """One entry point per name, the built-ins first, then by name; a name declared by more
    than one distribution (or twice by one) is a warning naming them all and the way out."""
    groups: dict[str, list[metadata.EntryPoint]] = {}
    for ep in eps:
        same = groups.setdefault(ep.name, [])
        if not any(distribution(o) == distribution(ep) and o.value == ep.value for o in same):
            same.append(ep)  # the same distribution seen twice on sys.path is one
    out = []
    for name, same in groups.items():
        same.sort(key=_order)
        first, rest = same[0], same[1:]
        out.append(first)
        if not rest:
            continue
        dist = distribution(first)
        declared = " and ".join(f"{distribution(e)} ({e.value})" for e in same)
        if all(normalized(distribution(e)) == normalized(dist) for e in rest):
            warn(f"entry point {name!r} is declared twice: {declared}; loaded the first")
            continue
        others = ",".join(f"{distribution(e)}:{name}" for e in rest)
        misnamed = [distribution(e) for e in same if not _own_parts(name, distribution(e))]
        warn(f"entry point {name!r} is declared by {declared}; loaded {dist}'s only "
             f"(HARNESS_DISABLE_PLUGINS={dist}:{name} loads {distribution(rest[0])}'s instead, "
             f"HARNESS_DISABLE_PLUGINS={others} keeps {dist}'s and silences this)"
             + "".join(f"; {d} should name it '{d}.<name>'" for d in misnamed))
    return sorted(out, key=lambda e: (normalized(distribution(e)) != BUILT_IN,
                                      normalized(distribution(e)), e.name))


class Disabled:
    """The names in HARNESS_DISABLE_PLUGINS, and which of them turned something off."""

    def __init__(self) -> None:
        self.names = _listed("HARNESS_DISABLE_PLUGINS")
        self.used: set[str] = set()
        self.core: set[str] = set()  # names of the core's own, which stay on
        self.offered: set[str] = set()  # every component name a plugin registered
        self.qualified: set[str] = set()  # and each as ``<distribution>:<kind>:<name>``

    def _hit(self, names: set[str]) -> bool:
        hit = names & set(self.names)
        self.used |= hit
        return bool(hit)

    def entry_point(self, ep: metadata.EntryPoint) -> bool:
        names = names_of(ep.name, ep.dist.name if ep.dist else None)
        dist = normalized(distribution(ep))
        qualified = {n for n in self.names if ":" in n and n.partition(":")[2] in names
                     and normalized(n.partition(":")[0]) == dist}
        whole = {n for n in self.names if ":" not in n and normalized(n) == dist}
        return self._hit(names | qualified | whole)

    def file(self, stem: str) -> bool:
        return self._hit({stem})

    def component(self, kind: str, name: str, plugin: str, dist: str) -> bool:
        """Whether HARNESS_DISABLE_PLUGINS turns off ``plugin``'s ``kind`` ``name`` (``dist``:
        the plugin's distribution); the core's own stay on."""
        names = {name, f"{SINGULAR[kind]}:{name}", f"{kind}:{name}"}
        self.offered.add(name)
        self.qualified.add(f"{dist}:{SINGULAR[kind]}:{name}")
        hit = names & set(self.names)
        for n in self.names:
            prefix, colon, rest = n.partition(":")
            if colon and rest in names and normalized(prefix) == normalized(dist):
                hit.add(n)
        if plugin == CORE:
            self.core |= hit
            return False
        self.used |= hit
        return bool(hit)

    def warn_unused(self, known: list[str]) -> None:
        """One warning per name that turned nothing off; ``known``: what could have."""
        for name in dict.fromkeys(self.names):
            if name in self.used:
                continue
            if name == CORE or name in self.core:
                warn(f"HARNESS_DISABLE_PLUGINS: {name!r} is the core's own and cannot be "
                     "turned off")
                continue
            candidates = {*known, *self.offered, *(self.qualified if ":" in name else ())}
            close = difflib.get_close_matches(name, sorted(candidates), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            warn(f"HARNESS_DISABLE_PLUGINS: {name!r} names no plugin or component{hint} "
                 "(`harness plugins` lists them)")


def shadowed(kind: str, name: str, registrants: list[tuple[str, str]]) -> None:
    """Warn that ``registrants`` (plugin, distribution), in load order, all registered ``kind``
    ``name``: the first one's is kept; name each and the way out."""
    (plugin, dist), rest = registrants[0], registrants[1:]
    what = f"{SINGULAR[kind]}:{name}"
    listed = [f"plugin {p!r} ({d})" for p, d in registrants]
    message = (f"{SINGULAR[kind]} {name!r} is registered by {', '.join(listed[:-1])} and "
               f"{listed[-1]}; ")
    others = list(dict.fromkeys(d for _, d in rest if normalized(d) != normalized(dist)))
    way_out = ",".join(f"{d}:{what}" for d in others)
    if plugin == CORE:
        message += "kept the core's own, which cannot be turned off"
        if others:
            message += f" (HARNESS_DISABLE_PLUGINS={way_out} silences this)"
    else:
        message += f"kept {dist}'s, loaded first"
        if others:
            message += (f" (HARNESS_DISABLE_PLUGINS={dist}:{what} uses {others[0]}'s instead, "
                        f"HARNESS_DISABLE_PLUGINS={way_out} keeps {dist}'s and silences this)")
    twice = [p for p, d in rest if normalized(d) == normalized(dist)]
    if twice:
        message += (f"; {dist} registers it more than once (plugin "
                    f"{' and '.join(repr(p) for p in dict.fromkeys([plugin, *twice]))}), "
                    "which only its authors can fix")
    warn(message)
