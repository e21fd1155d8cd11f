"""``harness plugins``: every plugin and component, with what each declares."""

from __future__ import annotations

from typing import Any

from harness.api import KINDS
from harness.params import describe
from harness.registry import Registry

#: what each kind declares about itself, shown by ``harness plugins``
DECLARED = {"encoders": ("family", "from_scratch"),
            "adapters": ("kind", "parameter_efficient", "reference"),
            "merges": ("interpolates", "control", "reference", "identity_on_one", "comparator",
                       "replicates"),
            "tasks": ("classes", "compositional", "trains_by_default", "exempt_nuisances"),
            "metrics": ("higher_is_better",)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def inventory(reg: Registry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in KINDS:
        entries = []
        for name, cls in sorted(reg.components[kind].items()):
            plugin = reg.owner[(kind, name)]
            entry: dict[str, Any] = {
                "name": name, "plugin": plugin, "distribution": reg.plugins[plugin].distribution,
                "version": str(getattr(cls, "version", "1")), "params": describe(cls),
                "doc": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
                "in_all": bool(getattr(cls, "in_all", True))}
            for attr in DECLARED[kind]:
                entry[attr] = _plain(getattr(cls, attr, None))
            if kind == "encoders":
                entry["family"] = entry["family"] or "inferred"  # a field, settled per instance
            entries.append(entry)
        out[kind] = entries
    out["plugins"] = [{"name": p.name, "distribution": p.distribution, "version": p.version,
                       "hooks": p.hooks, "error": p.error}
                      for p in sorted(reg.plugins.values(), key=lambda p: p.name)]
    return out


def broken(reg: Registry) -> str:
    """The plugins that failed to load, each with its distribution, error and the
    HARNESS_DISABLE_PLUGINS name that turns it off, on one line ("" when none did)."""
    return "; ".join(f"{p.name} ({p.distribution} {p.version}): {' '.join(str(p.error).split())}"
                     f" (HARNESS_DISABLE_PLUGINS={p.disable_as})" for p in reg.broken)


def lines(data: dict[str, Any]) -> list[str]:
    """The human-readable listing of an ``inventory``."""
    out = []
    for p in data["plugins"]:
        status = f"FAILED TO LOAD: {p['error']}" if p["error"] else ", ".join(p["hooks"])
        out.append(f"{p['name']} ({p['distribution']} {p['version']}): {status}")
    for kind in KINDS:
        out.append(f"\n{kind}:")
        for e in data[kind]:
            params = ", ".join(f"{d['name']}={d['default']}" for d in e["params"])
            extra = f" [{e['family']}]" if kind == "encoders" else ""
            out.append(f"  {e['name']}{extra} ({e['plugin']}) {e['doc']}"
                       + (f"\n      params: {params}" if params else ""))
            flags = declared(kind, e)
            if flags:
                out.append(f"      declares: {', '.join(flags)}")
    return out


def declared(kind: str, entry: dict[str, Any]) -> list[str]:
    """What a component declared that differs from the base class's default, as short words:
    flags that are set, and roles with a value (``interpolates=t``); ``not in --all`` for
    ``in_all = False``. An encoder's family is in its heading, a task's classes are counted."""
    out = []
    for attr in DECLARED[kind]:
        value = entry.get(attr)
        if attr == "family" or value in (None, False, "", [], ()):
            continue
        if attr == "identity_on_one":
            continue  # True is the default; False is shown below
        if attr == "classes":
            out.append(f"{len(value)} classes")
        elif value is True:
            out.append(attr)
        else:
            out.append(f"{attr}={','.join(map(str, value)) if isinstance(value, list) else value}")
    if kind == "merges" and entry.get("identity_on_one") is False:
        out.append("identity_on_one=False")
    if kind == "metrics" and entry.get("higher_is_better") is False:
        out.append("lower_is_better")
    if not entry.get("in_all", True):
        out.append("in --all across tasks only" if entry.get("comparator") else "not in --all")
    return out
