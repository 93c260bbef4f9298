"""remove: delete an installed package's files and drop its rows, in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from control_plane.errors import ConflictError
from control_plane.operations import locking
from control_plane.operations.hints import unknown_package
from control_plane.operations.placement import Plan, destination, modified_targets
from control_plane.operations.results import ChangeResult, PackageChange
from control_plane.operations.session import Session
from control_plane.registry import FileRow, validate_package_id

_SHOWN = 5  # modified files named in one error line


def _external_files(session: Session, package_id: str) -> dict[str, str]:
    """The files of an external install, from its newest ledger entry."""
    found: dict[str, str] = {}
    for entry in session.ledger.entries():
        if entry.fields["result"] != "ok" or entry.fields["action"] not in (
            "install",
            "update",
            "remove",
        ):
            continue
        for detail in entry.fields["details"].get("packages", []):
            if isinstance(detail, dict) and detail.get("id") == package_id:
                found = {item["path"]: item["sha256"] for item in detail.get("paths", [])}
    return found


def remove(session: Session, package_id: str, *, force: bool, dry_run: bool) -> ChangeResult:
    """See ``GateOperations.remove``."""
    validate_package_id(package_id)
    packages = session.packages()
    row = packages.get(package_id)
    if row is None:
        raise unknown_package(package_id, packages)
    locking.refuse_drift(session, force=force)
    base, external = destination(session, row)
    if row.installed_digest is None:
        session.warnings.append(f"{package_id} is not installed; nothing to remove")
        unchanged = PackageChange(
            row.id, str(row.version), row.digest, row.output_type.value, str(base), "unchanged"
        )
        return ChangeResult(
            action="remove",
            packages=(unchanged,),
            dry_run=dry_run,
            warnings=tuple(session.warnings),
        )
    dependants = sorted(
        other.id
        for other in packages.values()
        if other.installed_digest is not None
        and any(dep.package_id == package_id for dep in other.dependencies)
    )
    if dependants and not force:
        raise ConflictError(
            f"{package_id} is needed by installed {', '.join(dependants)}",
            hint="remove those first, or pass --force",
        )
    files = session.files()
    targets = _removal_targets(session, package_id, files, external)
    modified = modified_targets(targets)
    if modified and not force:
        raise ConflictError(
            f"{package_id}: files were modified since install: {', '.join(modified[:_SHOWN])}",
            hint="move your edits away, or pass --force to delete them too",
        )
    plan = Plan(row=row, base=base, external=external, status="removed")
    txn = session.begin()
    try:
        for shown, (target, _digest) in sorted(targets.items()):
            if target.exists() or target.is_symlink():
                txn.delete(target)
                plan.deleted.append(shown)
            files.pop(shown, None)
        if dry_run:
            txn.abort()
            return ChangeResult(
                action="remove",
                packages=(plan.change("planned"),),
                dry_run=True,
                warnings=tuple(session.warnings),
            )
        packages[package_id] = replace(row, installed_version=None, installed_digest=None)
        session.stage_registries(txn, packages=packages, files=files)
        locking.stage_lock(session, txn, packages, files)
        record = session.record(
            package_id,
            digests={package_id: row.installed_digest},
            details={
                "packages": [
                    {
                        "id": package_id,
                        "deleted": len(plan.deleted),
                        "modified": modified,
                        "destination": str(base),
                    }
                ]
            },
            txn=txn,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    _prune_empty_dirs((target for target, _ in targets.values()), stop=base)
    return ChangeResult(
        action="remove", packages=(plan.change(),), warnings=tuple(session.warnings)
    )


def _removal_targets(
    session: Session, package_id: str, files: dict[str, FileRow], external: bool
) -> dict[str, tuple[Path, str]]:
    if external:
        return {
            path: (Path(path), digest)
            for path, digest in _external_files(session, package_id).items()
        }
    root = session.layout.root
    return {
        row.path: (root / row.path, row.sha256) for row in files.values() if row.owner == package_id
    }


def _prune_empty_dirs(targets: Iterable[Path], *, stop: Path) -> None:
    """Remove directories a removal left empty, up to (not including) ``stop``."""
    candidates: set[Path] = set()
    for target in targets:
        candidates.update(parent for parent in target.parents if stop in parent.parents)
    for directory in sorted(candidates, key=lambda path: len(path.parts), reverse=True):
        try:
            directory.rmdir()
        except OSError:
            continue
