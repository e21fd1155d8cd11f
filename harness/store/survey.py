"""Which artifacts of a store were written before checksums: ``artifacts/checksums.json``.

A harness before checksums wrote embeddings without ``<key>.sha256`` and ``done.json`` without
checksums; those still read with the structural checks alone, as the README promises. Every
artifact written since has its checksum, so for any other artifact a missing checksum means the
checksum was lost (deleted, or the data swapped in without one): damage, not "unverified". The
list is made the first time a writable store is opened by a harness that keeps it, from the
artifacts found without a checksum then; a store never surveyed (read-only, from an older
harness) reads every artifact without a checksum as before.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from harness.store.files import atomic_write_text

NAME = "checksums.json"
_KEY = "before checksums"


def survey(root: Path) -> None:
    """Write the list under ``root/artifacts`` unless it is there."""
    folder = root / "artifacts"
    path = folder / NAME
    if path.exists():
        return
    before = [str(npy.relative_to(root)) for npy in (folder / "embeddings").glob("*.npy")
              if not npy.with_suffix(".sha256").exists()]
    for done in (folder / "checkpoints").glob("*/done.json"):
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
            if "sha256" not in json.loads(done.read_text(encoding="utf-8")):
                before.append(str(done.relative_to(root)))
    atomic_write_text(path, json.dumps({_KEY: sorted(before)}, indent=1) + "\n")


def before_checksums(root: Path) -> set[str] | None:
    """The store-relative paths of the artifacts from before checksums; None for a store never
    surveyed (each artifact without a checksum is then read as before checksums); an empty set
    where the list is damaged (nothing is exempt: at worst an old artifact is recomputed)."""
    try:
        listed = json.loads((root / "artifacts" / NAME).read_text(encoding="utf-8"))
        return {str(p) for p in listed[_KEY]}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError):
        return set()
