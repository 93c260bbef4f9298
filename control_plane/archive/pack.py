"""Deterministic packing: collect a source tree, write it as a byte-reproducible tar.gz.

Same content gives byte-identical archives whatever the mtimes, owners, umask
or directory order: members are sorted, every header carries uid/gid 0, empty
owner names, mtime 0 and a mode of 0o755 (directories, executables) or 0o644,
and the gzip header has mtime 0, no file name and a fixed OS byte.

The tar stream is cut into fixed ``DEFLATE_BLOCK``-sized blocks that are
deflated in parallel threads (zlib releases the GIL), each primed with the
previous block's last 32 KiB and ended with a sync flush, then concatenated
in order into one gzip member (the technique ``pigz`` uses).  Block
boundaries depend only on the tar stream, so the output does not depend on
the number of threads.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from control_plane.archive.limits import ArchiveLimits
from control_plane.archive.names import NameRegistry, name_problem, show
from control_plane.archive.tarformat import BLOCK, DIRTYPE, RECORD, REGTYPE, ZEROS, member_header
from control_plane.errors import UsageError
from control_plane.fsutil import is_within

DEFLATE_BLOCK = 1 << 20
_WINDOW = 32 * 1024
_READ_CHUNK = 1 << 20
_DIR_MODE = 0o755
_FILE_MODE = 0o644
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@dataclass(frozen=True)
class PackEntry:
    """One member to pack: its archive name, where it is on disk, and its kind."""

    name: str
    path: Path
    is_dir: bool
    executable: bool


@dataclass(frozen=True)
class PackResult:
    """What ``write_archive`` wrote: the compressed bytes' digest and size, and member counts."""

    sha256: str
    size: int
    files: int
    directories: int
    content_bytes: int


def _special_kind(mode: int) -> str:
    for predicate, label in _SPECIAL_KINDS:
        if predicate(mode):
            return label
    return "not a regular file or directory"


class _Collector:
    def __init__(self, real_root: Path, skip_dirs: frozenset[str] = frozenset()) -> None:
        self.real_root = real_root
        self.skip_dirs = skip_dirs
        self.entries: dict[str, PackEntry] = {}
        self.names = NameRegistry()
        self.limits = ArchiveLimits()
        self.walked: set[str] = set()

    def add(self, name: str, path: Path, *, is_dir: bool, executable: bool = False) -> None:
        if name in self.entries:
            return  # overlapping sources meet here
        problem = name_problem(name, self.limits) or self.names.add(name, is_dir=is_dir)
        if problem is not None:
            raise UsageError(f"cannot pack {show(name)}: {problem}")
        self.entries[name] = PackEntry(name, path, is_dir, executable)

    def walk(self, top: Path, top_name: str) -> None:
        stack = [(top, top_name)]
        while stack:
            directory, prefix = stack.pop()
            if prefix in self.walked:
                continue
            self.walked.add(prefix)
            try:
                with os.scandir(directory) as listing:
                    children = list(listing)
            except OSError as exc:
                raise UsageError(f"cannot list {show(prefix or '.')}: {exc.strerror}") from exc
            for child in children:
                name = f"{prefix}/{child.name}" if prefix else child.name
                path = directory / child.name
                try:
                    if child.is_symlink():
                        raise UsageError(f"refusing to pack symbolic link {show(name)}")
                    if child.is_dir(follow_symlinks=False):
                        if child.name in self.skip_dirs:
                            continue
                        self.add(name, path, is_dir=True)
                        stack.append((path, name))
                    elif child.is_file(follow_symlinks=False):
                        mode = child.stat(follow_symlinks=False).st_mode
                        self.add(name, path, is_dir=False, executable=bool(mode & 0o111))
                    else:
                        kind = _special_kind(child.stat(follow_symlinks=False).st_mode)
                        raise UsageError(f"refusing to pack {show(name)}: {kind}")
                except OSError as exc:
                    raise UsageError(f"cannot read {show(name)}: {exc.strerror}") from exc


def _inside(path: Path, roots: tuple[Path, ...]) -> tuple[str, ...] | None:
    for candidate in roots:
        try:
            return path.relative_to(candidate).parts
        except ValueError:
            continue
    return None


