"""The content-addressed files of a store, no database: embeddings (``.npy``) and training
checkpoints (safetensors + ``done.json``), what a worker on another machine writes to a shared
store directory.

    artifacts/checkpoints/<key>/stage-N-seed-S.safetensors + done.json   (done.json written last)
    artifacts/embeddings/<key>.npy

An artifact that fails to load is deleted and recomputed, never used. No pickle: safetensors
for weights, ``.npy`` read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.store.files import atomic_write, atomic_write_text

if TYPE_CHECKING:
    import torch


class Artifacts:
    """The artifact folder of a store."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

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

    def load_embeddings(self, key: str, rows: int) -> np.ndarray | None:
        path = self.embeddings_path(key)
        if not path.is_file():
            return None
        try:
            X = np.load(path, allow_pickle=False)
            if not isinstance(X, np.ndarray):  # e.g. a zip (.npz) at this path
                close = getattr(X, "close", None)
                if close:
                    close()
                raise ValueError("not a .npy array")
            if X.ndim != 2 or X.shape[0] != rows or X.shape[1] < 1 or X.dtype != np.float32:
                raise ValueError(f"shape {X.shape} dtype {X.dtype}")
            return np.asarray(X)
        except Exception:  # corrupt in any way: recompute, never use
            path.unlink(missing_ok=True)
            return None

    def save_embeddings(self, key: str, X: np.ndarray) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(X, dtype=np.float32), allow_pickle=False)
        atomic_write(self.embeddings_path(key), write)

    def link_embeddings(self, key: str, to: str, X: np.ndarray) -> None:
        """Store ``X``, already stored under ``to``, under ``key`` too: a hard link where the
        file system allows one (no second copy), else a copy."""
        path, source = self.embeddings_path(key), self.embeddings_path(to)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.link.tmp")  # any host
        try:
            tmp.unlink(missing_ok=True)
            os.link(source, tmp)
            os.replace(tmp, path)
        except OSError:
            self.save_embeddings(key, X)
        finally:  # rename(2) leaves both names when they are links to one file already
            tmp.unlink(missing_ok=True)

    def checkpoints_dir(self, key: str) -> Path:
        return self.root / "artifacts" / "checkpoints" / key

    def load_checkpoints(self, key: str) -> list[dict[str, Any]] | None:
        """The stored checkpoints of a training job, or None if absent or unreadable."""
        from safetensors.torch import load_file

        folder = self.checkpoints_dir(key)
        done = folder / "done.json"
        if not done.is_file():
            return None
        try:
            manifest = json.loads(done.read_text())
            out = []
            for entry in manifest["checkpoints"]:
                tensors = load_file(folder / entry["file"])
                if sorted(tensors) != sorted(entry["tensors"]):
                    raise ValueError("tensor names differ from the manifest")
                out.append({"stage": entry["stage"], "seed": entry["seed"], "tensors": tensors})
            return out
        except Exception:  # truncated or corrupt: recompute, never use
            done.unlink(missing_ok=True)
            return None

    def save_checkpoints(self, key: str, checkpoints: list[dict[str, Any]]) -> None:
        from safetensors.torch import save_file

        folder = self.checkpoints_dir(key)
        entries = []
        for ck in checkpoints:
            name = f"stage-{ck['stage']}-seed-{ck['seed']}.safetensors"
            # clone: tied weights share memory, which safetensors refuses to save
            tensors: dict[str, torch.Tensor] = {k: v.detach().cpu().clone().contiguous()
                                                for k, v in ck["tensors"].items()}
            def write(tmp: Path, t: dict[str, torch.Tensor] = tensors) -> None:
                save_file(t, str(tmp))

            atomic_write(folder / name, write)
            entries.append({"stage": ck["stage"], "seed": ck["seed"], "file": name,
                            "tensors": sorted(tensors)})
        atomic_write_text(folder / "done.json", json.dumps({"checkpoints": entries}, indent=1))
