"""install, update and remove: plan, stage, check, then commit in one transaction."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath

from control_plane.archive import DirectorySink, MemberRecord, read_archive
from control_plane.dependencies import install_order
from control_plane.digests import parse_digest, sha256_file
from control_plane.errors import ConflictError, UnsafeArchiveError, UsageError
from control_plane.operations import locking, manifest_trust
from control_plane.operations.admission import admit
from control_plane.operations.hints import unknown_package
from control_plane.operations.packing import check_sidecar, store_archive_path
from control_plane.operations.placement import PathGuard, Plan, destination, modified_targets
from control_plane.operations.results import ChangeResult, PackageChange
from control_plane.operations.session import Session
from control_plane.operations.signatures import check_signature
from control_plane.registry import FileRow, PackageRow, file_row_id, validate_package_id
from control_plane.transaction import Transaction
from control_plane.trust_policy import NO_ALLOWANCES, Allowances

_SHOWN = 5  # conflicts named in one error line


def _stage(
    session: Session, txn: Transaction, row: PackageRow, index: int
) -> tuple[tuple[MemberRecord, ...], Path, str | None]:
    # A registry source is root-relative, never relative to the caller's working directory.
    archive = store_archive_path(session, session.layout.root / row.source)
    stage = txn.stage / f"p{index}"
    stage.mkdir()
    expected = parse_digest(row.digest)
    with (
        archive.open("rb") as handle,
        session.progress(f"installing {row.id}", archive.stat().st_size) as advance,
    ):
        scan = read_archive(
            handle,
            limits=session.archive_limits,
            expected_sha256=expected,
            sink=DirectorySink(stage),
            progress=advance,
        )
    check_sidecar(archive, scan.sha256)
    signer = check_signature(session, row, archive)  # over the bytes just digest-checked
    return scan.members, stage, signer


def _plan_package(
    session: Session,
    txn: Transaction,
    row: PackageRow,
    index: int,
    *,
    files: dict[str, FileRow],
    claimed: set[Path],
    force: bool,
) -> Plan:
    base, external = destination(session, row)
    members, stage, signer = _stage(session, txn, row, index)
    status = "installed" if row.installed_digest is None else "updated"
    plan = Plan(row=row, base=base, external=external, status=status, signer=signer)
    guard = PathGuard(session, base, external)
    conflicts: list[str] = []
    for member in members:
        target = base.joinpath(*PurePosixPath(member.name).parts)
        guard.check(target)
        shown = guard.display(target)
        if target in claimed:
            raise ConflictError(f"{shown} would be written by two packages in one install")
        claimed.add(target)
        if member.is_dir:
            if (target.exists() or target.is_symlink()) and not target.is_dir():
                conflicts.append(f"{shown} (a file where a directory goes)")
            plan.dirs.append(target)
            continue
        if member.sha256 is None:
            raise UnsafeArchiveError(f"{member.name}: file member without a content hash")
        plan.owned[shown] = member.sha256
        if target.is_dir() and not target.is_symlink():
            conflicts.append(f"{shown} (a directory where a file goes)")
            continue
        if not (target.exists() or target.is_symlink()):
            plan.writes.append((target, stage / member.name))
            plan.written.append(shown)
            continue
        record = files.get(shown)
        same = not target.is_symlink() and sha256_file(target) == member.sha256
        if record is not None and record.owner == row.id:
            if not same:
                plan.writes.append((target, stage / member.name))
                plan.written.append(shown)
        elif same:
            plan.adopted.append(shown)
        elif force:
            plan.writes.append((target, stage / member.name))
            plan.overwritten.append(shown)
        else:
            owner = f"owned by {record.owner}" if record is not None else "not owned by any package"
            conflicts.append(f"{shown} ({owner})")
    if conflicts:
        listed = ", ".join(conflicts[:_SHOWN]) + (
            f" and {len(conflicts) - _SHOWN} more" if len(conflicts) > _SHOWN else ""
        )
        raise ConflictError(
            f"{row.id}: would overwrite {listed}",
            hint="pass --force to overwrite, or cpctl remove the owner first",
        )
    return plan


def _resolve_row(
    session: Session, packages: dict[str, PackageRow], package_id: str | None, archive: Path | None
) -> PackageRow:
    row: PackageRow | None = None
    if package_id is not None:
        validate_package_id(package_id)
        row = packages.get(package_id)
        if row is None:
            raise unknown_package(package_id, packages)
    if archive is not None:
        source = session.layout.relative(store_archive_path(session, archive))
        if row is None:
            row = next(
                (candidate for candidate in packages.values() if candidate.source == source), None
            )
            if row is None:
                raise UsageError(
                    f"{source} has no registry row; install never installs an unregistered archive",
                    hint=f"cpctl create --archive {source} --id ID",
                )
        elif row.source != source:
            raise UsageError(f"{source} is not the archive registered for {row.id} ({row.source})")
    if row is None:
        raise UsageError("install needs --id or --archive")
    return row


def _is_current(row: PackageRow) -> bool:
    """True when exactly the registered version and digest are installed."""
    return row.installed_digest == row.digest and row.installed_version == row.version


def install(
    session: Session,
    *,
    package_id: str | None,
    archive: Path | None,
    force: bool,
    dry_run: bool,
    allow: Allowances = NO_ALLOWANCES,
) -> ChangeResult:
    """See ``GateOperations.install``."""
    packages = session.packages()
    row = _resolve_row(session, packages, package_id, archive)
    locking.refuse_drift(session, force=force)
    if row.installed_digest is not None and not force:
        if _is_current(row):
            unchanged = PackageChange(
                row.id, str(row.version), row.digest, row.output_type.value, "", "unchanged"
            )
            return ChangeResult(
                action="install",
                packages=(unchanged,),
                dry_run=dry_run,
                warnings=tuple(session.warnings),
            )
        raise ConflictError(
            f"{row.id} {row.installed_version} is already installed; the registry now has {row.version}",
            hint=f"cpctl update --id {row.id}",
        )
    return _install_closure(
        session, packages, row.id, force=force, dry_run=dry_run, action="install", allow=allow
    )


def update(
    session: Session,
    package_id: str,
    *,
    force: bool,
    dry_run: bool,
    allow: Allowances = NO_ALLOWANCES,
) -> ChangeResult:
    """See ``GateOperations.update``."""
    validate_package_id(package_id)
    packages = session.packages()
    row = packages.get(package_id)
    if row is None:
        raise unknown_package(package_id, packages)
    locking.refuse_drift(session, force=force)
    if row.installed_digest is None:
        raise ConflictError(
            f"{package_id} is not installed", hint=f"cpctl install --id {package_id}"
        )
    if _is_current(row) and not force:
        unchanged = PackageChange(
            row.id, str(row.version), row.digest, row.output_type.value, "", "unchanged"
        )
        return ChangeResult(
            action="update",
            packages=(unchanged,),
            dry_run=dry_run,
            warnings=tuple(session.warnings),
        )
    return _install_closure(
        session, packages, package_id, force=force, dry_run=dry_run, action="update", allow=allow
    )


def _install_closure(
    session: Session,
    packages: dict[str, PackageRow],
    package_id: str,
    *,
    force: bool,
    dry_run: bool,
    action: str,
    allow: Allowances = NO_ALLOWANCES,
    targets: tuple[str, ...] = (),
) -> ChangeResult:
    """Install ``targets`` (default: ``package_id``, the ledger target) and missing dependencies."""
    targets = targets or (package_id,)
    order = install_order(targets, packages)
    wanted = [
        packages[pid] for pid in order if pid in targets or packages[pid].installed_digest is None
    ]
    admit(session, wanted, allow)  # tiers, deprecation, downgrades: before anything is staged
    for pid in order:
        dep = packages[pid]
        if (
            pid not in targets
            and dep.installed_digest is not None
            and dep.installed_digest != dep.digest
        ):
            session.warnings.append(
                f"dependency {pid} is installed at {dep.installed_version}; registry has {dep.version}"
            )
    files = session.files()
    txn = session.begin()
    try:
        claimed: set[Path] = set()
        plans = [
            _plan_package(session, txn, row, index, files=files, claimed=claimed, force=force)
            for index, row in enumerate(wanted)
        ]
        manifest_trust.admit(session, txn, plans)
        for plan in plans:
            _plan_deletions(session, plan, files, force)
        if dry_run:
            txn.abort()
            changes = tuple(plan.change("planned") for plan in plans)
            return ChangeResult(
                action=action, packages=changes, dry_run=True, warnings=tuple(session.warnings)
            )
        for plan in plans:
            _stage_plan(txn, session.layout.root, plan, files, packages)
        session.stage_registries(txn, packages=packages, files=files)
        external = {plan.row.id: plan.owned for plan in plans if plan.external}
        locking.stage_lock(session, txn, packages, files, external)
        record = session.record(
            package_id,
            digests={plan.row.id: plan.row.digest for plan in plans},
            details={
                "packages": [_ledger_detail(plan) for plan in plans],
                **({"overrides": list(allow.flags())} if allow.flags() else {}),
                **_manifest_detail(session),
            },
            txn=txn,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return ChangeResult(
        action=action,
        packages=tuple(plan.change() for plan in plans),
        warnings=tuple(session.warnings),
    )


def _manifest_detail(session: Session) -> dict[str, object]:
    """The registry manifest that authorised this change, for the ledger: the ledger, not the
    unsigned trust_state.json, is the record an auditor can hold a rollback against."""
    pinned = session.manifest
    if pinned is None:
        return {}
    return {"manifest": {"version": pinned.manifest.version, "sha256": pinned.sha256}}


def _plan_deletions(session: Session, plan: Plan, files: dict[str, FileRow], force: bool) -> None:
    """For an update: files the old version owned that the new one no longer has."""
    if plan.external:
        return
    previous = [row for row in files.values() if row.owner == plan.row.id]
    if not previous:
        return
    root = session.layout.root
    modified = modified_targets({row.path: (root / row.path, row.sha256) for row in previous})
    touched = set(plan.written) | {
        path for path in (row.path for row in previous) if path not in plan.owned
    }
    blocked = [path for path in modified if path in touched]
    if blocked and not force:
        raise ConflictError(
            f"{plan.row.id}: installed files were modified since install: {', '.join(blocked[:_SHOWN])}",
            hint="keep your edits elsewhere, or pass --force to replace them",
        )
    for row in previous:
        if row.path not in plan.owned:
            plan.deleted.append(row.path)


def _stage_plan(
    txn: Transaction,
    root: Path,
    plan: Plan,
    files: dict[str, FileRow],
    packages: dict[str, PackageRow],
) -> None:
    for directory in plan.dirs:
        txn.ensure_dir(directory)
    for target, staged in plan.writes:
        txn.put(target, staged)
    if not plan.external:
        for path in plan.deleted:
            row = files.pop(path)
            target = root / row.path
            if target.exists() or target.is_symlink():
                txn.delete(target)
        for path, digest in plan.owned.items():
            files[path] = FileRow(
                id=file_row_id(path),
                path=path,
                sha256=digest,
                owner=plan.row.id,
                kind="file",
                description="",
            )
    packages[plan.row.id] = replace(
        plan.row, installed_version=plan.row.version, installed_digest=plan.row.digest
    )


def _ledger_detail(plan: Plan) -> dict[str, object]:
    detail: dict[str, object] = {
        "id": plan.row.id,
        "version": str(plan.row.version),
        "output_type": plan.row.output_type.value,
        "destination": str(plan.base),
        "files": len(plan.owned),
        "written": len(plan.written) + len(plan.overwritten),
        "adopted": len(plan.adopted),
        "deleted": len(plan.deleted),
        "signer": plan.signer,
    }
    if plan.row.card_id:
        detail["card"] = plan.row.card_id
    if plan.external:
        # External deliveries are outside registries and integrity scope: the ledger is their record.
        detail["paths"] = [
            {"path": path, "sha256": digest} for path, digest in sorted(plan.owned.items())
        ]
    return detail
