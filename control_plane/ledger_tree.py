"""The persisted Merkle tree over the ledger's entries (pymerkle, RFC 9162 hashing).

Leaf ``i`` is ``SHA-256(0x00 || line_i)``, where ``line_i`` is the exact stored
bytes of ledger entry ``i`` without its newline; interior nodes are
``SHA-256(0x01 || left || right)``.

The tree keeps every complete, aligned perfect subtree: ``level-KK.bin`` holds
the roots of the subtrees of ``2**K`` leaves, 32 bytes each, in order.  An
append writes one leaf and at most log2(n) parents; a root or a proof reads
O(log n) stored nodes, so neither rebuilds anything on a ledger of a million
entries.  The store is derived data (per machine, under ``.control_plane/``):
:meth:`LedgerTree.reconcile` brings it in line with the ledger after a crash,
and rebuilds it when missing or when it disagrees with the ledger.

:class:`LedgerTree` is a pymerkle ``BaseMerkleTree``: pymerkle's own
``get_root``, ``prove_inclusion`` and ``prove_consistency`` run over the same
store (tests cross-check them); the RFC 9162 proofs we export come from
:func:`control_plane.merkle.inclusion_path` and ``consistency_path``.
"""

from __future__ import annotations

import hmac
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from pymerkle.core import BaseMerkleTree

from control_plane.errors import UsageError
from control_plane.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_path,
    inclusion_path,
    leaf_hash,
    node_hash,
)

_WRITE_BATCH = 4096  # nodes buffered per level while rebuilding


