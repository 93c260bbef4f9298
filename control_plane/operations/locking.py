"""``cpctl lock`` and ``cpctl drift``; the drift guard and lock rewrite install/update/remove use.

The lock is built from what the registries record as installed (never from
what happens to be on disk), then the disk, the registry rows and the store
are compared with it.  While ``control_plane.lock`` exists, install, update
and remove refuse to run on a drifted root unless forced, and rewrite the lock
in the same transaction as their change.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from control_plane.digests import format_digest, parse_digest, sha256_file
from control_plane.errors import ConflictError, UsageError
from control_plane.hashing import hash_files
from control_plane.keystore import StoredKey, identify_signer
from control_plane.lockfile import (
    LOCK_NAME,
    Drift,
    LockedFile,
    LockedPackage,
    Lockfile,
    Observed,
    build_lock,
    compute_drift,
    parse_lock,
    serialise_lock,
)
from control_plane.operations.results import Result
from control_plane.operations.session import Session
from control_plane.operations.signatures import key_store, signature_path
from control_plane.registry import FileRow, OutputType, PackageRow
from control_plane.signing import SignatureError, decode_signature
from control_plane.transaction import Transaction

ExternalFiles = Mapping[str, Mapping[str, str]]  # package id -> absolute path -> hex sha256


@dataclass(frozen=True)
class LockResult(Result):
    """``cpctl lock``: the lock written (or already current)."""

    SCHEMA: ClassVar[str] = "control-plane.lock-write/1"
    path: str
    changed: bool
    packages: int
    files: int
    sha256: str

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "changed": self.changed,
            "packages": self.packages,
            "files": self.files,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class DriftResult(Result):
    """``cpctl drift``: every difference between the root and its lock."""

    SCHEMA: ClassVar[str] = "control-plane.drift/1"
    path: str
    lock_present: bool
    lock_required: bool
    packages: int
    files_checked: int
    drift: tuple[Drift, ...]

    @property
    def ok(self) -> bool:
        return not self.drift and (self.lock_present or not self.lock_required)

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "lock_present": self.lock_present,
            "lock_required": self.lock_required,
            "packages": self.packages,
            "files_checked": self.files_checked,
            "drift": [item.as_dict() for item in self.drift],
        }


def lock_path(session: Session) -> Path:
    return session.layout.root / LOCK_NAME


def read_lock(session: Session) -> Lockfile | None:
    """The root's lock, or None when there is none.

    Raises:
        UsageError: the lock exists but is not a regular file, cannot be read or is invalid.
    """
    path = lock_path(session)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(f"{LOCK_NAME} is not a regular file", hint="remove it, then cpctl lock")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise UsageError(f"cannot read {LOCK_NAME}: {error.strerror}") from None
    return parse_lock(data)


def signer(session: Session, row: PackageRow, keys: Sequence[StoredKey]) -> str | None:
    """The key id whose signature (``NAME.tar.gz.sig``) covers ``row``'s installed digest.

    None when the archive is unsigned, its signature file is unreadable or
    malformed, or no stored key (trusted or revoked) made it: the lock then omits
    ``signer``.  Install enforces the signature policy; the lock only records who signed.
    """
    digest = row.installed_digest
    sig_path = signature_path(session.layout.root / row.source)
    if digest is None or sig_path.is_symlink() or not sig_path.is_file():
        return None
    try:
        signature = decode_signature(sig_path.read_bytes(), session.layout.relative(sig_path))
    except (OSError, SignatureError):
        return None
    found = identify_signer(keys, bytes.fromhex(parse_digest(digest)), signature)
    return None if found is None else found.key_id


def _ledgered_external_files(session: Session, package_id: str) -> Mapping[str, str]:
    # External deliveries are in no registry; removing.py reads them from the ledger.
    from control_plane.operations.removing import _external_files  # noqa: PLC0415 (cycle)

    return _external_files(session, package_id)


def current_lock(
    session: Session,
    packages: Mapping[str, PackageRow],
    files: Mapping[str, FileRow],
    external: ExternalFiles | None = None,
) -> Lockfile:
    """The lock of what the registries record as installed.

    ``external`` gives the files of external packages this very transaction
    installs (the ledger does not have them yet).
    """
    installed = {key: row for key, row in packages.items() if row.installed_digest is not None}
    keys = key_store(session.layout.root).load() if installed else ()
    owned: dict[str, list[LockedFile]] = defaultdict(list)
    for file_row in files.values():
        if file_row.sha256 and file_row.owner in installed:
            owned[file_row.owner].append(LockedFile(file_row.path, file_row.sha256))
    locked = []
    for row in installed.values():
        if row.output_type is OutputType.EXTERNAL:
            delivered = (external or {}).get(row.id)
            if delivered is None:
                delivered = _ledgered_external_files(session, row.id)
            owned[row.id] = [LockedFile(path, digest) for path, digest in delivered.items()]
        locked.append(
            LockedPackage(
                id=row.id,
                version=str(row.installed_version),
                digest=str(row.installed_digest),
                archive=row.source,
                output_type=row.output_type.value,
                files=tuple(owned[row.id]),
                signer=signer(session, row, keys),
            )
        )
    return build_lock(locked)


def _hash_external(paths: list[str]) -> dict[str, str]:
    digests: dict[str, str] = {}
    for text in paths:
        path = Path(text)
        if path.is_symlink() or not path.exists():
            continue
        try:
            digests[text] = sha256_file(path) if path.is_file() else ""
        except OSError:
            digests[text] = ""
    return digests


def observe(session: Session, lock: Lockfile, packages: Mapping[str, PackageRow]) -> Observed:
    """Hash what ``lock`` pins: installed packages' files and every locked archive."""
    inside: list[str] = []
    outside: list[str] = []
    for package in lock.packages:
        row = packages.get(package.id)
        if row is None or row.installed_digest is None:
            continue
        for item in package.files:
            (outside if PurePosixPath(item.path).is_absolute() else inside).append(item.path)
    archives = sorted({package.archive for package in lock.packages})
    hashed = hash_files(session.layout.root, [*inside, *archives])
    found = dict.fromkeys(hashed.unreadable, "")
    found.update(hashed.digests)
    found.update(_hash_external(outside))
    return Observed(
        rows=packages,
        files={path: found[path] for path in [*inside, *outside] if path in found},
        archives={path: found[path] for path in archives if path in found},
    )


