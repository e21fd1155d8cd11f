from __future__ import annotations

import pytest

from harness.registry import Registry, load_registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()
