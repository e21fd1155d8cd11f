"""Contract tests over every registered component: a new plugin is tested with no new test code.

They are the checks ``harness check`` runs (``harness.contracts``, over the registry by
``harness.check``), one test per component (``harness.testing.contract_tests``), here with the
pretrained encoders loaded too (``harness check --pretrained``). Components are collected from
the installed entry points at collection time, so a plugin installed into this environment is
checked too; ``tests/test_check.py`` tests the checks themselves on good and bad plugins.
"""

from __future__ import annotations

from harness.registry import load_registry
from harness.testing import contract_tests

test_contract = contract_tests(pretrained=True)


def test_registry_has_the_builtins() -> None:
    reg = load_registry()
    assert len(reg.components["tasks"]) >= 8
    assert {"silhouette", "davies-bouldin"} <= set(reg.components["metrics"])
    assert {"none", "full"} <= set(reg.components["adapters"])
    assert "none" in reg.components["merges"] and "scratch" in reg.components["encoders"]