def _summary(drift: tuple[Drift, ...]) -> str:
    count = len(drift)
    return f"{drift[0]} ({count} finding{'s' if count != 1 else ''} in all)"


def refuse_drift(session: Session, *, force: bool) -> None:
    """Fail closed (exit 4) when the root has drifted from its lock, unless ``force``.

    A root without a lock passes.  Under ``force`` the drift becomes a warning.

    Raises:
        ConflictError: the root has drifted from ``control_plane.lock``.
        UsageError: the lock is unreadable or invalid.
    """
    lock = read_lock(session)
    if lock is None:
        return
    packages = session.packages()
    drift = compute_drift(lock, observe(session, lock, packages))
    if not drift:
        return
    if force:
        session.warnings.append(
            f"--force: proceeding despite drift from {LOCK_NAME}: {_summary(drift)}"
        )
        return
    raise ConflictError(
        f"the root has drifted from {LOCK_NAME}: {_summary(drift)}",
        hint="cpctl drift lists every finding; --force proceeds anyway",
    )


def stage_lock(
    session: Session,
    txn: Transaction,
    packages: Mapping[str, PackageRow],
    files: Mapping[str, FileRow],
    external: ExternalFiles | None = None,
) -> None:
    """Add the rewritten lock to ``txn`` (the change's new registries), when the root has a lock."""
    path = lock_path(session)
    if not path.is_file() or path.is_symlink():
        return
    data = serialise_lock(current_lock(session, packages, files, external))
    if path.read_bytes() != data:
        txn.put_bytes(path, data)


def write_lock(session: Session) -> LockResult:
    """See ``GateOperations.lock``."""
    path = lock_path(session)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(f"{LOCK_NAME} is not a regular file", hint="remove it first")
    packages = session.packages()
    lock = current_lock(session, packages, session.files())
    drift = compute_drift(lock, observe(session, lock, packages))
    if drift:
        raise ConflictError(
            f"refusing to lock a state that does not match its own records: {_summary(drift)}",
            hint="cpctl update (or cpctl hash-update an intended edit) first; cpctl drift after "
            "a first lock lists every finding",
        )
    data = serialise_lock(lock)
    try:
        previous = path.read_bytes() if path.exists() else None
    except OSError as error:
        raise UsageError(f"cannot read {LOCK_NAME}: {error.strerror}") from None
    result = LockResult(
        path=LOCK_NAME,
        changed=previous != data,
        packages=len(lock.packages),
        files=sum(len(package.files) for package in lock.packages),
        sha256=hashlib.sha256(data).hexdigest(),
        warnings=tuple(session.warnings),
    )
    if previous == data:
        return result
    digests = {"new": format_digest(result.sha256)}
    if previous is not None:
        digests["old"] = format_digest(hashlib.sha256(previous).hexdigest())
    txn = session.begin()
    try:
        txn.put_bytes(path, data)
        record = session.record(
            LOCK_NAME,
            digests=digests,
            details={
                "packages": [f"{package.id}@{package.version}" for package in lock.packages],
                "files": result.files,
            },
            txn=txn,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return result


def drift_report(session: Session, *, require_lock: bool) -> DriftResult:
    """See ``GateOperations.drift``."""
    lock = read_lock(session)
    if lock is None:
        note = f"no {LOCK_NAME} in this root: nothing to compare (cpctl lock writes one)"
        session.warnings.append(note)
        return DriftResult(
            path=LOCK_NAME,
            lock_present=False,
            lock_required=require_lock,
            packages=0,
            files_checked=0,
            drift=(),
            warnings=tuple(session.warnings),
        )
    packages = session.packages()
    observed = observe(session, lock, packages)
    installed = [
        package
        for package in lock.packages
        if package.id in packages and packages[package.id].installed_digest is not None
    ]
    return DriftResult(
        path=LOCK_NAME,
        lock_present=True,
        lock_required=require_lock,
        packages=len(lock.packages),
        files_checked=sum(len(package.files) for package in installed),
        drift=compute_drift(lock, observed),
        warnings=tuple(session.warnings),
    )
