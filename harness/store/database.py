"""The results store: a SQLite database of runs, variants, scores and analyses beside the
content-addressed artifact folder (``harness.store.artifacts``).

    results.sqlite     runs, variants, scores, samples (per-row metric values or draws),
                       analyses, merge_stats, failures, eval_samples (``harness.store.schema``)
    artifacts/         checkpoints and embeddings

Each cell's scores (and per-row values) are committed in one transaction, so a cell is either
wholly stored or recomputed. SQLite runs in WAL mode with a busy timeout, so two runs on one
store do not corrupt it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.store import schema
from harness.store.artifacts import Artifacts
from harness.store.connect import (
    check_intact,
    check_readable_as_is,
    check_writable,
    open_read_only,
    open_writable,
)
from harness.store.digests import fill, with_digest
from harness.store.faults import database_fault
from harness.store.queries import Draws, Queries
from harness.store.records import EvalSampleRecord, ScoreRow, VariantRecord, Where


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _insert_eval_samples(db: sqlite3.Connection, records: list[EvalSampleRecord]) -> None:
    db.executemany("INSERT OR REPLACE INTO eval_samples (key, task, profile, eval_seed, run_id, "
                   "info, sequences, labels, digest) VALUES (?,?,?,?,?,?,?,?,?)",
                   [with_digest("eval_samples", (r.key, r.task, r.profile, r.eval_seed, r.run_id,
                                                 _json(r.info),
                                                 json.dumps([list(s) for s in r.sequences]),
                                                 json.dumps(r.labels)))
                    for r in records])




class NoRunYet(HarnessError):
    """A store to read holds no run: none was ever finished, or a run's first results were
    lost with its ``-wal`` file before they reached results.sqlite."""

    def __init__(self, root: Path | str):
        super().__init__(f"the store {root} holds no run yet; `harness run` first (a run whose "
                         "results.sqlite-wal was deleted before it ended kept nothing: run it "
                         "again, stored artifacts are reused)")


class Store(Artifacts, Queries):
    """The artifacts and the SQLite database of cells, runs and analyses."""

    def __init__(self, root: str | Path, read_only: bool = False, existing: bool = False):
        """Open (``read_only``: only read, for a store folder this user cannot write) or
        create the store at ``root``: checked by SQLite's ``quick_check``, upgraded from an
        older schema, its damaged rows dropped. ``existing``: a store to read, never created
        (a database with no tables is one line, ``NoRunYet``)."""
        Artifacts.__init__(self, root)
        self.read_only = read_only
        path = self.root / "results.sqlite"
        if not read_only:
            check_writable(self.root)
        if path.is_dir():
            raise HarnessError(f"store {self.root}: results.sqlite is a folder, not a database; "
                               "move it aside or pass another --store")
        if path.exists() and not path.is_file():
            raise HarnessError(f"store {self.root}: results.sqlite is not a regular file (a "
                               "pipe or a device); move it aside or pass another --store")
        #: damaged rows dropped when the store was opened, named for people
        self.dropped: list[str] = []
        found: str | None = None
        try:
            self.db = open_read_only(path) if read_only else open_writable(path)
            check_intact(self.db, self.root)
            if read_only:
                found = schema.stored_version(self.db)
                check_readable_as_is(self.db, found, self.root)
                if found == str(schema.VERSION):
                    self.strict()
            else:
                with self.transaction():
                    found = schema.stored_version(self.db)
                    if existing and found is None:
                        raise NoRunYet(self.root)
                    if schema.readable(found):
                        schema.create_or_upgrade(self.db, found)
                        self.dropped = schema.drop_damaged(self.db)
                if schema.readable(found):
                    self.survey(legacy=found is not None and found != str(schema.VERSION))
                    self.keep_merge_stats(upgraded=found is not None and found != str(
                        schema.VERSION))
        except sqlite3.Error as err:
            self._close_quietly()
            raise HarnessError(database_fault(err, self.root)) from None
        except (HarnessError, OSError):
            self._close_quietly()
            raise
        if not schema.readable(found):
            self.db.close()
            raise HarnessError(f"store {self.root} was written by an incompatible harness "
                               f"(schema {found}, this one reads {schema.VERSION}); "
                               "use another --store or delete it")

    @classmethod
    def open_existing(cls, root: str | Path) -> Store:
        """An existing store, to read (``harness leaderboard``, ``harness export``): opened
        read-only where its folder or database cannot be written."""
        path = Path(root) / "results.sqlite"
        try:
            found = path.exists()
        except OSError as err:
            raise HarnessError(f"cannot read the store {root} ({err.strerror}); check the "
                               "permissions of its folder, or pass another --store") from None
        if not found:
            raise HarnessError(f"no results store at {root}; run `harness run` first "
                               "or pass --store DIR")
        try:
            check_writable(Path(root))
            writable = path.is_dir() or os.access(path, os.W_OK)
        except HarnessError:
            writable = False
        return cls(root, read_only=not writable, existing=True)

    def _close_quietly(self) -> None:
        with contextlib.suppress(AttributeError, sqlite3.Error):
            self.db.close()

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if self.db.in_transaction:  # SQLite itself rolls back on some errors (a full disk)
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

    def put_variant(self, record: VariantRecord) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO variants (key, encoder, family, adapter, "
                       "train_task, seed, merge, grp, profile, info, roles, digest) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       with_digest("variants", (record.key, record.encoder, record.family,
                                                record.adapter, record.train_task, record.seed,
                                                record.merge, record.group, record.profile,
                                                _json(record.info), _json(record.roles))))

    def put_eval_samples(self, records: list[EvalSampleRecord]) -> None:
        """The eval samples a run draws, with their tasks' declared flags."""
        with self.transaction() as db:
            _insert_eval_samples(db, records)

    def put_audit(self, key: str, tasks: list[str], profile: str, eval_seed: int, run_id: int,
                  data: dict[str, Any]) -> None:
        """A run's task audit (``harness.audit``), keyed by its tasks' identities and seed."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO audits (key, tasks, profile, eval_seed, run_id, "
                       "data, digest) VALUES (?,?,?,?,?,?,?)",
                       with_digest("audits", (key, json.dumps(sorted(tasks)), profile,
                                              eval_seed, run_id, _json(data))))

    def put_analyses(self, variant: str, pool: str, tasks: list[str], profile: str,
                     eval_seed: int, run_id: int,
                     rows: list[tuple[str, str, float, float, float]]) -> None:
        """(kind, name, value, low, high) rows of one variant on one pool, in one transaction."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO analyses (variant, pool, tasks, profile, "
                           "eval_seed, run_id, kind, name, value, lo, hi, digest) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           [with_digest("analyses", (variant, pool, json.dumps(tasks), profile,
                                                     eval_seed, run_id, *row)) for row in rows])

    def put_merge_stats(self, variant: str, stats: dict[str, float]) -> None:
        """Figures a merge reported about itself (e.g. SLERP's linear-fallback fraction);
        nothing is written where the same figures are stored already."""
        text = json.dumps(stats, sort_keys=True)
        row = with_digest("merge_stats", (variant, text))
        if self.db.execute("SELECT 1 FROM merge_stats WHERE variant=? AND stats=? AND digest=?",
                           row).fetchone() is not None:
            return
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO merge_stats (variant, stats, digest) "
                       "VALUES (?, ?, ?)", row)

    def put_scores(self, cell: str, variant: str, task: str, where: Where,
                   scores: list[ScoreRow], samples: dict[str, np.ndarray] | None = None
                   ) -> None:
        """``scores``: one row per metric, stored in one transaction with ``samples`` (metric
        key -> per-row values of metrics that decompose, or ``Draws`` of metrics recomputed on
        the bootstrap resamples); ``where``: (profile, eval seed, run id). A stored score
        clears the cell's failure."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO scores (cell, metric_key, variant, task, "
                           "metric, value, note, profile, eval_seed, run_id, higher_is_better, "
                           "digest) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           [with_digest("scores", (cell, mk, variant, task, label, value, note,
                                                   *where, int(higher)))
                            for mk, label, value, note, higher in scores])
            db.executemany("INSERT OR REPLACE INTO samples (cell, metric_key, n, data, kind, "
                           "digest) VALUES (?,?,?,?,?,?)",
                           [with_digest("samples", (cell, mk, len(v),
                                                    np.asarray(v, dtype="<f4").tobytes(),
                                                    "draws" if isinstance(v, Draws) else "rows"))
                            for mk, v in (samples or {}).items()])
            db.execute("DELETE FROM failures WHERE cell=?", (cell,))

    def put_failure(self, cell: str, variant: str, task: str, error: str,
                    where: Where) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO failures (cell, variant, task, error, profile, "
                       "eval_seed, run_id) VALUES (?,?,?,?,?,?,?)",
                       (cell, variant, task, error, *where))

    # ------------------------------------------------------------------- store upkeep

    def backfill_pending(self) -> bool:
        """Whether this store was upgraded from an older schema and still lacks the facts only
        the installed plugins can tell (``harness.backfill``)."""
        return self.db.execute("SELECT 1 FROM meta WHERE key='backfill'").fetchone() is not None

    def backfill(self, roles: dict[str, dict[str, Any]], directions: dict[str, bool],
                 samples: list[EvalSampleRecord], done: bool) -> None:
        """Fill variants' roles (variant key -> roles), scores' directions (metric label ->
        higher is better) and eval samples in one transaction; ``done``: nothing is left."""
        with self.transaction() as db:
            db.executemany("UPDATE variants SET roles=?, digest=NULL WHERE key=?",
                           [(_json(r), key) for key, r in roles.items()])
            fill(db, "variants")
            db.executemany("UPDATE scores SET higher_is_better=?, digest=NULL WHERE metric=? "
                           "AND higher_is_better IS NULL",
                           [(int(h), metric) for metric, h in directions.items()])
            fill(db, "scores")  # the rows just completed: checksummed as they now stand
            _insert_eval_samples(db, samples)
            if done:
                db.execute("DELETE FROM meta WHERE key='backfill'")

    def keep_merge_stats(self, upgraded: bool = False) -> None:
        """Write the artifact of each stored merge statistics row that has none, so that its
        variants stay reused; ``upgraded`` (a store from before the artifacts were kept, opened
        for the first time by this harness): also mark each merged variant without a row as a
        merge that reported nothing, as the store stood."""
        stats: dict[str, dict[str, float] | None] = dict(self.merge_stats())
        if upgraded:
            for key, record in self.variants().items():
                if record.info.get("merge") and record.info.get("adapter"):
                    stats.setdefault(key, None)
        for variant, found in stats.items():
            if not os.path.lexists(self.merge_stats_path(variant)):
                self.save_merge_stats(variant, found)

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Raw SQL, for tests and ad-hoc inspection only: the harness itself reads through the
        named methods of ``Queries``."""
        self.db.row_factory = sqlite3.Row
        try:
            return list(self.db.execute(sql, args))
        finally:
            self.db.row_factory = None
