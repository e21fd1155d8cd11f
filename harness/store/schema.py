"""The tables of ``results.sqlite`` and the upgrade of older stores.

Schema 2 (this harness) adds to schema 1: what each variant's components declared about
themselves (``variants.roles``), each score's direction (``scores.higher_is_better``) and each
task's evaluation sample with its declared flags (``eval_samples``), so that the leaderboard
renders from the store alone. A schema-1 store is upgraded in place when it is opened: the
columns and the table are added (nothing is recomputed) and the store is marked for a one-time
backfill of those facts from the installed plugins (``harness.backfill``).

Schema 3 adds each run's task audit (``audits``: nuisance AUCs and label dependence of the
tasks it evaluated, ``harness.audit``) and what a stored ``samples`` blob holds
(``samples.kind``: NULL or 'rows' for per-row values, 'draws' for a metric recomputed on each
bootstrap resample). A schema-2 store gains both when it is opened; its old blobs are per-row.

Schema 4 adds a checksum to every row a figure comes from (``digest`` in ``scores``,
``samples``, ``analyses``, ``merge_stats``, ``variants``, ``eval_samples`` and ``audits``;
``harness.store.digests``), verified each time the
store is opened: a row that fails is dropped and named, and recomputed by the next run. A
schema-3 store gains the column when it is opened, its rows checksummed as they stand.
"""

from __future__ import annotations

import sqlite3

from harness.store import digests

VERSION = 4
#: schemas a read-only store can be read in as they are (schema 3 lacks only the checksums)
AS_IS = {"3", str(VERSION)}

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT, finished TEXT, argv TEXT,
    profile TEXT, seeds TEXT, git_commit TEXT, packages TEXT);
CREATE TABLE IF NOT EXISTS variants (
    key TEXT PRIMARY KEY, encoder TEXT, family TEXT, adapter TEXT, train_task TEXT,
    seed INTEGER, merge TEXT, grp TEXT, profile TEXT, info TEXT, roles TEXT, digest TEXT);
CREATE TABLE IF NOT EXISTS scores (
    cell TEXT, metric_key TEXT, variant TEXT, task TEXT, metric TEXT, value REAL, note TEXT,
    profile TEXT, eval_seed INTEGER, run_id INTEGER, higher_is_better INTEGER, digest TEXT,
    PRIMARY KEY (cell, metric_key));
CREATE TABLE IF NOT EXISTS samples (
    cell TEXT, metric_key TEXT, n INTEGER, data BLOB, kind TEXT, digest TEXT,
    PRIMARY KEY (cell, metric_key));
CREATE TABLE IF NOT EXISTS analyses (
    variant TEXT, pool TEXT, tasks TEXT, profile TEXT, eval_seed INTEGER, run_id INTEGER,
    kind TEXT, name TEXT, value REAL, lo REAL, hi REAL, digest TEXT,
    PRIMARY KEY (variant, pool, kind, name));
CREATE TABLE IF NOT EXISTS merge_stats (variant TEXT PRIMARY KEY, stats TEXT, digest TEXT);
CREATE TABLE IF NOT EXISTS failures (
    cell TEXT PRIMARY KEY, variant TEXT, task TEXT, error TEXT, profile TEXT,
    eval_seed INTEGER, run_id INTEGER);
CREATE TABLE IF NOT EXISTS eval_samples (
    key TEXT PRIMARY KEY, task TEXT, profile TEXT, eval_seed INTEGER, run_id INTEGER,
    info TEXT, sequences TEXT, labels TEXT, digest TEXT);
CREATE TABLE IF NOT EXISTS audits (
    key TEXT PRIMARY KEY, tasks TEXT, profile TEXT, eval_seed INTEGER, run_id INTEGER,
    data TEXT, digest TEXT);
