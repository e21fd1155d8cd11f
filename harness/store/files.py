"""Writing a file so that a killed process leaves either the whole file or nothing."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600: give what open() would
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)  # read once, at import: setting it is not thread-safe
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    atomic_write(path, write)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def inside_store(path: Path) -> bool:
    """No folder on the way from the store to ``path`` is a link that leads out of it."""
    try:
        store = next(p for p in path.parents if p.name == "artifacts").parent
        return os.path.realpath(path.parent).startswith(os.path.realpath(store) + os.sep)
    except (OSError, StopIteration):
        return False


def regular_file(path: Path) -> bool:
    """``path`` is a regular file itself (not a link, a pipe or a device), inside the store."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode) and inside_store(path)
    except OSError:
        return False