class LedgerTree(BaseMerkleTree):  # type: ignore[misc]
    """Merkle tree over ledger lines, persisted as one file of node hashes per level."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # ``_get_subroot`` below reads the store, which replaces pymerkle's in-memory
        # subroot cache (that one would go stale when reconcile truncates).
        super().__init__("sha256")

    # -- storage --------------------------------------------------------------------

    def _level_path(self, level: int) -> Path:
        return self.directory / f"level-{level:02d}.bin"

    def _unusable(self, path: Path, why: str | None) -> UsageError:
        return UsageError(
            f"the ledger's Merkle store file {path} is unusable: {why}",
            hint=f"delete {self.directory}: it is rebuilt from the ledger",
        )

    def _stat(self, level: int) -> os.stat_result | None:
        """The level file's status, None when absent; refuses a link or a non-file."""
        path = self._level_path(level)
        try:
            status = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unusable(path, exc.strerror) from None
        if not stat.S_ISREG(status.st_mode):  # never followed, truncated or appended to
            raise self._unusable(path, "not a regular file")
        return status

    def _count(self, level: int) -> int:
        status = self._stat(level)
        return 0 if status is None else status.st_size // HASH_SIZE

    def _open(self, level: int, flags: int) -> int:
        """A descriptor on the regular level file, never through a link."""
        path = self._level_path(level)
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise self._unusable(path, exc.strerror) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise self._unusable(path, "not a regular file")
        return fd

    def _read(self, level: int, index: int, count: int = 1) -> bytes:
        with os.fdopen(self._open(level, os.O_RDONLY), "rb") as handle:
            handle.seek(index * HASH_SIZE)
            data = handle.read(count * HASH_SIZE)
        if len(data) != count * HASH_SIZE:
            raise ValueError(f"Merkle store: level {level} has no node {index + count - 1}")
        return data

    def _append_nodes(self, level: int, data: bytes) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unusable(self.directory, exc.strerror) from None
        fd = self._open(level, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def _truncate(self, level: int, count: int) -> None:
        status = self._stat(level)
        if status is not None and status.st_size != count * HASH_SIZE:
            os.truncate(self._level_path(level), count * HASH_SIZE)

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except OSError as exc:
            raise self._unusable(path, exc.strerror) from None

    # -- pymerkle's storage interface (indices from 1 where pymerkle says so) ------------

    def _encode_entry(self, data: bytes) -> bytes:
        return data

    def _store_leaf(self, data: bytes, digest: bytes) -> int:
        size = self._count(0)
        self._append_nodes(0, digest)
        size += 1
        level, node = 0, digest
        # Each trailing one bit of the new size completes one more perfect subtree.
        while size >> level & 1 == 0:
            level += 1
            index = (size >> level) - 1
            left = self._read(level - 1, 2 * index)
            node = node_hash(left, node)
            self._append_nodes(level, node)
        return size

    def _get_leaf(self, index: int) -> bytes:
        return self._read(0, index - 1)

    def _get_leaves(self, offset: int, width: int) -> list[bytes]:
        data = self._read(0, offset, width)
        return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]

    def _get_size(self) -> int:
        return self._count(0)

    def _get_subroot(self, offset: int, width: int) -> bytes:
        return self.perfect_root(offset, width.bit_length() - 1)

    # -- public ----------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of leaves stored."""
        return self._count(0)

    def append_line(self, line: bytes) -> int:
        """Append the leaf for one stored ledger line; return the new size."""
        index: int = self.append_entry(line)
        return index

    def last_leaf(self) -> bytes | None:
        """The newest leaf hash, or None when empty."""
        size = self.size
        return None if size == 0 else self._read(0, size - 1)

    def perfect_root(self, start: int, level: int) -> bytes:
        """Root of the perfect subtree of ``2**level`` leaves starting at leaf ``start``."""
        width = 1 << level
        if start % width == 0 and start // width < self._count(level):
            return self._read(level, start // width)
        if level == 0:
            return self._read(0, start)
        half = width >> 1
        return node_hash(
            self.perfect_root(start, level - 1), self.perfect_root(start + half, level - 1)
        )

    def range_root(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]): the right fold of the range's perfect subtrees, largest first."""
        if start == end:
            return EMPTY_ROOT
        roots: list[bytes] = []
        position, width = start, end - start
        for level in reversed(range(width.bit_length())):
            if width >> level & 1:
                roots.append(self.perfect_root(position, level))
                position += 1 << level
        result = roots.pop()
        while roots:
            result = node_hash(roots.pop(), result)
        return result

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (all of them by default).

        Raises:
            ValueError: ``size`` is larger than the tree.
        """
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"no tree of size {size}: the ledger has {self.size} entries")
        return self.range_root(0, size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion path of leaf ``index`` (from 0) in the tree of ``size``.

        Raises:
            UsageError: the index or size is out of range.
        """
        return inclusion_path(index, size, self.range_root)

    def consistency(self, old_size: int, size: int) -> list[bytes]:
        """RFC 9162 consistency path from the tree of ``old_size`` to that of ``size``.

        Raises:
            UsageError: the sizes are out of range.
        """
        return consistency_path(old_size, size, self.range_root)

    # -- keeping the store in line with the ledger --------------------------------------

    def reconcile(
        self,
        entry_count: int,
        tail: Callable[[int], list[bytes]],
        every_line: Callable[[], Iterable[bytes]],
    ) -> str | None:
        """Make the store hold exactly the ledger's ``entry_count`` leaves; say what was fixed.

        ``tail(k)`` returns the ledger's last ``k`` lines; ``every_line()`` all of them.
        A store that is ahead is truncated; one a few entries behind is extended from
        the tail; anything else (missing, far behind, or disagreeing with the ledger's
        newest lines) is rebuilt from the whole ledger.
        """
        size = self.size
        if size > entry_count:
            self._truncate_to(entry_count)
            size = entry_count
        behind = entry_count - size
        if size > 0 and behind <= 64:
            lines = tail(behind + 1)
            stored = self.last_leaf()
            if stored is not None and hmac.compare_digest(stored, leaf_hash(lines[0])):
                self._repair_levels(size)
                for line in lines[1:]:
                    self.append_line(line)
                if behind:
                    return f"ledger: Merkle store caught up {behind} entries"
                return None
        if size == 0 and entry_count == 0:
            return None
        self.rebuild(every_line())
        return f"ledger: rebuilt the Merkle store over {entry_count} entries"

    def _truncate_to(self, size: int) -> None:
        level = 0
        while os.path.lexists(self._level_path(level)):
            self._truncate(level, size >> level)
            level += 1

    def _repair_levels(self, size: int) -> None:
        """Drop torn or surplus nodes and recompute missing parents (after a crash)."""
        self._truncate(0, size)
        level = 1
        while size >> level:
            have, want = self._count(level), size >> level
            if have > want:
                self._truncate(level, want)
            elif have < want:
                self._truncate(level, have)
                children = self._read(level - 1, 2 * have, 2 * (want - have))
                parents = b"".join(
                    node_hash(
                        children[i : i + HASH_SIZE], children[i + HASH_SIZE : i + 2 * HASH_SIZE]
                    )
                    for i in range(0, len(children), 2 * HASH_SIZE)
                )
                self._append_nodes(level, parents)
            level += 1
        while os.path.lexists(self._level_path(level)):
            self._unlink(self._level_path(level))
            level += 1

    def rebuild(self, lines: Iterable[bytes]) -> None:
        """Replace the store with the tree over ``lines``, streaming (bounded memory)."""
        for path in self.directory.glob("level-*.bin"):
            self._unlink(path)
        pending: list[list[bytes]] = []  # per level: nodes not yet written
        carry: list[bytes | None] = []  # per level: a left child waiting for its sibling

        def push(level: int, node: bytes) -> None:
            while True:
                if len(pending) <= level:
                    pending.append([])
                    carry.append(None)
                pending[level].append(node)
                if len(pending[level]) >= _WRITE_BATCH:
                    self._append_nodes(level, b"".join(pending[level]))
                    pending[level].clear()
                left = carry[level]
                if left is None:
                    carry[level] = node
                    return
                carry[level] = None
                node = node_hash(left, node)
                level += 1

        for line in lines:
            push(0, leaf_hash(line))
        for level, nodes in enumerate(pending):
            if nodes:
                self._append_nodes(level, b"".join(nodes))