"""

#: from schema N to N + 1 (appended columns keep the layout of a fresh store)
UPGRADES = {
    1: ["ALTER TABLE variants ADD COLUMN roles TEXT",
        "ALTER TABLE scores ADD COLUMN higher_is_better INTEGER",
        "INSERT OR REPLACE INTO meta VALUES ('backfill', 'pending')"],
    2: ["ALTER TABLE samples ADD COLUMN kind TEXT"],  # the audits table: CREATE IF NOT EXISTS
    3: [],  # the digest columns (``_add_digests``): a table created by this upgrade has one
}

#: a per-row blob that is not what ``put_scores`` writes
_BLOB = "typeof(data) != 'blob' OR typeof(n) != 'integer' OR length(data) != 4 * n"
#: rows that cannot have been written by this harness: never read, deleted, recomputed
DAMAGED = {
    "scores": "typeof(value) NOT IN ('real', 'integer', 'null') OR typeof(note) "
              "NOT IN ('text', 'null') OR typeof(cell) != 'text' OR typeof(higher_is_better) "
              "NOT IN ('integer', 'null') OR (cell, metric_key) IN "
              f"(SELECT cell, metric_key FROM samples WHERE {_BLOB})",
    "samples": f"{_BLOB} OR (cell, metric_key) NOT IN (SELECT cell, metric_key FROM scores)",
    "analyses": "(variant, pool) IN (SELECT variant, pool FROM analyses WHERE "
                "typeof(value) NOT IN ('real', 'integer', 'null') OR typeof(lo) NOT IN "
                "('real', 'integer', 'null') OR typeof(hi) NOT IN ('real', 'integer', "
                "'null'))",
}


def stored_version(db: sqlite3.Connection) -> str | None:
    """The schema a store was written with; None for a new (empty) database."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() \
            is None:
        return None
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    return None if row is None else str(row[0])


def readable(found: str | None) -> bool:
    """This harness reads (or upgrades) a store of schema ``found``."""
    return found is None or (found.isdigit() and min(UPGRADES) <= int(found) <= VERSION)


def create_or_upgrade(db: sqlite3.Connection, found: str | None) -> None:
    """Create what a new store lacks, or bring a ``readable`` older one to this schema."""
    for statement in TABLES.strip().split(";"):
        if statement.strip():
            db.execute(statement)
    if found is None:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(VERSION),))
        return
    for version in range(int(found), VERSION):
        for statement in UPGRADES[version]:
            db.execute(statement)
        if version == 3:  # rows from before checksums: checksummed as they stand
            for table in digests.COLUMNS:
                if not any(r[1] == "digest" for r in db.execute(f"PRAGMA table_info({table})")):
                    db.execute(f"ALTER TABLE {table} ADD COLUMN digest TEXT")
                digests.fill(db, table)
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(VERSION),))


def _checksummed(db: sqlite3.Connection) -> bool:
    return any(r[1] == "digest" for r in db.execute("PRAGMA table_info(scores)"))


def _failing(db: sqlite3.Connection) -> dict[str, list[tuple[int, tuple]]]:
    """Rows whose checksum fails, per table (none in a store from before checksums, read as
    it is)."""
    if not _checksummed(db):
        return {}
    return {table: found for table in digests.COLUMNS if (found := digests.failing(db, table))}


#: a damaged row of each table, for people: what it held
_NAMES = {"scores": "the {metric} score of variant {variant} on {task}",
          "samples": "the per-row values of {metric_key} in cell {cell}",
          "analyses": "the {kind} analysis of variant {variant}",
          "merge_stats": "the merge statistics of variant {variant}",
          "variants": "the record of variant {key}",
          "eval_samples": "the eval sample of task {task}",
          "audits": "the task audit {key}"}


def _name(table: str, row: tuple) -> str:
    return _NAMES[table].format(**dict(zip(digests.COLUMNS[table], row, strict=True)))


def drop_damaged(db: sqlite3.Connection) -> list[str]:
    """Delete damaged rows (a score that is not a number, a per-row blob of the wrong length
    with its score, a variant's analyses with a damaged value, any row whose checksum fails)
    so that what they stood for is recomputed; returns what was dropped, for people."""
    dropped: list[str] = []
    for table, rows in _failing(db).items():
        dropped += [_name(table, row) for _, row in rows]
        db.executemany(f"DELETE FROM {table} WHERE rowid=?", [(rowid,) for rowid, _ in rows])
        if table == "samples":  # a metric's score goes with its per-row values
            db.executemany("DELETE FROM scores WHERE cell=? AND metric_key=?",
                           [row[:2] for _, row in rows])
        if table == "analyses":  # a variant's analyses are recomputed together
            db.executemany("DELETE FROM analyses WHERE variant=? AND pool=?",
                           [row[:2] for _, row in rows])
    for table, where in DAMAGED.items():  # scores first: samples follow their score
        named = _BLOB if table == "samples" else where  # not the samples of a dropped score
        dropped += [f"a damaged row of {table} ({'variant' if table == 'analyses' else 'cell'} "
                    f"{row[0]})" for row in db.execute(f"SELECT * FROM {table} WHERE {named}")]
        db.execute(f"DELETE FROM {table} WHERE {where}")
    return dropped


def count_damaged(db: sqlite3.Connection) -> int:
    """How many rows ``drop_damaged`` would delete (at least)."""
    return sum(len(rows) for rows in _failing(db).values()) + sum(
        int(db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])
        for table, where in DAMAGED.items())