def _source_parts(roots: tuple[Path, ...], real_root: Path, source: Path) -> tuple[str, ...]:
    """The root-relative components of ``source``, refusing links and paths outside the root."""
    raw = source if source.is_absolute() else Path.cwd() / source
    shown = show(os.fspath(source))
    current = Path(raw.anchor)
    for part in raw.parts[1:]:
        current = current.parent if part == ".." else current / part
        if not _inside(current, roots):
            continue  # above the root, or the root itself: not ours to judge
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            raise UsageError(f"source {shown} does not exist") from None
        except OSError as exc:
            raise UsageError(f"cannot read source {shown}: {exc.strerror}") from exc
        if stat.S_ISLNK(mode):
            raise UsageError(
                f"refusing to pack {shown}: {show(os.fspath(current))} is a symbolic link"
            )
    parts = _inside(current, roots)
    if parts is None:
        if not os.path.lexists(current):
            raise UsageError(f"source {shown} does not exist")
        if is_within(current.resolve(), real_root):
            raise UsageError(
                f"refusing to pack {shown}: it reaches the root through a symbolic link"
            )
        raise UsageError(f"source {shown} is outside the root {show(os.fspath(real_root))}")
    return parts


def source_name(root: Path, source: Path) -> str:
    """The root-relative name ``source`` packs under (``""`` for the root itself).

    Raises:
        UsageError: as ``collect_sources`` for a missing, linked or outside source.
    """
    real_root = root.resolve()
    roots = (Path(os.path.normpath(root.absolute())), real_root)
    return "/".join(_source_parts(roots, real_root, source))


def collect_sources(
    root: Path, sources: Sequence[Path], *, skip_dirs: frozenset[str] = frozenset()
) -> list[PackEntry]:
    """Every file and directory under ``sources``, with their parents, sorted by UTF-8 name.

    Directories named in ``skip_dirs`` (e.g. ``__pycache__``) are left out of walks.

    Raises:
        UsageError: a source is missing or outside ``root``; a symbolic link
            (as a source, on its path, or inside a walked directory), a fifo,
            socket or device; a name that is not a safe member name (control
            characters, backslash, invalid UTF-8, too long) or that collides
            with another once case and Unicode are folded.
    """
    real_root = root.resolve()
    if not real_root.is_dir():
        raise UsageError(f"root {root} is not a directory")
    roots = (Path(os.path.normpath(root.absolute())), real_root)
    collector = _Collector(real_root, skip_dirs)
    for source in sources:
        parts = _source_parts(roots, real_root, source)
        for depth in range(1, len(parts)):
            collector.add("/".join(parts[:depth]), real_root.joinpath(*parts[:depth]), is_dir=True)
        path = real_root.joinpath(*parts)
        name = "/".join(parts)
        mode = os.lstat(path).st_mode
        if stat.S_ISDIR(mode):
            if name:
                collector.add(name, path, is_dir=True)
            collector.walk(path, name)
        elif stat.S_ISREG(mode):
            collector.add(name, path, is_dir=False, executable=bool(mode & 0o111))
        else:
            raise UsageError(f"refusing to pack {show(os.fspath(source))}: {_special_kind(mode)}")
    return sorted(collector.entries.values(), key=lambda entry: entry.name.encode("utf-8"))


def _gzip_header(level: int) -> bytes:
    extra_flags = 2 if level == 9 else 4 if level == 1 else 0
    # magic, deflate, no flags, mtime 0, extra flags, OS "unknown" (platform independent)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([extra_flags, 0xFF])


def _deflate_block(block: memoryview, dictionary: bytes, level: int, last: bool) -> bytes:
    if dictionary:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=dictionary)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(block) + compressor.flush(
        zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
    )


