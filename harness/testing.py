"""``harness check`` in an author's own pytest suite; opt in, nothing loads it by itself (no
``pytest11`` entry point: that would import torch into every pytest session).

Either import it in a test module, one test per component::

    from harness.testing import contract_tests

    test_my_plugin = contract_tests(["half-way"], plugin_files=["half_way.py"])

or load it as a pytest plugin (``pytest -p harness.testing``, or ``pytest_plugins =
["harness.testing"]`` in a conftest) and use its ``harness_check`` fixture::

    def test_my_plugin(harness_check):
        harness_check("half-way", plugin_files=["half_way.py"])

Both run the checks ``harness check`` runs (``harness.check``), on the same tiny inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from harness.check import Checker, Result, Target, check_components
from harness.registry import load_registry

__all__ = ["check", "contract_tests", "harness_check"]


def check(*names: str, plugin_files: Sequence[str] = (), pretrained: bool = False
          ) -> list[Result]:
    """The result of each component's checks: every installed component (and every component
    of ``plugin_files``), or the named ones (``NAME`` or ``NAME:k=v,...``)."""
    return check_components(load_registry(list(plugin_files)), names, pretrained)


def contract_tests(names: Sequence[str] = (), plugin_files: Sequence[str] = (),
                   pretrained: bool = False) -> Callable[[Target], None]:
    """A test function parametrized with one case per component (ids like ``merge-slerp``);
    assign it to a ``test_...`` name of a test module. A skipped component is a skipped case."""
    checker = Checker(load_registry(list(plugin_files)), pretrained)
    chosen = checker.targets(list(names))

    @pytest.mark.parametrize("target", chosen, ids=[t.id for t in chosen])
    def test_contract(target: Target) -> None:
        result = checker.run(target)
        if result.status == "skip":
            pytest.skip(result.line())
        if result.status == "FAIL":
            pytest.fail(result.line(), pytrace=False)

    return test_contract


@pytest.fixture
def harness_check() -> Callable[..., list[Result]]:
    """``harness_check(*names, plugin_files=(), pretrained=False)``: runs the checks and fails
    the test with one line per failed component; returns the results."""

    def run(*names: str, plugin_files: Sequence[str] = (), pretrained: bool = False
            ) -> list[Result]:
        results = check(*names, plugin_files=plugin_files, pretrained=pretrained)
        failed = [r.line() for r in results if r.status == "FAIL"]
        if failed:
            pytest.fail("\n".join(failed), pytrace=False)
        return results

    return run
