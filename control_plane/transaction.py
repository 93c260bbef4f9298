"""Atomic multi-file changes: stage, journal, apply, commit, and crash recovery.

A transaction lives in ``.control_plane/txn/<id>/``: a ``stage/`` directory
holding new file contents and a ``journal.json`` describing every step.  The
journal is written (atomically) before the first change to the tree and
rewritten with ``state: committed`` after the last one; that rewrite is the
commit point.  After a crash, ``recover`` rolls a prepared transaction back
and rolls a committed one forward (finishing its ledger entry and clean-up),
so the root is always either as before or as after.

Replaced files are first hard-linked to a backup name beside them, so the
target path never disappears: readers see the old or the new file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control_plane.errors import UsageError
from control_plane.fsutil import atomic_write_bytes
from control_plane.ledger import Ledger, LedgerRecord, require_record_fields

JOURNAL = "journal.json"
PREPARED = "prepared"
COMMITTED = "committed"


@dataclass
class _Op:
    kind: str  # "put" or "delete"
    target: Path
    staged: Path | None = None
    backup: Path | None = None
    existed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": str(self.target),
            "staged": None if self.staged is None else str(self.staged),
            "backup": None if self.backup is None else str(self.backup),
            "existed": self.existed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Op:
        return cls(
            kind=data["kind"],
            target=_path_from_journal(data["target"]),
            staged=None if data["staged"] is None else _path_from_journal(data["staged"]),
            backup=None if data["backup"] is None else _path_from_journal(data["backup"]),
            existed=bool(data["existed"]),
        )


def _path_from_journal(value: object) -> Path:
    """A path read back from a journal; ``ValueError`` unless it is text without a NUL."""
    if not isinstance(value, str) or "\0" in value:
        raise ValueError(f"not a path: {value!r:.80}")
    return Path(value)


@dataclass
class Transaction:
    """One atomic change to the tree; build it with ``put``/``delete``, then ``commit``."""

    directory: Path
    ops: list[_Op] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)
    _planned_dirs: set[Path] = field(default_factory=set)
    # True while the journal on disk is recovery's to finish or undo: abort() leaves it alone.
    _journal_owned_by_recovery: bool = False

    @classmethod
    def begin(cls, transactions_dir: Path) -> Transaction:
        directory = transactions_dir / uuid.uuid4().hex
        (directory / "stage").mkdir(parents=True)
        return cls(directory=directory)

    @property
    def id(self) -> str:
        return self.directory.name

    @property
    def stage(self) -> Path:
        return self.directory / "stage"

    def _backup_name(self, target: Path) -> Path:
        return target.with_name(f".{target.name}.cp-{self.id[:12]}.bak")

    def _plan_parents(self, target: Path) -> None:
        missing: list[Path] = []
        parent = target.parent
        while parent not in self._planned_dirs and not parent.is_dir():
            if parent.exists() or parent.is_symlink():  # a file or a dangling link
                raise UsageError(f"cannot write {target}: {parent} is not a directory")
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            self._planned_dirs.add(directory)
            self.created_dirs.append(directory)

    def ensure_dir(self, directory: Path) -> None:
        """Create ``directory`` (and missing parents) when the transaction applies."""
        self._plan_parents(directory / "_")

    def put(self, target: Path, staged: Path) -> None:
        """Replace (or create) ``target`` with the staged file ``staged``.

        Raises:
            UsageError: a directory stands where the file goes (nothing applied yet).
        """
        if target.is_dir() and not target.is_symlink():
            raise UsageError(f"cannot write {target}: a directory is in its place")
        existed = target.exists() or target.is_symlink()
        self._plan_parents(target)
        backup = self._backup_name(target) if existed else None
        self.ops.append(_Op("put", target, staged=staged, backup=backup, existed=existed))

    def put_bytes(self, target: Path, data: bytes) -> None:
        """Stage ``data`` and replace ``target`` with it."""
        staged = self.stage / f"_bytes_{len(self.ops)}"
        staged.write_bytes(data)
        self.put(target, staged)

    def delete(self, target: Path) -> None:
        """Remove ``target`` (kept as a backup until the commit point)."""
        self.ops.append(_Op("delete", target, backup=self._backup_name(target), existed=True))

    def _write_journal(self, state: str, record: LedgerRecord | None) -> None:
        journal = {
            "state": state,
            "ops": [op.to_json() for op in self.ops],
            "created_dirs": [str(path) for path in self.created_dirs],
            "ledger": None if record is None else record.to_json(),
        }
        atomic_write_bytes(self.directory / JOURNAL, json.dumps(journal).encode("utf-8"))

    def commit(self, ledger: Ledger, record: LedgerRecord | None) -> None:
        """Apply every step, pass the commit point, append the ledger entry, clean up.

        An error while applying (a full disk, a permission) undoes the steps already
        taken before it propagates; one after the commit point leaves the journal for
        ``recover`` to roll forward.  Either way ``abort`` afterwards is harmless.
        """
        self._write_journal(PREPARED, record)
        self._journal_owned_by_recovery = True
        try:
            for directory in self.created_dirs:
                directory.mkdir(exist_ok=True)
            for op in self.ops:
                _apply(op)
        except BaseException:
            _rollback(self.ops, self.created_dirs)  # if this fails too, recovery has the journal
            self._journal_owned_by_recovery = False
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self._write_journal(COMMITTED, record)
        _finish_committed(self.directory, self.ops, record, ledger)
        self._journal_owned_by_recovery = False

    def abort(self) -> None:
        """Discard a transaction that never reached ``commit`` (a no-op for one whose
        journal is left for recovery)."""
        if not self._journal_owned_by_recovery:
            shutil.rmtree(self.directory, ignore_errors=True)


def _apply(op: _Op) -> None:
    if op.kind == "delete":
        if op.backup is None:
            raise ValueError(f"delete of {op.target} has no backup path")
        op.target.replace(op.backup)
        return
    if op.staged is None:
        raise ValueError(f"put of {op.target} has no staged file")
    if op.backup is not None:
        _link_or_copy(op.target, op.backup)
    try:
        op.staged.replace(op.target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # External targets may sit on another file system: copy beside, then rename.
        beside = op.target.with_name(f".{op.target.name}.cp-new")
        shutil.copyfile(op.staged, beside)
        shutil.copymode(op.staged, beside)
        beside.replace(op.target)
        op.staged.unlink()


def _link_or_copy(source: Path, backup: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        backup.unlink()
    try:
        os.link(source, backup, follow_symlinks=False)
    except OSError:
        # No hard links here: copy to a temporary name first so that a backup,
        # once it exists under its final name, is always complete.
        partial = backup.with_name(backup.name + ".partial")
        shutil.copy2(source, partial, follow_symlinks=False)
        partial.replace(backup)


def _finish_committed(
    directory: Path, ops: list[_Op], record: LedgerRecord | None, ledger: Ledger
) -> None:
    if record is not None and not ledger.ends_with_txn(directory.name):
        ledger.append(record)
    for op in ops:
        if op.backup is not None:
            with contextlib.suppress(FileNotFoundError):
                op.backup.unlink()
    shutil.rmtree(directory, ignore_errors=True)


def _rollback(ops: list[_Op], created_dirs: list[Path]) -> None:
    for op in reversed(ops):
        if op.backup is not None and (op.backup.exists() or op.backup.is_symlink()):
            op.backup.replace(op.target)
        elif op.kind == "put" and not op.existed:
            with contextlib.suppress(FileNotFoundError):
                op.target.unlink()
    for directory in reversed(created_dirs):
        with contextlib.suppress(OSError):
            directory.rmdir()


def recover(transactions_dir: Path, ledger: Ledger) -> list[str]:
    """Finish or undo whatever an interrupted command left; return what was done.

    The caller holds the root lock.

    Raises:
        UsageError: a journal exists but cannot be read (left for a human to inspect).
    """
    messages: list[str] = []
    if not transactions_dir.is_dir():
        return messages
    for directory in sorted(transactions_dir.iterdir()):
        journal_path = directory / JOURNAL
        if not journal_path.exists():
            shutil.rmtree(directory, ignore_errors=True)
            continue
        try:
            journal = json.loads(journal_path.read_text(encoding="utf-8"))
            ops = [_Op.from_json(item) for item in journal["ops"]]
            created = [_path_from_journal(item) for item in journal["created_dirs"]]
            record = None if journal["ledger"] is None else require_record_fields(journal["ledger"])
            state = journal["state"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise UsageError(
                f"cannot read interrupted transaction journal {journal_path}: {exc}"
            ) from exc
        if state == COMMITTED:
            _finish_committed(directory, ops, record, ledger)
            messages.append(f"recovery: completed interrupted transaction {directory.name[:12]}")
        else:
            _rollback(ops, created)
            shutil.rmtree(directory, ignore_errors=True)
            messages.append(f"recovery: rolled back interrupted transaction {directory.name[:12]}")
    return messages
