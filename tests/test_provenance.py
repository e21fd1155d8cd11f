"""Provenance: each distribution (or --plugin file) that supplied a component of a run is in
the run's stored packages and in the leaderboard's reproducibility block, with its version (a
hash where the version does not pin the code); one the run did not use is not; a run of
built-ins only records and shows what it always did."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import main
from harness.plan import plan_request
from harness.provenance import PACKAGES, PLUGIN, plugins, provenance
from harness.registry import load_registry
from harness.report.tables import md
from harness.selection import Request
from harness.store import Store

LINE = "- plugins that supplied a component of the latest run: "

METRIC = '''
from dataclasses import dataclass
from typing import ClassVar

from harness import hookimpl
from harness.api import Metric


@dataclass(frozen=True)
class Spread(Metric):
    """Mean per-dimension standard deviation."""
    name: ClassVar[str] = "{name}"
    higher_is_better: ClassVar[bool] = True

    def score(self, X, y, rng):
        return float(X.std(0).mean())


@hookimpl
def register_metrics(register):
    register(Spread)
'''


def install(site: Path, distribution: str, version: str, metric: str,
            editable: bool = False) -> Path:
    """A distribution in ``site`` whose entry point (group ``harness``) registers ``metric``;
    the path of its module."""
    module = distribution.replace("-", "_") + "_plugin"
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\n"
                                   f"Version: {version}\n")
    (info / "entry_points.txt").write_text(f"[harness]\n{distribution} = {module}\n")
    if editable:
        (info / "direct_url.json").write_text(json.dumps(
            {"url": site.as_uri(), "dir_info": {"editable": True}}))
    path = site / f"{module}.py"
    path.write_text(METRIC.format(name=metric))
    only = os.environ.get("HARNESS_ONLY_DISTRIBUTIONS")
    if only:  # loads beside the built-ins; nothing else the environment has installed
        os.environ["HARNESS_ONLY_DISTRIBUTIONS"] = f"{only},{distribution}"
    return path


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site-packages folder on sys.path; the plugin modules imported from it are forgotten
    afterwards."""
    folder = tmp_path / "lib" / "site-packages"
    folder.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.endswith("_plugin") or name.startswith("harness_plugin_file_"):
            del sys.modules[name]


def run(tmp_path: Path, *args: str, metrics: tuple[str, ...] = ("silhouette",)) -> str:
    argv = [*args, "run", "--encoder", "scratch", "--adapter", "none", "--task", "parity",
            *(a for m in metrics for a in ("--metric", m)), "--profile", "smoke",
            "--store", str(tmp_path / "S"), "--out", str(tmp_path / "lb.md")]
    assert main(argv) == 0
    return (tmp_path / "lb.md").read_text()


def stored(tmp_path: Path) -> dict[str, str]:
    store = Store(str(tmp_path / "S"))
    try:
        latest = store.latest_run()
        assert latest is not None
        return latest.packages
    finally:
        store.close()


def test_plugins_of_a_run_are_stored_and_shown(site: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    install(site, "demo-used", "1.2.3", "demo-spread")
    install(site, "demo-unused", "4.5.6", "demo-idle")
    file = tmp_path / "my_metric.py"
    file.write_text(METRIC.format(name="file-spread"))
    sha = hashlib.sha256(file.read_bytes()).hexdigest()[:12]
    board = run(tmp_path, "--plugin", str(file),
                metrics=("demo-spread", "file-spread", "silhouette"))
    packages = stored(tmp_path)
    assert packages[f"{PLUGIN}demo-used"] == "1.2.3"  # in site-packages: its version pins it
    assert packages[f"{PLUGIN}file my_metric.py"] == f"sha256:{sha}"
    assert not any("demo-unused" in k for k in packages)
    assert {k: v for k, v in packages.items() if not k.startswith(PLUGIN)} == provenance()[1]
    line = f"{LINE}demo-used 1.2.3, file {md('my_metric.py')} sha256:{sha}"
    assert line in board.splitlines() and "demo-unused" not in board
    # the leaderboard renders from the store alone: the same without the plugins
    capsys.readouterr()
    again = tmp_path / "again.md"
    assert main(["leaderboard", "--store", str(tmp_path / "S"), "--out", str(again)]) == 0
    assert line in again.read_text().splitlines()


def test_editable_and_source_installs_carry_a_source_hash(site: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    editable = install(site, "demo-editable", "0.4.0", "demo-edit", editable=True)
    checkout = tmp_path / "checkout"  # a distribution outside site-packages
    monkeypatch.syspath_prepend(str(checkout))
    install(checkout, "demo-checkout", "2.0", "demo-checkout")
    registry = load_registry()
    request = Request(encoders=["scratch"], adapters=["none"], tasks=["parity"],
                      metrics=["demo-edit", "demo-checkout"], profile="smoke")
    found = plugins(plan_request(registry, request), registry)
    assert set(found) == {f"{PLUGIN}demo-editable", f"{PLUGIN}demo-checkout"}
    version, _, digest = found[f"{PLUGIN}demo-editable"].partition("+src.")
    assert version == "0.4.0" and len(digest) == 12
    assert found[f"{PLUGIN}demo-checkout"].startswith("2.0+src.")
    assert plugins(plan_request(registry, request), registry) == found  # deterministic
    editable.write_text(editable.read_text() + "\n# changed\n")  # the hash follows the source
    changed = plugins(plan_request(registry, request), registry)
    assert changed[f"{PLUGIN}demo-editable"] != found[f"{PLUGIN}demo-editable"]
    assert changed[f"{PLUGIN}demo-checkout"] == found[f"{PLUGIN}demo-checkout"]


def test_builtins_only_run_records_what_it_did(tmp_path: Path) -> None:
    board = run(tmp_path)
    packages = stored(tmp_path)
    assert packages == provenance()[1] and set(packages) <= set(PACKAGES)
    assert "numgeo-harness" in packages and LINE.strip() not in board
    shown = next(x for x in board.splitlines() if x.startswith("- packages: "))
    assert shown == "- packages: " + ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))
