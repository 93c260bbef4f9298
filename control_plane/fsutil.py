"""Small, careful file-system primitives shared by every layer that writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from control_plane.errors import UsageError


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (create, rename, unlink) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    Writes a temporary file in the same directory, fsyncs it, renames it over
    the target and fsyncs the directory.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file or a dangling link in the way
        raise UsageError(f"cannot write {path}: {path.parent} is not a directory") from None
    if path.is_dir() and not path.is_symlink():
        raise UsageError(f"cannot write {path}: a directory is in its place")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    """``atomic_write_bytes`` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def is_within(path: Path, directory: Path) -> bool:
    """True when ``path`` (already resolved) lies inside ``directory`` (already resolved)."""
    try:
        path.relative_to(directory)
    except ValueError:
        return False
    return True
