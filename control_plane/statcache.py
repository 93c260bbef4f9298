"""The stat cache behind ``integrity-check --fast``: which files need not be hashed again.

A full check records, for every governed file it hashed, the file's size,
``mtime_ns``, inode and ``ctime_ns`` as seen just before hashing, and the
digest it got.  A later fast check trusts a digest only when all four fields
are unchanged.  ``ctime`` cannot be set from user space, so a writer who
restores ``mtime`` (``touch -d``) still changes it.

Racy files (as in git): a file written in the same clock tick as it was
statted can change again without any stat field changing.  The cache stores
``taken_at_ns``, a time no later than the first stat; an entry whose
``mtime_ns`` or ``ctime_ns`` is within :data:`RACY_WINDOW_NS` of it (or
later) is never trusted.  Two seconds cover coarse file-system clocks (FAT's
2 s mtime).  Checking ``ctime`` too covers a writer who also resets ``mtime``.

The file is per-machine state (inodes mean nothing elsewhere) and carries a
schema version; anything unexpected in it makes it unusable as a whole.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from control_plane.errors import UsageError

SCHEMA = "control-plane.statcache/1"
CACHE_NAME = "statcache.json"
RACY_WINDOW_NS = 2_000_000_000
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# NamedTuples rather than frozen dataclasses: a cache holds one per governed file
# (100,000 and more), tuples build several times faster, and json encodes them as arrays.
class FileStat(NamedTuple):
    """The four stat fields a cached digest is keyed on."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileStat:
        """The fields of an ``os.stat_result``."""
        return cls(info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns)


class CacheEntry(NamedTuple):
    """What a check saw for one file: its stat before hashing and the digest it got."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int
    sha256: str

    @classmethod
    def of(cls, seen: FileStat, sha256: str) -> CacheEntry:
        """The entry for a file statted as ``seen`` that hashed to ``sha256``."""
        return cls(seen.size, seen.mtime_ns, seen.inode, seen.ctime_ns, sha256)

    @property
    def stat(self) -> FileStat:
        """The stat fields alone."""
        return FileStat(self.size, self.mtime_ns, self.inode, self.ctime_ns)


@dataclass(frozen=True)
class StatCache:
    """Root-relative POSIX path -> :class:`CacheEntry`, and when the stats began to be taken."""

    taken_at_ns: int
    entries: Mapping[str, CacheEntry]

    def trusted_digest(self, path: str, current: FileStat) -> str | None:
        """The cached digest of ``path`` when it may be trusted for ``current``, else None.

        Trusted means: an entry exists, all four stat fields are equal, and the
        file's mtime and ctime are older than the racy window before ``taken_at_ns``.
        """
        entry = self.entries.get(path)
        if entry is None or entry[:4] != current:
            return None
        if max(current.mtime_ns, current.ctime_ns) >= self.taken_at_ns - RACY_WINDOW_NS:
            return None
        return entry.sha256


def _is_count(value: object) -> bool:
    # bool is an int subclass; type() excludes it without a second isinstance call.
    return type(value) is int and value >= 0


def _reject_constant(name: str) -> Any:
    raise UsageError(f"stat cache holds the non-JSON constant {name}")


def parse_statcache(data: bytes) -> StatCache:
    """Parse the bytes :func:`dump_statcache` wrote.

    Raises:
        UsageError: not UTF-8 JSON, a different schema, or any malformed entry
            (wrong types, negative numbers, a digest that is not 64 lower-case hex).
    """
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"stat cache is not valid JSON: {error}") from None
    except RecursionError:
        raise UsageError("stat cache is not valid JSON: nested too deeply") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise UsageError(f"stat cache is not a {SCHEMA} document")
    taken_at_ns = document.get("taken_at_ns")
    if not _is_count(taken_at_ns):
        raise UsageError("stat cache has no valid taken_at_ns")
    raw_entries = document.get("entries")
    if not isinstance(raw_entries, dict):
        raise UsageError("stat cache has no entries object")
    entries: dict[str, CacheEntry] = {}
    hex64 = _HEX64.fullmatch
    for path, value in raw_entries.items():
        if not (
            type(value) is list
            and len(value) == 5
            and _is_count(value[0])
            and _is_count(value[1])
            and _is_count(value[2])
            and _is_count(value[3])
            and type(value[4]) is str
            and hex64(value[4])
        ):
            raise UsageError(
                f"stat cache entry for {path!r} is not [size, mtime_ns, inode, ctime_ns, sha256]"
            )
        entries[path] = CacheEntry._make(value)
    return StatCache(taken_at_ns, entries)  # type: ignore[arg-type]


def dump_statcache(cache: StatCache) -> bytes:
    """Compact, deterministic JSON for ``cache`` (paths sorted)."""
    document = {
        "schema": SCHEMA,
        "taken_at_ns": cache.taken_at_ns,
        "entries": dict(sorted(cache.entries.items())),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def _bad_component(part: str) -> bool:
    return part in ("", ".", "..")


class _DirectoryChain:
    """Descriptors of the directories leading to the current one, opened with ``O_NOFOLLOW``.

    Only the current chain stays open, so descriptors stay bounded by the depth.
    """

    def __init__(self, root_fd: int) -> None:
        self._root_fd = root_fd
        self._names: list[str] = []
        self._fds: list[int] = []

    def open(self, parts: list[str]) -> int:
        common = 0
        limit = min(len(parts), len(self._names))
        while common < limit and parts[common] == self._names[common]:
            common += 1
        while len(self._fds) > common:
            os.close(self._fds.pop())
            self._names.pop()
        for name in parts[common:]:
            fd = os.open(name, _DIR_FLAGS, dir_fd=self._fds[-1] if self._fds else self._root_fd)
            self._names.append(name)
            self._fds.append(fd)
        return self._fds[-1] if self._fds else self._root_fd

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
        self._names.clear()


def stat_regular_files(root: Path, rel_paths: Iterable[str]) -> dict[str, FileStat]:
    """Stat each root-relative path without following a symbolic link anywhere on it.

    Only regular files appear in the result; a path that is missing, passes
    through a symlink, is not a regular file, is malformed or cannot be statted
    is left out, so the caller hashes it and reports it the usual way.  Paths
    given in sorted order open each directory about once.

    Raises:
        UsageError: ``root`` cannot be opened as a directory.
    """
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise UsageError(f"cannot open root {str(root)!r}: {error.strerror}") from None
    found: dict[str, FileStat] = {}
    chain = _DirectoryChain(root_fd)
    parent: str | None = None
    parent_fd: int | None = None
    try:
        for rel_path in rel_paths:
            head, _, name = rel_path.rpartition("/")
            if head != parent:
                parent = head
                parts = head.split("/") if head else []
                parent_fd = None
                if not any(_bad_component(part) for part in parts) and "\x00" not in head:
                    try:
                        parent_fd = chain.open(parts)
                    except OSError:
                        parent_fd = None
            if parent_fd is None or _bad_component(name) or "\x00" in name:
                continue
            try:
                info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found[rel_path] = FileStat(
                    info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns
                )
    finally:
        chain.close()
        os.close(root_fd)
    return found
