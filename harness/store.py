"""The results store: SQLite for cells, a content-addressed folder for artifacts.

Layout under the store directory (default ``./.harness``)::

    results.sqlite                         runs, variants, scores, samples, analyses,
                                           merge_stats, failures
    artifacts/checkpoints/<key>/stage-N.safetensors + done.json   (done.json written last)
    artifacts/embeddings/<key>.npy

Every file is written to a temporary name in the same folder and renamed into place, so a
killed run leaves either the whole file or nothing. An artifact that fails to load is deleted and
recomputed, never used. No pickle: safetensors for weights, ``.npy`` read with
``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.api import HarnessError

if TYPE_CHECKING:
    import torch

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT, finished TEXT, argv TEXT,
    profile TEXT, seeds TEXT, git_commit TEXT, packages TEXT);
CREATE TABLE IF NOT EXISTS variants (
    key TEXT PRIMARY KEY, encoder TEXT, family TEXT, adapter TEXT, train_task TEXT,
    seed INTEGER, merge TEXT, grp TEXT, profile TEXT, info TEXT);
CREATE TABLE IF NOT EXISTS scores (
    cell TEXT, metric_key TEXT, variant TEXT, task TEXT, metric TEXT, value REAL, note TEXT,
    profile TEXT, eval_seed INTEGER, run_id INTEGER, PRIMARY KEY (cell, metric_key));
CREATE TABLE IF NOT EXISTS samples (
    cell TEXT, metric_key TEXT, n INTEGER, data BLOB, PRIMARY KEY (cell, metric_key));
CREATE TABLE IF NOT EXISTS analyses (
    variant TEXT, pool TEXT, tasks TEXT, profile TEXT, eval_seed INTEGER, run_id INTEGER,
    kind TEXT, name TEXT, value REAL, lo REAL, hi REAL,
    PRIMARY KEY (variant, pool, kind, name));
CREATE TABLE IF NOT EXISTS merge_stats (variant TEXT PRIMARY KEY, stats TEXT);
CREATE TABLE IF NOT EXISTS failures (
    cell TEXT PRIMARY KEY, variant TEXT, task TEXT, error TEXT, profile TEXT,
    eval_seed INTEGER, run_id INTEGER);
"""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class Artifacts:
    """The content-addressed files of a store (embeddings, checkpoints), no database: what a
    worker on another machine writes to a shared store directory."""

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
            atomic_write(folder / name, lambda tmp, t=tensors: save_file(t, str(tmp)))
            entries.append({"stage": ck["stage"], "seed": ck["seed"], "file": name,
                            "tensors": sorted(tensors)})
        atomic_write_text(folder / "done.json", json.dumps({"checkpoints": entries}, indent=1))