class _ParallelGzip:
    """A gzip member built from independently deflated blocks, written to ``out`` in order."""

    def __init__(self, out: BinaryIO, level: int, workers: int) -> None:
        self._out = out
        self._level = level
        self._digest = hashlib.sha256()
        self.size = 0
        self._crc = 0
        self._length = 0
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._dictionary = b""
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deflate")
        self._pending: deque[Future[bytes]] = deque()
        self._max_pending = 2 * workers
        self._emit(_gzip_header(level))

    def _emit(self, data: bytes) -> None:
        self._digest.update(data)
        self.size += len(data)
        try:
            self._out.write(data)
        except OSError as exc:
            raise UsageError(f"cannot write the archive: {exc.strerror or exc}") from exc

    def write(self, data: bytes) -> None:
        self._pieces.append(data)
        self._buffered += len(data)
        if self._buffered >= DEFLATE_BLOCK:
            self._cut(last=False)

    def _submit(self, block: memoryview, last: bool) -> None:
        self._crc = zlib.crc32(block, self._crc)
        self._length += len(block)
        self._pending.append(
            self._pool.submit(_deflate_block, block, self._dictionary, self._level, last)
        )
        self._dictionary = bytes(block[-_WINDOW:])
        while self._pending and (len(self._pending) > self._max_pending or self._pending[0].done()):
            self._emit(self._pending.popleft().result())

    def _cut(self, *, last: bool) -> None:
        data = memoryview(b"".join(self._pieces))
        offset = 0
        while len(data) - offset >= DEFLATE_BLOCK:
            self._submit(data[offset : offset + DEFLATE_BLOCK], last=False)
            offset += DEFLATE_BLOCK
        rest = data[offset:]
        if last:
            self._submit(rest, last=True)
            rest = memoryview(b"")
        self._pieces = [bytes(rest)] if rest else []
        self._buffered = len(rest)

    @property
    def tar_length(self) -> int:
        """Uncompressed bytes written so far."""
        return self._length + self._buffered

    def finish(self) -> str:
        self._cut(last=True)
        while self._pending:
            self._emit(self._pending.popleft().result())
        self._emit(struct.pack("<II", self._crc, self._length & 0xFFFFFFFF))
        return self._digest.hexdigest()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _copy_file(gz: _ParallelGzip, entry: PackEntry, progress: Callable[[int], None] | None) -> int:
    try:
        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"cannot read {show(entry.name)}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"refusing to pack {show(entry.name)}: no longer a regular file")
        size = info.st_size
        mode = _DIR_MODE if entry.executable else _FILE_MODE
        gz.write(member_header(entry.name, size, mode, REGTYPE))
        remaining = size
        while True:
            # Ask for one byte more than expected: a longer read means the file grew.
            want = min(remaining + 1, _READ_CHUNK)
            chunk = os.read(fd, want)
            if len(chunk) > remaining or (not chunk and remaining):
                raise UsageError(f"{show(entry.name)} changed size while being packed; try again")
            if not chunk:
                break
            gz.write(chunk)
            remaining -= len(chunk)
            if progress is not None:
                progress(len(chunk))
            if remaining == 0 and len(chunk) < want:
                break  # the short read already reached end of file
    except OSError as exc:
        raise UsageError(f"cannot read {show(entry.name)}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    gz.write(ZEROS[: -size % BLOCK])
    return size


def write_archive(
    entries: Sequence[PackEntry],
    out: BinaryIO,
    *,
    gzip_level: int = 6,
    progress: Callable[[int], None] | None = None,
) -> PackResult:
    """Write ``entries`` (in the given order) to ``out`` as a deterministic tar.gz.

    ``progress`` receives counts of content bytes as they are read.

    Raises:
        UsageError: a bad gzip level or member name, a file that cannot be
            read, is no longer a regular file, or changed size while being
            read, or ``out`` cannot be written.
    """
    if not 0 <= gzip_level <= 9:
        raise UsageError(f"gzip level must be 0 to 9, not {gzip_level}")
    limits = ArchiveLimits()
    files = directories = content_bytes = 0
    gz = _ParallelGzip(out, gzip_level, workers=max(1, min(4, os.cpu_count() or 1)))
    try:
        for entry in entries:
            problem = name_problem(entry.name, limits)
            if problem is not None:
                raise UsageError(f"cannot pack {show(entry.name)}: {problem}")
            if entry.is_dir:
                gz.write(member_header(entry.name + "/", 0, _DIR_MODE, DIRTYPE))
                directories += 1
            else:
                content_bytes += _copy_file(gz, entry, progress)
                files += 1
        # End-of-archive marker, padded to a whole record as GNU tar does.
        gz.write(ZEROS[: 2 * BLOCK])
        gz.write(ZEROS[: -gz.tar_length % RECORD])
        digest = gz.finish()
    finally:
        gz.close()
    return PackResult(digest, gz.size, files, directories, content_bytes)
