"""The content-addressed files of a store, no database: embeddings (``.npy``) and training
checkpoints (safetensors + ``done.json``), what a worker on another machine writes to a shared
store directory.

    artifacts/checkpoints/<key>/stage-N-seed-S.safetensors + done.json   (done.json written last)
    artifacts/embeddings/<key>.npy + <key>.sha256                        (.sha256 written last)

    artifacts/merges/<key>.json             a merged variant's statistics, with their checksum
    artifacts/checksums.json                 which artifacts are from before checksums

Every artifact is checksummed: ``done.json`` holds the SHA-256 of each stage file and of its own
list of them, ``<key>.sha256`` that of the ``.npy`` beside it; both are written after the data
they vouch for and verified on every read. An artifact that fails to load or to verify counts
as missing: it is deleted, recomputed when it is needed and listed in ``damaged``, so a run can
say so. A missing checksum is damage too, except for the artifacts that ``checksums.json`` lists
as written by a harness before checksums (``survey``, the first time a writable store is opened
by a harness that keeps that list): those still pass the structural checks alone, as they did
then, and are counted in ``unverified``, which a run reports. Only regular files inside the
store are read: a link, a pipe or a name from ``done.json`` that leads elsewhere is damage. No
pickle: safetensors for weights, ``.npy`` read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.store import survey
from harness.store.files import (
    atomic_write_bytes,
    atomic_write_text,
    inside_store,
    regular_file,
)

if TYPE_CHECKING:
    import torch

#: a stage file's name in ``done.json``: a plain name in its own folder, nothing else
_STAGE_FILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.safetensors")


class Artifacts:
    """The artifact folder of a store."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        #: opened only to read (a store folder this user cannot write): nothing is deleted
        self.read_only = False
        #: store-relative paths of the artifacts found damaged (failed to load or to verify)
        #: and deleted since this store was opened
        self.damaged: list[str] = []
        #: artifacts read without a checksum (written by a harness before checksums)
        self.unverified = 0
        self._before: set[str] | None = None  # ``checksums.json``'s list, once read
        self._surveyed = False

    def _drop(self, path: Path, checksum: Path | None) -> None:
        """Delete a damaged artifact (unless the store is read-only) and list it."""
        for p in (path, checksum):  # never a file outside the store
            if p is not None and not self.read_only and inside_store(p):
                with contextlib.suppress(OSError):
                    p.unlink(missing_ok=True)
        try:
            where = str(path.relative_to(self.root))
        except ValueError:
            where = str(path)
        if where not in self.damaged:
            self.damaged.append(where)

    def survey(self, legacy: bool) -> None:
        """List this store's artifacts from before checksums, once (``harness.store.survey``;
        ``legacy``: the database is of an older schema)."""
        survey.survey(self.root, legacy)

    def strict(self) -> None:
        """No artifact is exempt from its checksum, list or not (a read-only schema-4 store)."""
        if survey.before_checksums(self.root) is None:
            self._surveyed, self._before = True, set()

    def _legacy(self, path: Path) -> bool:
        """Whether an artifact without a checksum is one from before checksums (read with the
        structural checks alone) rather than damaged."""
        if not self._surveyed:
            self._surveyed, self._before = True, survey.before_checksums(self.root)
        if self._before is None:
            return True
        try:
            return str(path.relative_to(self.root)) in self._before
        except ValueError:
            return False

    def sweep_temporary(self, older_than_s: float = 3600.0) -> int:
        """Delete temporary files a killed run left behind (old enough not to be in use)."""
        cutoff = time.time() - older_than_s
        removed = 0
        for tmp in (self.root / "artifacts").rglob(".*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
        return removed

    def embeddings_path(self, key: str) -> Path:
        return self.root / "artifacts" / "embeddings" / f"{key}.npy"

    @staticmethod
    def checksum_path(path: Path) -> Path:
        return path.with_suffix(".sha256")

    def load_embeddings(self, key: str, rows: int) -> np.ndarray | None:
        """The stored embeddings under ``key`` (``rows`` float32 rows), or None if absent or
        damaged (then deleted, with every hard link that shares the file)."""
        path = self.embeddings_path(key)
        if not os.path.lexists(path):
            return None
        checksum = self.checksum_path(path)
        want: str | None = None
        if not regular_file(path) or (os.path.lexists(checksum) and not regular_file(checksum)):
            self._drop(path, checksum)
            return None
        try:
            want = checksum.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            if not self._legacy(path):  # its checksum was lost: damaged, not unverified
                self._drop(path, checksum)
                return None
            self.unverified += 1  # written before checksums: structural checks only
        except (OSError, UnicodeDecodeError):
            self._drop(path, checksum)
            return None
        try:
            data = path.read_bytes()
            if want is not None and hashlib.sha256(data).hexdigest() != want:
                raise ValueError("checksum mismatch")
            X = np.load(io.BytesIO(data), allow_pickle=False)
            if not isinstance(X, np.ndarray):  # e.g. a zip (.npz) at this path
                raise ValueError("not a .npy array")
            if X.ndim != 2 or X.shape[0] != rows or X.shape[1] < 1 or X.dtype != np.float32:
                raise ValueError(f"shape {X.shape} dtype {X.dtype}")
            return np.asarray(X)
        except Exception:  # corrupt in any way: recompute, never use
            for linked in self._links(path):
                self._drop(linked, self.checksum_path(linked))
            self._drop(path, checksum)
            return None

    def _links(self, path: Path) -> list[Path]:
        """The other names of ``path``'s file (hard links made by ``link_embeddings``)."""
        try:
            if path.stat().st_nlink < 2:
                return []
            return [p for p in path.parent.glob("*.npy") if p != path and p.samefile(path)]
        except OSError:
            return []

    def save_embeddings(self, key: str, X: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(X, dtype=np.float32), allow_pickle=False)
        data = buffer.getvalue()
        path = self.embeddings_path(key)
        atomic_write_bytes(path, data)
        atomic_write_text(self.checksum_path(path), hashlib.sha256(data).hexdigest() + "\n")

    def link_embeddings(self, key: str, to: str, X: np.ndarray) -> None:
        """Store ``X``, already stored (and verified) under ``to``, under ``key`` too: a hard
        link where the file system allows one (no second copy), else a copy."""
        path, source = self.embeddings_path(key), self.embeddings_path(to)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.link.tmp")  # any host
        try:
            digest = self.checksum_path(source).read_text(encoding="ascii")
            tmp.unlink(missing_ok=True)
            os.link(source, tmp)
            os.replace(tmp, path)
            atomic_write_text(self.checksum_path(path), digest)
        except (OSError, UnicodeDecodeError):
            self.save_embeddings(key, X)
        finally:  # rename(2) leaves both names when they are links to one file already
            tmp.unlink(missing_ok=True)

    def checkpoints_dir(self, key: str) -> Path:
        return self.root / "artifacts" / "checkpoints" / key

    def load_checkpoints(self, key: str) -> list[dict[str, Any]] | None:
        """The stored checkpoints of a training job, or None if absent or damaged (then its
        ``done.json`` is deleted: the job is retrained when it is needed)."""
        from safetensors.torch import load as load_bytes

        folder = self.checkpoints_dir(key)
        done = folder / "done.json"
        if not os.path.lexists(done):
            return None
        try:
            if not regular_file(done):
                raise ValueError("done.json is not a regular file")
            manifest = json.loads(done.read_text(encoding="utf-8"))
            entries = manifest["checkpoints"]
            legacy = "sha256" not in manifest  # written before checksums: structural checks
            if legacy and not self._legacy(done):
                raise ValueError("the manifest's checksum is missing")
            if legacy:
                self.unverified += 1
            elif manifest["sha256"] != _manifest_digest(entries):
                raise ValueError("the manifest's checksum does not match")
            if not entries:  # the harness never stores a run without checkpoints
                raise ValueError("no checkpoints listed")
            out = []
            for entry in entries:
                name = entry["file"]
                if not isinstance(name, str) or not _STAGE_FILE.fullmatch(name) or \
                        not regular_file(folder / name):  # only the folder's own regular files
                    raise ValueError(f"{name!r} is not a stage file of this folder")
                data = (folder / name).read_bytes()
                if not legacy and hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise ValueError(f"{entry['file']}: checksum mismatch")
                tensors = load_bytes(data)
                if sorted(tensors) != sorted(entry["tensors"]):
                    raise ValueError("tensor names differ from the manifest")
                out.append({"stage": entry["stage"], "seed": entry["seed"], "tensors": tensors})
            return out
        except Exception:  # truncated or corrupt: recompute, never use
            self._drop(done, None)
            return None

    def save_checkpoints(self, key: str, checkpoints: list[dict[str, Any]]) -> None:
        from safetensors.torch import save

        if not checkpoints:
            raise ValueError("no checkpoints to store")
        folder = self.checkpoints_dir(key)
        entries = []
        for ck in checkpoints:
            name = f"stage-{ck['stage']}-seed-{ck['seed']}.safetensors"
            # clone: tied weights share memory, which safetensors refuses to save
            tensors: dict[str, torch.Tensor] = {k: v.detach().cpu().clone().contiguous()
                                                for k, v in ck["tensors"].items()}
            data = save(tensors)
            del tensors
            atomic_write_bytes(folder / name, data)
            entries.append({"stage": ck["stage"], "seed": ck["seed"], "file": name,
                            "tensors": sorted(ck["tensors"]),
                            "sha256": hashlib.sha256(data).hexdigest()})
            del data
        manifest = {"checkpoints": entries, "sha256": _manifest_digest(entries)}
        atomic_write_text(folder / "done.json", json.dumps(manifest, indent=1))


    def merge_stats_path(self, key: str) -> Path:
        return self.root / "artifacts" / "merges" / f"{key}.json"

    def save_merge_stats(self, key: str, stats: dict[str, float] | None) -> None:
        """What a merged variant's merge reported about itself (None: a merge that returned
        plain tensors), beside its embeddings: a variant is reused only while this is known,
        so a lost database row is restored from here, never lost for good."""
        record = {"stats": stats, "sha256": _manifest_digest(stats)}
        atomic_write_text(self.merge_stats_path(key), json.dumps(record, sort_keys=True) + "\n")

    def load_merge_stats(self, key: str) -> tuple[dict[str, float] | None] | None:
        """``(stats,)`` as ``save_merge_stats`` stored them, or None if absent or damaged
        (then deleted: the merge runs again)."""
        path = self.merge_stats_path(key)
        if not os.path.lexists(path):
            return None
        try:
            if not regular_file(path):
                raise ValueError("not a regular file")
            record = json.loads(path.read_text(encoding="utf-8"))
            if record["sha256"] != _manifest_digest(record["stats"]):
                raise ValueError("checksum mismatch")
            found = record["stats"]
            return (None if found is None else {str(k): float(v) for k, v in found.items()},)
        except Exception:  # damaged in any way: merge again, never use
            self._drop(path, None)
            return None


def _manifest_digest(entries: Any) -> str:
    """The SHA-256 of a ``done.json``'s list of checkpoints (its own checksum)."""
    text = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
