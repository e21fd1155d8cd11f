"""What a run records about where it ran: the git commit and the versions of the packages that
shape its numbers."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("numgeo-harness", "torch", "numpy", "scikit-learn", "safetensors", "pluggy",
            "transformers", "peft", "sentence-transformers", "matplotlib")


def provenance() -> tuple[str, dict[str, str]]:
    """(git commit or "unknown", package -> version of those installed)."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit or "unknown", packages
