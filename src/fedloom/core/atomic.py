"""Crash-safe file writes: a temporary file in the same directory, fsync, rename, fsync of the directory.

A reader (or a resumed run) then sees either the previous file or the new one, never a torn or
empty one, even if the process or the machine dies in the middle: the data is on disk before the
rename, and the rename itself is on disk (the directory entry is synced) before the call returns.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> atomic_write_text(path, "hello")
    >>> path.read_text()
    'hello'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "fsync_dir"]


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk; a no-op where the OS
    cannot open directories (Windows)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: str | Path, write: Callable[[str], object], *, prefix: str = ".tmp-", mode: int | None = None
) -> None:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file beside it, which is synced and
    renamed over ``path``; then the directory is synced. On any error the temporary file is removed
    and ``path`` is left as it was.

    ``mode``: the new file's permissions (default: the temporary file's, owner read/write only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = 0o644) -> None:
    """Atomically replace ``path`` with ``data`` (see :func:`atomic_write`); readable by all by default."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), mode=mode)


def atomic_write_text(path: str | Path, text: str, *, mode: int | None = 0o644) -> None:
    """Atomically replace ``path`` with ``text`` in UTF-8 (see :func:`atomic_write`); readable by all by
    default."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), mode=mode)
