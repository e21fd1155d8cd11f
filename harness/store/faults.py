"""Faults of the machine rather than of the input or of a plugin: a full disk, a read-only or
failing file system, a results database that SQLite cannot open. Each becomes one line that
says what happened and what to do; none is reported as a damaged store unless SQLite finds the
file damaged. A run stops at such a fault instead of failing every cell after it: what was
stored before it is kept, and the same command resumes once it is fixed."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

#: OSError numbers that are the machine's, not a plugin's
MACHINE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}
_RESUME = "what was stored is kept, and the same command resumes"


def is_machine_fault(err: BaseException) -> bool:
    return isinstance(err, sqlite3.Error) or (isinstance(err, OSError)
                                              and err.errno in MACHINE)


def _full(root: Path | None) -> bool:
    if root is None:
        return False
    folder = root if root.is_dir() else root.parent
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def machine_fault(err: BaseException, root: Path | None = None) -> str | None:
    """The one-line message for ``err`` if it is the machine's fault (``root``: the results
    store it happened in, if known), else None."""
    if isinstance(err, sqlite3.Error):
        return database_fault(err, root)
    if not isinstance(err, OSError) or err.errno not in MACHINE:
        return None
    where = f" ({err.filename})" if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the disk{where}: free some space or pass --store/--out on "
                f"another disk; {_RESUME}")
    if err.errno == errno.EROFS:
        return (f"the file system is read-only{where}: pass --store/--out on a writable one; "
                f"{_RESUME}")
    return f"the disk failed to read or write{where} ({err.strerror}); check it; {_RESUME}"


def database_fault(err: sqlite3.Error, root: Path | None) -> str:
    """One line for an SQLite error on the store at ``root``: damaged only when SQLite says the
    file is damaged."""
    name = getattr(err, "sqlite_errorname", "") or ""
    store = f"store {root}: " if root is not None else "results store: "
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return (f"{store}results.sqlite is damaged ({err}); move it aside and re-run (stored "
                "artifacts are reused), or pass another --store")
    if name == "SQLITE_FULL" or _full(root):
        return (f"{store}no space left on the disk for results.sqlite ({err}): free some space "
                f"or pass another --store; {_RESUME}")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return (f"{store}results.sqlite cannot be opened for writing ({err}); check the "
                "permissions of the store folder and its files, or pass another --store")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return (f"{store}results.sqlite stayed locked by another process for 60 s ({err}); "
                "wait for the other harness to finish, then run the same command again")
    if name.startswith("SQLITE_IOERR"):
        return (f"{store}results.sqlite could not be read or written ({err}, {name}); its "
                "results.sqlite-wal or -shm file may have been deleted while another harness "
                "had the store open: let that one finish, then run again (the file is not "
                "reported damaged by SQLite)")
    return f"{store}results.sqlite: {err} ({name or type(err).__name__})"
