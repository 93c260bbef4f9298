"""Single-pass reading of an untrusted tar.gz: hash, inflate, inspect, then hand over content.

The raw bytes are hashed exactly as they are parsed, inflated with bounded
output, and parsed by a small tar reader that knows only what a package
needs: regular files, directories, and the pax / GNU long-name headers that
carry long names.  Every member is checked before any of its content reaches
the sink; the first broken rule refuses the whole archive.  When the caller
expects a digest, a digest mismatch outranks any other refusal.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from control_plane.archive.limits import RATIO_GRACE_BYTES, ArchiveLimits
from control_plane.archive.names import NameRegistry, name_problem, show, strip_member_prefix
from control_plane.archive.sink import MemberSink
from control_plane.archive.tarformat import (
    BLOCK,
    DIRTYPE,
    FILE_TYPES,
    META_TYPES,
    REFUSED_TYPES,
    ZERO_BLOCK,
    check_header,
    header_name,
    parse_number,
    parse_pax_records,
)
from control_plane.digests import digests_equal
from control_plane.errors import DigestMismatchError, UnsafeArchiveError, UsageError

_RAW_CHUNK = 256 * 1024
_MAX_OUT = 1 << 20
_MAX_META_BYTES = 1 << 20  # one pax header's records
_MAX_META_RUN = 8  # extended headers in a row before a member
_GLOBAL_FORBIDDEN = (b"path", b"size", b"linkpath")


@dataclass(frozen=True)
class MemberRecord:
    """One member as it was accepted: name, kind, size and content digest."""

    name: str
    is_dir: bool
    size: int
    sha256: str | None
    executable: bool


@dataclass(frozen=True)
class ArchiveScan:
    """Everything ``read_archive`` learnt in its one pass over an archive."""

    sha256: str
    compressed_size: int
    members: tuple[MemberRecord, ...]
    content_bytes: int


def _unsafe(name: str, rule: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"unsafe archive member {show(name)}: {rule}")


class _Inflater:
    """Raw archive bytes -> decompressed chunks, hashing every raw byte and bounding the ratio."""

    def __init__(self, source: BinaryIO, limits: ArchiveLimits) -> None:
        self._source = source
        self._max_ratio = limits.max_ratio
        self._zlib = zlib.decompressobj(31)
        self.digest = hashlib.sha256()
        self.raw_size = 0
        self.out_size = 0

    def _read_raw(self) -> bytes:
        try:
            raw = self._source.read(_RAW_CHUNK)
        except OSError as exc:
            raise UsageError(f"cannot read the archive: {exc.strerror or exc}") from exc
        self.raw_size += len(raw)
        self.digest.update(raw)
        return raw

    def read(self) -> bytes:
        """The next decompressed chunk; b"" once the gzip stream has ended."""
        inflate = self._zlib
        while not inflate.eof:
            tail = inflate.unconsumed_tail
            if not tail:
                started = self.raw_size > 0
                tail = self._read_raw()
                if not started and not tail.startswith(b"\x1f\x8b"[: max(1, len(tail))]):
                    raise UnsafeArchiveError("not a gzip archive")
                if not tail:
                    raise UnsafeArchiveError("truncated archive: the gzip stream ends early")
            try:
                data = inflate.decompress(tail, _MAX_OUT)
            except zlib.error as exc:
                raise UnsafeArchiveError(f"corrupt gzip data: {exc}") from None
            if data:
                self.out_size += len(data)
                consumed = self.raw_size - len(inflate.unconsumed_tail) - len(inflate.unused_data)
                if self.out_size > RATIO_GRACE_BYTES and self.out_size > self._max_ratio * consumed:
                    raise UnsafeArchiveError(
                        f"archive expands more than {self._max_ratio:g} times (a compression bomb?)"
                    )
                return data
        return b""

    def finish(self) -> None:
        """Hash what is left of the source; refuse anything after the gzip stream."""
        trailing = bool(self._zlib.unused_data)
        if self.drain() or trailing:
            raise UnsafeArchiveError("unexpected data after the end of the gzip stream")

    def drain(self) -> bool:
        """Hash the rest of the source without inflating it; True if anything was left."""
        left = False
        while self._read_raw():
            left = True
        return left


class _TarReader:
    """Walks the decompressed tar stream member by member."""

    def __init__(
        self,
        inflater: _Inflater,
        limits: ArchiveLimits,
        sink: MemberSink | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        self._inflater = inflater
        self._limits = limits
        self._sink = sink
        self._progress = progress
        self._buf = b""
        self._pos = 0
        self._names = NameRegistry()
        self.members: list[MemberRecord] = []
        self.content_bytes = 0

    def _fill(self, count: int) -> bool:
        while len(self._buf) - self._pos < count:
            chunk = self._inflater.read()
            if not chunk:
                return False
            self._buf = self._buf[self._pos :] + chunk
            self._pos = 0
        return True

    def _take(self, count: int) -> bytes:
        if not self._fill(count):
            raise UnsafeArchiveError("truncated archive: the tar stream ends inside a member")
        data = self._buf[self._pos : self._pos + count]
        self._pos += count
        return data

    def _stream(
        self, count: int, update: Callable[[memoryview], object], handle: BinaryIO | None
    ) -> None:
        """Hash (and write) ``count`` content bytes without gathering them in memory."""
        while count:
            available = len(self._buf) - self._pos
            if not available:
                self._buf = self._inflater.read()
                self._pos = 0
                if not self._buf:
                    raise UnsafeArchiveError(
                        "truncated archive: the tar stream ends inside a member"
                    )
                continue
            step = min(available, count)
            piece = memoryview(self._buf)[self._pos : self._pos + step]
            update(piece)
            if handle is not None:
                handle.write(piece)
            self._pos += step
            count -= step
            if self._progress is not None:
                self._progress(step)

    def _meta(self, typeflag: bytes, size: int, pending: dict[bytes, bytes]) -> None:
        limit = self._limits.max_name_bytes + BLOCK if typeflag == b"L" else _MAX_META_BYTES
        if size > limit:
            raise UnsafeArchiveError(f"extended header of {size} bytes is too large")
        data = self._take(size)
        self._take(-size % BLOCK)
        if typeflag == b"L":
            pending[b"L"] = data.split(b"\x00", 1)[0]
            return
        records = parse_pax_records(data)
        for key in records:
            if key.startswith(b"GNU.sparse."):
                raise UnsafeArchiveError("archive holds a GNU sparse file")
            if key == b"linkpath" or (typeflag == b"g" and key in _GLOBAL_FORBIDDEN):
                raise UnsafeArchiveError(f"pax header sets {key.decode('ascii', 'replace')!r}")
        if typeflag == b"x":
            pending.update(records)

    def run(self) -> None:
        limits = self._limits
        entries = 0
        pending: dict[bytes, bytes] = {}
        run_of_meta = 0
        while True:
            if not self._fill(BLOCK):
                raise UnsafeArchiveError("truncated archive: no end-of-archive marker")
            header = self._buf[self._pos : self._pos + BLOCK]
            self._pos += BLOCK
            if header == ZERO_BLOCK:
                if pending:
                    raise UnsafeArchiveError("truncated archive: extended header without a member")
                self._expect_zeros()
                return
            check_header(header)
            typeflag = header[156:157]
            size = parse_number(header[124:136], "size")
            if typeflag in META_TYPES:
                run_of_meta += 1
                if run_of_meta > _MAX_META_RUN:
                    raise UnsafeArchiveError("too many extended headers in a row")
                self._meta(typeflag, size, pending)
                continue
            run_of_meta = 0
            raw_name = pending.get(b"path", pending.get(b"L"))
            if raw_name is None:
                raw_name = header_name(header)
            if b"size" in pending:
                size_text = pending[b"size"]
                if not size_text.isdigit() or len(size_text) > 20:
                    raise UnsafeArchiveError("malformed pax header: bad size")
                size = int(size_text)
            pending = {}
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                shown = raw_name.decode("utf-8", "backslashreplace")
                raise _unsafe(shown, "name is not valid UTF-8") from None
            entries += 1
            if entries > limits.max_entries:
                raise _unsafe(name, f"more than {limits.max_entries} entries")
            is_dir = typeflag == DIRTYPE
            if not is_dir and typeflag not in FILE_TYPES:
                kind = REFUSED_TYPES.get(typeflag, f"unknown member type {typeflag!r}")
                raise _unsafe(name, f"{kind}; only regular files and directories are allowed")
            self._member(name, is_dir, size, parse_number(header[100:108], "mode"))

    def _member(self, raw: str, is_dir: bool, size: int, mode: int) -> None:
        limits = self._limits
        name = strip_member_prefix(raw, is_dir=is_dir)
        if name is None:
            if size:
                raise _unsafe(raw, "directory with content")
            return
        problem = name_problem(name, limits)
        if problem is not None:
            raise _unsafe(raw, problem)
        if mode & 0o6000:
            raise _unsafe(name, "setuid or setgid bit")
        if is_dir and size:
            raise _unsafe(name, "directory with content")
        if size > limits.max_file_bytes:
            raise _unsafe(name, f"{size} bytes, over the per-file limit of {limits.max_file_bytes}")
        if self.content_bytes + size > limits.max_total_bytes:
            raise _unsafe(
                name, f"content exceeds the archive limit of {limits.max_total_bytes} bytes"
            )
        problem = self._names.add(name, is_dir=is_dir)
        if problem is not None:
            raise _unsafe(name, problem)
        if is_dir:
            if self._sink is not None:
                self._sink.directory(name)
            self.members.append(MemberRecord(name, True, 0, None, False))
            return
        executable = bool(mode & 0o111)
        self.content_bytes += size
        digest = hashlib.sha256()
        handle = self._sink.file(name, executable) if self._sink is not None else None
        try:
            self._stream(size, digest.update, handle)
        except OSError as exc:
            raise UsageError(f"cannot write {show(name)}: {exc.strerror or exc}") from exc
        finally:
            if handle is not None:
                handle.close()
        self._take(-size % BLOCK)
        self.members.append(MemberRecord(name, False, size, digest.hexdigest(), executable))

    def _expect_zeros(self) -> None:
        rest = self._buf[self._pos :]
        while rest:
            if rest.strip(b"\x00"):
                raise UnsafeArchiveError("unexpected data after the tar end-of-archive marker")
            rest = self._inflater.read()


def read_archive(
    source: BinaryIO,
    *,
    limits: ArchiveLimits,
    expected_sha256: str | None = None,
    sink: MemberSink | None = None,
    progress: Callable[[int], None] | None = None,
) -> ArchiveScan:
    """Inspect (and, given a ``sink``, unpack) a tar.gz in one pass over ``source``.

    Every member is checked before its content reaches ``sink``; members
    before a refused one may already be in the sink.  ``progress`` receives
    counts of decompressed content bytes.

    Raises:
        DigestMismatchError: ``expected_sha256`` is given and the raw bytes hash
            to something else (this outranks every other refusal).
        UnsafeArchiveError: not gzip, truncated or corrupt, trailing data, a
            member that is not a regular file or directory, an unsafe or
            colliding name, setuid/setgid bits, or a size/count/ratio limit.
        UsageError: the source cannot be read or the sink cannot be written.
    """
    inflater = _Inflater(source, limits)
    reader = _TarReader(inflater, limits, sink, progress)
    try:
        reader.run()
        inflater.finish()
    except UnsafeArchiveError as refusal:
        if expected_sha256 is not None:
            inflater.drain()
            _check_digest(inflater.digest.hexdigest(), expected_sha256, cause=refusal)
        raise
    actual = inflater.digest.hexdigest()
    if expected_sha256 is not None:
        _check_digest(actual, expected_sha256, cause=None)
    return ArchiveScan(actual, inflater.raw_size, tuple(reader.members), reader.content_bytes)


def _check_digest(actual: str, expected: str, *, cause: Exception | None) -> None:
    if not digests_equal(actual, expected):
        raise DigestMismatchError(
            f"archive digest sha256:{actual} does not match expected sha256:{expected}"
        ) from cause
