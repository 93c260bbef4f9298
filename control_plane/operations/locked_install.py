"""``install --locked``: install exactly what ``control_plane.lock`` pins, and nothing else."""

from __future__ import annotations

from control_plane.dependencies import install_order
from control_plane.errors import ConflictError, UsageError
from control_plane.lockfile import LOCK_NAME, Drift, DriftKind, compute_drift
from control_plane.operations import installing, locking
from control_plane.operations.results import ChangeResult, PackageChange
from control_plane.operations.session import Session

# Drift that no --force can override here: installing would not give what the lock pins.
_PIN_BROKEN = frozenset(
    {DriftKind.REGISTRY_CHANGED, DriftKind.ARCHIVE_CHANGED, DriftKind.ARCHIVE_MISSING}
)


def _count(drift: list[Drift]) -> str:
    return f"{drift[0]} ({len(drift)} finding{'s' if len(drift) != 1 else ''} in all)"


def install_locked(session: Session, *, force: bool, dry_run: bool) -> ChangeResult:
    """See ``GateOperations.install_locked``."""
    lock = locking.read_lock(session)
    if lock is None:
        raise UsageError(
            f"install --locked needs {LOCK_NAME}, and this root has none",
            hint="cpctl lock writes it from the installed state",
        )
    packages = session.packages()
    drift = compute_drift(lock, locking.observe(session, lock, packages))
    broken = [
        item
        for item in drift
        if item.kind in _PIN_BROKEN
        or (item.kind is DriftKind.NOT_INSTALLED and item.package not in packages)
    ]
    if broken:
        raise ConflictError(
            f"install --locked: the registry or store no longer offers what the lock pins: {_count(broken)}",
            hint="cpctl drift lists every finding",
        )
    other = [item for item in drift if item.kind is not DriftKind.NOT_INSTALLED]
    if other and not force:
        raise ConflictError(
            f"the root has drifted from {LOCK_NAME}: {_count(other)}",
            hint="cpctl drift lists every finding; --force proceeds anyway",
        )
    if other:
        session.warnings.append(
            f"--force: proceeding despite drift from {LOCK_NAME}: {_count(other)}"
        )
    pending = tuple(
        package.id for package in lock.packages if packages[package.id].installed_digest is None
    )
    if not pending:
        unchanged = tuple(
            PackageChange(
                package.id, package.version, package.digest, package.output_type, "", "unchanged"
            )
            for package in lock.packages
        )
        return ChangeResult(
            action="install", packages=unchanged, dry_run=dry_run, warnings=tuple(session.warnings)
        )
    pinned = lock.by_id()
    extra = [
        pid
        for pid in install_order(pending, packages)
        if pid not in pinned and packages[pid].installed_digest is None
    ]
    if extra:
        raise ConflictError(
            f"install --locked: the locked packages need {', '.join(extra)}, which the lock does not pin",
            hint="install it, then cpctl lock; or fix the lock's dependencies",
        )
    return installing._install_closure(  # the one install path, shared
        session,
        packages,
        LOCK_NAME,
        force=force,
        dry_run=dry_run,
        action="install",
        targets=pending,
    )
