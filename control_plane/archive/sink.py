"""Where accepted archive members land: the ``MemberSink`` protocol and a staging directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO, Protocol

from control_plane.archive.limits import ArchiveLimits
from control_plane.archive.names import name_problem, show
from control_plane.errors import UnsafeArchiveError, UsageError

# The reader enforces the configured length limits; the sink re-checks only the shape of names.
_LOOSE = ArchiveLimits(max_name_bytes=1 << 30, max_component_bytes=1 << 30)


class MemberSink(Protocol):
    """Receives accepted members; ``read_archive`` writes a file's content, then closes it."""

    def directory(self, name: str) -> None: ...

    def file(self, name: str, executable: bool) -> BinaryIO: ...


class DirectorySink:
    """A ``MemberSink`` that writes members under ``base`` and never follows a symbolic link."""

    def __init__(self, base: Path) -> None:
        """Stage under ``base``.

        Raises:
            UsageError: ``base`` is not an existing directory (a link to one is refused).
        """
        try:
            mode = os.lstat(base).st_mode
        except OSError as exc:
            raise UsageError(f"staging directory {base} is unusable: {exc.strerror}") from exc
        if not stat.S_ISDIR(mode):
            raise UsageError(f"staging directory {base} is not a directory")
        self._base = os.fspath(base)
        self._ready: set[str] = {""}

    def _path(self, name: str) -> str:
        problem = name_problem(name, _LOOSE)
        if problem is not None:
            raise UnsafeArchiveError(f"refusing to stage {show(name)}: {problem}")
        return os.path.join(self._base, name)  # noqa: PTH118 - str paths keep per-member cost low

    def _ensure_dir(self, name: str) -> None:
        missing = []
        while name not in self._ready:
            missing.append(name)
            name = name.rpartition("/")[0]
        for rel in reversed(missing):
            path = os.path.join(self._base, rel)  # noqa: PTH118 - as in _path
            try:
                try:
                    os.mkdir(path, 0o755)  # noqa: PTH102 - as in _path
                except FileExistsError:
                    if not stat.S_ISDIR(os.lstat(path).st_mode):
                        raise UnsafeArchiveError(
                            f"refusing to stage {show(rel)}: a non-directory is in the way"
                        ) from None
                else:
                    # The umask must not decide the mode of what we create.
                    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                    try:
                        os.fchmod(fd, 0o755)
                    finally:
                        os.close(fd)
            except OSError as exc:
                raise UsageError(f"cannot create directory {show(rel)}: {exc.strerror}") from exc
            self._ready.add(rel)

    def directory(self, name: str) -> None:
        """Create ``name`` (and missing parents) with mode 0o755.

        Raises:
            UnsafeArchiveError: an unsafe name, or a non-directory (a link) in the way.
            UsageError: the file system refuses.
        """
        self._path(name)
        self._ensure_dir(name)

    def file(self, name: str, executable: bool) -> BinaryIO:
        """Create ``name`` exclusively (0o755 or 0o644) and return it open for writing.

        Raises:
            UnsafeArchiveError: an unsafe name, a non-directory (a link) where a parent
                goes, or anything (a link included) already at ``name``.
            UsageError: the file system refuses.
        """
        path = self._path(name)
        self._ensure_dir(name.rpartition("/")[0])
        mode = 0o755 if executable else 0o644
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, mode)
        except FileExistsError:
            raise UnsafeArchiveError(f"refusing to stage {show(name)}: it already exists") from None
        except OSError as exc:
            raise UsageError(f"cannot create {show(name)}: {exc.strerror}") from exc
        handle = open(fd, "wb")  # noqa: PTH123, SIM115 - wraps a descriptor; the reader closes it
        try:
            os.fchmod(fd, mode)  # the umask must not decide the mode
        except OSError as exc:
            handle.close()
            raise UsageError(f"cannot create {show(name)}: {exc.strerror}") from exc
        return handle
