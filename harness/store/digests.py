"""Checksums of the database rows a leaderboard's figures come from (schema 4): every row of
``scores``, ``samples``, ``analyses``, ``merge_stats``, ``variants``, ``eval_samples`` and
``audits`` carries the SHA-256 (128 bits, hex) of
its own fields, written with it and verified every time a store is opened. SQLite's
``quick_check`` checks the file's structure, not its values: a flipped bit in a stored float is
still a valid float (0.519 read as 1.038, or a change in the last mantissa bit) and only a
checksum of the value catches it. A row that fails is dropped and named, and ``harness run``
recomputes it.

Each digest covers the row as SQLite gives it back: a REAL column returns NaN as NULL and
``-0.0`` as ``0.0``, so values are put in that form first (``_real``) and written exactly
(``float.hex``)."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Iterable
from typing import Any

#: table -> the columns its digest covers, in order
COLUMNS = {
    "scores": ("cell", "metric_key", "variant", "task", "metric", "value", "note", "profile",
               "eval_seed", "run_id", "higher_is_better"),
    "samples": ("cell", "metric_key", "n", "data", "kind"),
    "analyses": ("variant", "pool", "tasks", "profile", "eval_seed", "run_id", "kind", "name",
                 "value", "lo", "hi"),
    "merge_stats": ("variant", "stats"),
    # what the page reads beside the figures: recomputed or rewritten by the next run
    "variants": ("key", "encoder", "family", "adapter", "train_task", "seed", "merge", "grp",
                 "profile", "info", "roles"),
    "eval_samples": ("key", "task", "profile", "eval_seed", "run_id", "info", "sequences",
                     "labels"),
    "audits": ("key", "tasks", "profile", "eval_seed", "run_id", "data"),
}
#: the REAL columns of each table
_REAL = {"value", "lo", "hi"}


def _real(value: Any) -> str | None:
    if value is None:
        return None
    x = float(value)
    if math.isnan(x):
        return None
    return (0.0 if x == 0 else x).hex()


def _field(name: str, value: Any) -> Any:
    if name in _REAL:
        return _real(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, bool):
        return int(value)
    return value


def digest(table: str, row: Iterable[Any]) -> str:
    """The checksum of one row of ``table``: its ``COLUMNS`` values, in that order."""
    fields = [_field(name, value) for name, value in zip(COLUMNS[table], row, strict=True)]
    text = json.dumps([table, *fields], separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def with_digest(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """``row`` (the ``COLUMNS`` of ``table``) followed by its digest, to INSERT."""
    return (*row, digest(table, row))


def failing(db: sqlite3.Connection, table: str) -> list[tuple[int, tuple[Any, ...]]]:
    """(rowid, row) of every row of ``table`` whose digest is missing or does not match."""
    columns = COLUMNS[table]
    out = []
    for rowid, *values in db.execute(f"SELECT rowid, {', '.join(columns)}, digest "
                                     f"FROM {table}"):
        row, stored = tuple(values[:-1]), values[-1]
        try:
            ok = isinstance(stored, str) and stored == digest(table, row)
        except (TypeError, ValueError, OverflowError):  # a value of the wrong kind
            ok = False
        if not ok:
            out.append((rowid, row))
    return out


def fill(db: sqlite3.Connection, table: str, where: str = "digest IS NULL",
         args: tuple[Any, ...] = ()) -> None:
    """Write the digest of the rows of ``table`` that match ``where`` as they stand (a store
    upgraded to schema 4; a row a backfill has just completed)."""
    columns = COLUMNS[table]
    rows = list(db.execute(f"SELECT rowid, {', '.join(columns)} FROM {table} WHERE {where}",
                           args))
    updates = []
    for rowid, *values in rows:
        try:
            updates.append((digest(table, tuple(values)), rowid))
        except (TypeError, ValueError, OverflowError):  # damaged: left without, then dropped
            continue
    db.executemany(f"UPDATE {table} SET digest=? WHERE rowid=?", updates)
