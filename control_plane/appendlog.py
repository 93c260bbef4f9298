"""An append-only file of newline-terminated lines, safe against a crash mid-append.

Shared by the ledger and the checkpoint log.  A line is written with one
``O_APPEND`` write and fsynced; a crash can leave only a partial last line
(no newline), which :meth:`AppendLog.repair_tail` detects and drops.  Lines
are read from the end without reading the whole file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from control_plane.errors import CheckFailedError, UsageError

_TAIL_BLOCK = 64 * 1024


class AppendLog:
    """One append-only line file; the caller holds the root lock for writes.

    Every method raises ``UsageError`` (exit 2) naming the file when it cannot
    be opened: a directory in its place, a dangling link, no permission.
    """

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label

    def _unusable(self, why: str) -> UsageError:
        return UsageError(f"cannot use the {self.label} file {self.path}: {why}")

    def _open(self, flags: int) -> int | None:
        """A descriptor on the regular file, never through a link; None when it does not exist."""
        try:
            fd = os.open(self.path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            if self.path.is_symlink():  # a dangling link is not a missing file
                raise self._unusable("a symbolic link") from None
            if flags & os.O_CREAT:
                raise self._unusable("its directory is missing") from None
            return None
        except OSError as exc:
            why = "a symbolic link" if self.path.is_symlink() else exc.strerror
            raise self._unusable(why or type(exc).__name__) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise self._unusable("not a regular file")
        return fd

    def _reader(self, writable: bool = False) -> BinaryIO | None:
        fd = self._open(os.O_RDWR if writable else os.O_RDONLY)
        if fd is None:
            return None
        return os.fdopen(fd, "r+b" if writable else "rb")

    def append(self, line: bytes) -> None:
        """Write ``line`` plus a newline in one append and fsync it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unusable(f"cannot create its directory ({exc.strerror})") from None
        fd = self._open(os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        if fd is None:  # O_CREAT: only a race can get here
            raise self._unusable("it vanished while being created")
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def repair_tail(self) -> str | None:
        """Drop a partly written last line left by a crash; return a message when it did."""
        handle = self._reader(writable=True)
        if handle is None:
            return None
        with handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return None
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return None
            keep = _line_start(handle, size)
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        return (
            f"{self.label}: removed a partly written last line ({size - keep} bytes) "
            "left by an interrupted command"
        )

    def tail(self, count: int) -> list[bytes]:
        """The last ``count`` complete lines (fewer if the file is shorter), oldest first."""
        if count <= 0:
            return []
        handle = self._reader()
        if handle is None:
            return []
        lines: list[bytes] = []
        with handle:
            end = handle.seek(0, os.SEEK_END)
            if end and _byte_at(handle, end - 1) == b"\n":
                end -= 1
            elif end:
                end = _line_start(handle, end) - 1  # ignore a partial last line
            while end >= 0 and len(lines) < count:
                start = _line_start(handle, end)
                handle.seek(start)
                lines.append(handle.read(end - start))
                end = start - 1
        lines.reverse()
        return lines

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """Every line with its 1-based number, without the newline.

        Raises:
            CheckFailedError: the last line is partly written (no newline).
        """
        handle = self._reader()
        if handle is None:
            return
        with handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    raise CheckFailedError(
                        f"{self.label} line {number}: partly written (no newline)"
                    )
                yield number, line[:-1]


def _byte_at(handle: BinaryIO, offset: int) -> bytes:
    handle.seek(offset)
    data: bytes = handle.read(1)
    return data


def _line_start(handle: BinaryIO, end: int) -> int:
    """Offset just after the last newline before ``end`` (0 when there is none)."""
    position = end
    while position > 0:
        start = max(0, position - _TAIL_BLOCK)
        handle.seek(start)
        block = handle.read(position - start)
        index = block.rfind(b"\n")
        if index >= 0:
            return start + index + 1
        position = start
    return 0
