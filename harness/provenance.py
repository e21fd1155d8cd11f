"""What a run records about where it ran: the git commit, the versions of the packages that
shape its numbers and, for every plugin outside the harness that supplied a component the run
used, its distribution and version (and a hash of its source where the version does not pin
it: an editable or source install, a ``--plugin FILE.py``)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from harness.plan import Plan
from harness.registry import CORE, Registry

PACKAGES = ("numgeo-harness", "torch", "numpy", "scikit-learn", "safetensors", "pluggy",
            "transformers", "peft", "sentence-transformers", "matplotlib")
#: how a plugin's entry in a run's packages starts: ``plugin <distribution>`` or
#: ``plugin file <name>.py`` (no distribution name holds a space)
PLUGIN = "plugin "
#: hex digits kept of a source or file hash
DIGITS = 12


def provenance(plan: Plan | None = None, registry: Registry | None = None
               ) -> tuple[str, dict[str, str]]:
    """(git commit or "unknown", package -> version of those installed), with the plugins of
    ``plan``'s components (``plugins``) when a plan and its registry are given."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    if plan is not None and registry is not None:
        packages.update(plugins(plan, registry))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit or "unknown", packages


def components(plan: Plan) -> list[object]:
    """Every component ``plan`` uses: its variants' encoders, adapters, train tasks and merges,
    its eval tasks and metrics, and the metrics its merges score with."""
    found: list[object] = [*plan.tasks, *plan.metrics, *plan.scorers.values()]
    for v in plan.variants:
        found += [v.encoder, v.adapter, v.train_task, v.merge, *v.run_tasks]
    return [c for c in found if c is not None]


def plugins(plan: Plan, registry: Registry) -> dict[str, str]:
    """``plugin <distribution>`` -> its version (``+src.<hash>`` added for an editable or
    source install) and ``plugin file <name>.py`` -> ``sha256:<hash>`` of the file, for each
    plugin that supplied a component of ``plan``; the harness's own are left out (its version
    and source hash are recorded already)."""
    owner = {cls: plugin for (kind, name), plugin in registry.owner.items()
             if (cls := registry.components[kind].get(name)) is not None}
    core = registry.plugins[CORE].distribution
    used: dict[str, set[str]] = {}  # distribution -> the modules of its components
    for component in components(plan):
        plugin = owner.get(type(component))
        info = registry.plugins.get(plugin or "")
        if info is not None and info.distribution != core:
            used.setdefault(info.distribution, set()).add(type(component).__module__)
    out = {}
    for distribution, modules in sorted(used.items()):
        if distribution.startswith("file "):
            path = Path(distribution.removeprefix("file "))
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:DIGITS]
            out[f"{PLUGIN}file {path.name}"] = f"sha256:{digest}"
            continue
        version = _version(distribution)
        files = _sources(modules)
        if files and _from_source(distribution, files.values()):
            version += f"+src.{_digest(files)}"
        out[PLUGIN + distribution] = version
    return out


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except (metadata.PackageNotFoundError, ValueError):
        return "?"


def _sources(modules: Iterable[str]) -> dict[str, Path]:
    """The .py files of the top-level packages (or single-file modules) that ``modules``
    belong to, each under its name within its package: what an installed version pins."""
    files: dict[str, Path] = {}
    for top in sorted({m.partition(".")[0] for m in modules}):
        module = sys.modules.get(top)
        if module is None:
            continue
        folders = sorted(str(p) for p in getattr(module, "__path__", None) or [])
        if not folders:
            file = getattr(module, "__file__", None)
            if file and file.endswith(".py"):
                files[f"{top}.py"] = Path(file)
            continue
        for folder in folders:
            root = Path(folder)
            for path in sorted(root.rglob("*.py")):
                files.setdefault(f"{top}/{path.relative_to(root).as_posix()}", path)
    return files


def _from_source(distribution: str, files: Iterable[Path]) -> bool:
    """Whether the code of ``distribution`` is not pinned by its version: an editable install
    (its ``direct_url.json`` says so), or one whose modules live outside site-packages."""
    try:
        direct = metadata.distribution(distribution).read_text("direct_url.json")
    except (metadata.PackageNotFoundError, ValueError):
        direct = None
    try:
        editable = bool(json.loads(direct or "{}").get("dir_info", {}).get("editable"))
    except (ValueError, AttributeError):
        editable = False
    installed = all({"site-packages", "dist-packages"} & set(f.resolve().parts) for f in files)
    return editable or not installed


def _digest(files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return digest.hexdigest()[:DIGITS]
