"""Where ``--out`` and ``--store`` point, checked before anything is computed or written: an
``--out`` inside the store, a folder, or a name the file system cannot take is a usage error."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.api import HarnessError
from harness.arguments import DEFAULT_STORE
from harness.execute import check_writable_out


def checked_paths(out: str | None, store: str) -> None:
    """Refuse an ``--out`` that would overwrite the results store (its database, the
    database's journal files, its artifacts: anything inside the store folder) or that is a
    folder, before anything is computed or written; and an empty ``--store``."""
    if not store.strip():
        raise HarnessError("--store is empty; give the results store's folder (default "
                           f"{DEFAULT_STORE})")
    if out is None:
        return
    try:
        target, folder = Path(out).resolve(), Path(store).resolve()
        if target == folder or folder in target.parents:
            raise HarnessError(f"--out {out} is inside the results store {store}; writing "
                               "there would destroy stored results: give a path outside it")
        _check_name(out, target, TEMPORARY, "file")
        if target.is_dir():
            raise HarnessError(f"--out {out} is a folder; give a file path (e.g. "
                               f"{out}/README.md)")
    except OSError as err:  # a folder's name too long, a loop of links
        raise HarnessError(f"--out {out}: {err.strerror}; give another path") from None
    check_writable_out(Path(out))


#: how much longer than ``--out``'s name the temporary file it is written through is named
#: (``harness.store.files.atomic_write``: ``.NAME.`` + 8 random characters + ``.tmp``)
TEMPORARY = 14


def _name_max(folder: Path) -> int:
    """The longest file name, in bytes, the file system of ``folder`` (or of the nearest
    folder above it that exists) takes; 255 where it does not say."""
    try:
        while not folder.exists():
            folder = folder.parent
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def _check_name(out: object, target: Path, longer: int, kind: str) -> None:
    """``--out``'s name must fit the file system with the ``longer`` characters more of the
    temporary ``kind`` (file or folder) it is written through."""
    longest, size = _name_max(target.parent) - longer, len(os.fsencode(target.name))
    if size > longest:
        name = "file name" if kind == "file" else "name"
        raise HarnessError(f"--out {out}: its {name} is too long ({size} bytes; at most "
                           f"{longest} here, as it is written through a temporary {kind} of a "
                           "longer name); give a shorter name")


def checked_folder(out: Path, store: Path) -> None:
    """A folder ``--out`` must not exist, or be an empty folder, outside the store, with a name
    the file system takes (and the temporary folder it is written through, ``write_folder``),
    in a writable folder (itself, if it exists): nothing is ever written over, and nothing is
    written at all on a refusal."""
    try:
        target, folder = out.resolve(), store.resolve()
        if target == folder or folder in target.parents:
            raise HarnessError(f"--out {out} is inside the results store {store}; give a "
                               "folder outside it")
        if out.is_symlink() or (out.exists() and not out.is_dir()):
            raise HarnessError(f"--out {out} exists and is not a folder; give a new folder")
        if out.is_dir() and any(out.iterdir()):
            raise HarnessError(f"--out {out} exists and is not empty; give a new or empty "
                               "folder")
        _check_name(out, target, FOLDER_TEMPORARY, "folder")
        above = target
        while not above.exists():
            above = above.parent
        usable = above.is_dir() and os.access(above, os.W_OK | os.X_OK)
    except OSError as err:  # a name too long, a loop of links
        raise HarnessError(f"--out {out}: {err.strerror}; give another path") from None
    if not usable:
        raise HarnessError(f"cannot write --out {out}: {above} is not a writable folder; give "
                           "another path")


#: how much longer than a folder ``--out``'s name the temporary folder it is written through is
#: named (``write_folder``: ``.NAME-`` + 8 random characters)
FOLDER_TEMPORARY = 10


def write_folder(out: Path, fill: Callable[[Path], None]) -> None:
    """Make the folder ``out`` (new or empty, ``checked_folder``) whole or not at all: ``fill``
    writes a new folder (the path it is given does not exist yet) in a temporary folder, which
    is then renamed to ``out``. The temporary folder is made beside a new ``out`` and inside an
    existing empty one (the current folder, a mount point: it keeps its inode, and the new
    folder's entries move into it). On a failure, the folders made above ``out`` and the entries
    moved into it are removed again, and an OSError is one line."""
    out = out.resolve()
    inside = out.is_dir()
    made = out if inside else out.parent
    while not made.parent.exists():
        made = made.parent
    new_above = not made.exists()
    tmp: Path | None = None
    moved: list[Path] = []
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out if inside else out.parent, prefix=f".{out.name}-"))
        folder = tmp / "folder"
        fill(folder)
        if inside:
            for entry in sorted(folder.iterdir()):
                os.replace(entry, out / entry.name)
                moved.append(out / entry.name)
        else:
            os.replace(folder, out)
    except BaseException as err:
        for entry in moved:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
        if new_above:
            shutil.rmtree(made, ignore_errors=True)
        if isinstance(err, OSError):
            raise HarnessError(f"cannot write --out {out}: {err.strerror or err}; nothing was "
                               "written") from None
        raise
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