class Store(Artifacts):
    """The artifacts and the SQLite database of cells, runs and analyses."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise HarnessError(f"store {self.root} is not writable ({err.strerror}); "
                               "pass --store DIR with a writable folder") from None
        self.db = sqlite3.connect(self.root / "results.sqlite", timeout=60,
                                  isolation_level=None)
        self.dropped = 0
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA busy_timeout=60000")
            with self.transaction():
                for statement in SCHEMA.strip().split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    self.db.execute("INSERT INTO meta VALUES ('schema', ?)",
                                    (str(SCHEMA_VERSION),))
                elif row[0] == str(SCHEMA_VERSION):
                    self.dropped = self._drop_damaged_rows()
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise HarnessError(f"store {self.root}: results.sqlite is damaged ({err}); move it "
                               "aside and re-run (stored artifacts are reused), or pass "
                               "another --store") from None
        if row is not None and row[0] != str(SCHEMA_VERSION):
            self.db.close()
            raise HarnessError(f"store {self.root} was written by an incompatible harness "
                               f"(schema {row[0]}, this one reads {SCHEMA_VERSION}); "
                               "use another --store or delete it")

    #: rows that cannot have been written by this harness: never read, deleted, recomputed
    DAMAGED = {
        "scores": "typeof(value) NOT IN ('real', 'integer', 'null') OR typeof(note) "
                  "NOT IN ('text', 'null') OR typeof(cell) != 'text' OR (cell, metric_key) IN "
                  "(SELECT cell, metric_key FROM samples WHERE typeof(data) != 'blob' OR "
                  "typeof(n) != 'integer' OR length(data) != 4 * n)",
        "samples": "typeof(data) != 'blob' OR typeof(n) != 'integer' OR length(data) != 4 * n "
                   "OR (cell, metric_key) NOT IN (SELECT cell, metric_key FROM scores)",
        "analyses": "(variant, pool) IN (SELECT variant, pool FROM analyses WHERE "
                    "typeof(value) NOT IN ('real', 'integer', 'null') OR typeof(lo) NOT IN "
                    "('real', 'integer', 'null') OR typeof(hi) NOT IN ('real', 'integer', "
                    "'null'))",
    }

    def _drop_damaged_rows(self) -> int:
        """Delete damaged rows (a score that is not a number, a per-row blob of the wrong
        length with its score, a variant's analyses with a damaged value) so that what they
        stood for is recomputed; returns how many were dropped."""
        dropped = 0
        for table, where in self.DAMAGED.items():  # scores first: samples follow their score
            dropped += self.db.execute(f"DELETE FROM {table} WHERE {where}").rowcount
        return dropped

    @classmethod
    def open_existing(cls, root: str | Path) -> Store:
        if not (Path(root) / "results.sqlite").is_file():
            raise HarnessError(f"no results store at {root}; run `harness run` first "
                               "or pass --store DIR")
        return cls(root)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---------------------------------------------------------------------------- records

    def start_run(self, argv: list[str], profile: str, seeds: list[int], commit: str,
                  packages: dict[str, str], started: str) -> int:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO runs (started, argv, profile, seeds, git_commit, "
                             "packages) VALUES (?, ?, ?, ?, ?, ?)",
                             (started, json.dumps(argv), profile, json.dumps(seeds), commit,
                              json.dumps(packages, sort_keys=True)))
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, finished: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished=? WHERE id=?", (finished, run_id))

    def put_variant(self, key: str, row: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO variants VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (key, row["encoder"], row["family"], row["adapter"], row["train_task"],
                        row["seed"], row["merge"], row["group"], row["profile"],
                        json.dumps(row.get("info", {}), sort_keys=True, default=str)))

    def samples(self, cells: set[str] | None = None) -> dict[tuple[str, str], np.ndarray]:
        """(cell, metric_key) -> per-row values, for the given cells (default all)."""
        out = {}
        for cell, mk, n, data in self.db.execute("SELECT cell, metric_key, n, data FROM samples"):
            if cells is not None and cell not in cells:
                continue
            values = np.frombuffer(data, dtype="<f4")
            if len(values) == n:  # a short blob is never used
                out[(cell, mk)] = values.astype(np.float64)
        return out

    def analysed(self, pool: str) -> set[str]:
        """Variants with analyses stored for this evaluation pool."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT variant FROM analyses WHERE "
                                              "pool=?", (pool,))}

    def put_analyses(self, variant: str, pool: str, tasks: list[str], profile: str,
                     eval_seed: int, run_id: int,
                     rows: list[tuple[str, str, float, float, float]]) -> None:
        """(kind, name, value, low, high) rows of one variant on one pool, in one transaction."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO analyses VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                           [(variant, pool, json.dumps(tasks), profile, eval_seed, run_id,
                             *row) for row in rows])

    def put_merge_stats(self, variant: str, stats: dict[str, float]) -> None:
        """Figures a merge reported about itself (e.g. SLERP's linear-fallback fraction)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO merge_stats VALUES (?, ?)",
                       (variant, json.dumps(stats, sort_keys=True)))

    def merge_stats(self) -> dict[str, dict[str, float]]:
        out = {}
        for variant, text in self.db.execute("SELECT variant, stats FROM merge_stats"):
            # a damaged row is never used
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                stats = json.loads(text)
                out[variant] = {str(k): float(v) for k, v in stats.items()}
        return out

    def stored_metrics(self, cell: str) -> set[str]:
        """The metric keys already scored for ``cell``."""
        return {r[0] for r in self.db.execute("SELECT metric_key FROM scores WHERE cell=?",
                                              (cell,))}

    def put_scores(self, cell: str, variant: str, task: str, where: tuple[str, int, int],
                   scores: list[tuple[str, str, float, str]],
                   samples: dict[str, np.ndarray] | None = None) -> None:
        """``scores``: (metric_key, metric_label, value, note) rows, stored in one transaction
        with ``samples`` (metric_key -> per-row values of metrics that decompose);
        ``where``: (profile, eval seed, run id)."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?,?,?,?)",
                           [(cell, mk, variant, task, label, value, note, *where)
                            for mk, label, value, note in scores])
            db.executemany("INSERT OR REPLACE INTO samples VALUES (?,?,?,?)",
                           [(cell, mk, len(v), np.asarray(v, dtype="<f4").tobytes())
                            for mk, v in (samples or {}).items()])
            db.execute("DELETE FROM failures WHERE cell=?", (cell,))

    def put_failure(self, cell: str, variant: str, task: str, error: str,
                    where: tuple[str, int, int]) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?,?,?)",
                       (cell, variant, task, error, *where))

    # ---------------------------------------------------------------------------- queries

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        self.db.row_factory = sqlite3.Row
        try:
            return list(self.db.execute(sql, args))
        finally:
            self.db.row_factory = None
