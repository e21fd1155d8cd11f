"""The suite runs on the built-in plugins alone: a third-party plugin installed in the same
environment must not change a pinned cell count or leaderboard byte. HARNESS_ONLY_DISTRIBUTIONS
is set for the whole session (subprocesses and module-level registries included) and a user's
HARNESS_DISABLE_PLUGINS is dropped; a test marked ``installed_plugins`` sees every installed
distribution."""

from __future__ import annotations

import os

import pytest

from harness.discovery import BUILT_IN
from harness.registry import Registry, load_registry


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "installed_plugins: sees every installed plugin, not "
                            "only the built-in distribution's")
    os.environ["HARNESS_ONLY_DISTRIBUTIONS"] = BUILT_IN
    os.environ.pop("HARNESS_DISABLE_PLUGINS", None)


@pytest.fixture(autouse=True)
def _builtins_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_ONLY_DISTRIBUTIONS", BUILT_IN)  # whatever a test left behind
    if request.node.get_closest_marker("installed_plugins"):
        monkeypatch.delenv("HARNESS_ONLY_DISTRIBUTIONS")


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()
