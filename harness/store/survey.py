"""Which artifacts of a store were written before checksums: ``artifacts/checksums.json``.

A harness before checksums wrote embeddings without ``<key>.sha256`` and ``done.json`` without
checksums; those still read with the structural checks alone, as the README promises. Every
artifact written since has its checksum, so for any other artifact a missing checksum means the
checksum was lost (deleted, or the data swapped in without one): damage, not "unverified". The
list is made the first time a writable store of an older schema is opened by a harness that
keeps it, from the artifacts found without a checksum then; a new or schema-4 store gets an
empty list (a lost list is not rebuilt from what has lost its checksum since). A read-only
schema-3 store never surveyed reads every artifact without a checksum as before.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from harness.store.files import atomic_write_text, regular_file

NAME = "checksums.json"
_KEY = "before checksums"


def survey(root: Path, legacy: bool) -> None:
    """Write the list under ``root/artifacts`` unless it is there. ``legacy``: the store's
    database was written by a harness before the list (schema 3 or older), so artifacts
    without a checksum may be from before checksums; otherwise (a new database, or a schema-4
    store that lost its list) none is exempt: the list is empty and every artifact without
    its checksum is damage."""
    folder = root / "artifacts"
    path = folder / NAME
    if os.path.lexists(path):
        return
    before = []
    if legacy:
        before = [str(npy.relative_to(root)) for npy in (folder / "embeddings").glob("*.npy")
                  if regular_file(npy) and not os.path.lexists(npy.with_suffix(".sha256"))]
        for done in (folder / "checkpoints").glob("*/done.json"):
            with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
                if regular_file(done) and "sha256" not in json.loads(done.read_text("utf-8")):
                    before.append(str(done.relative_to(root)))
    atomic_write_text(path, json.dumps({_KEY: sorted(before)}, indent=1) + "\n")


def before_checksums(root: Path) -> set[str] | None:
    """The store-relative paths of the artifacts from before checksums; None for a store never
    surveyed (each artifact without a checksum is then read as before checksums); an empty set
    where the list is damaged (nothing is exempt: at worst an old artifact is recomputed)."""
    path = root / "artifacts" / NAME
    if not os.path.lexists(path):
        return None
    try:
        if not regular_file(path):  # a link or a pipe: nothing is exempt, nothing hangs
            return set()
        listed = json.loads(path.read_text(encoding="utf-8"))
        return {str(p) for p in listed[_KEY]}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError):
        return set()
