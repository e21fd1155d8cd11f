"""Opening a store's database: writable (WAL mode, busy timeout), or read-only for a store
folder this user cannot write; checked by SQLite's ``quick_check`` either way."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from harness.errors import HarnessError
from harness.store import schema


def check_writable(root: Path) -> None:
    try:
        if root.exists() and not root.is_dir():
            raise HarnessError(f"store {root} is a file, not a folder; pass --store DIR")
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise HarnessError(f"store {root} is not writable ({err.strerror}); pass --store DIR "
                           "with a writable folder (`harness leaderboard` and `harness export` "
                           "read a read-only store as it is)") from None


def open_writable(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=60000")
    return db


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes. A database in WAL mode needs its ``-shm`` file to be
    read; where the folder is read-only and none was left (a store closed cleanly has neither
    ``-wal`` nor ``-shm``), it is opened as immutable, which is exact as long as no write-ahead
    log holds results not yet folded into the database."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60, isolation_level=None)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError as err:
        db.close()
        if not getattr(err, "sqlite_errorname", "").startswith(("SQLITE_CANTOPEN",
                                                                 "SQLITE_READONLY")):
            raise
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise HarnessError(f"store {path.parent} is read-only and its {wal.name} holds results "
                           "not yet folded into results.sqlite, without the -shm file needed "
                           "to read them: open the store once with write access (any harness "
                           "command does), or copy the folder and read the copy")
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)


def check_intact(db: sqlite3.Connection, root: Path) -> None:
    """SQLite's own check of the file's structure (milliseconds for a store of 10 MB)."""
    problems = [str(r[0]) for r in db.execute("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        found = " ".join("; ".join(problems).split())
        raise HarnessError(f"store {root}: results.sqlite is damaged (SQLite's quick_check: "
                           f"{found}); move it aside and re-run (stored artifacts are reused), "
                           "or pass another --store")


def check_readable_as_is(db: sqlite3.Connection, found: str | None, root: Path) -> None:
    """A read-only store is read as it is: one that needs an upgrade or holds damaged rows
    would have to be written first."""
    why = None
    if found is None:
        why = "it holds no results database yet"
    elif found not in schema.AS_IS and schema.readable(found):
        why = f"it was written by an older harness (schema {found}) and needs an upgrade"
    elif schema.readable(found) and schema.count_damaged(db):
        why = "it holds damaged rows that a writable open would drop"
    if why:
        raise HarnessError(f"store {root} is read-only and {why}: copy the folder somewhere "
                           "writable and read the copy")
