"""MANIFEST.json: regenerate it (``cpctl manifest``) and tell whether it is fresh."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum

from control_plane.digests import format_digest
from control_plane.errors import UsageError
from control_plane.manifest import Manifest, build_manifest, serialise_manifest
from control_plane.operations.results import ManifestResult
from control_plane.operations.session import Session
from control_plane.registry import FileRow, PackageRow


class ManifestState(StrEnum):
    """How ``MANIFEST.json`` compares with what the registries say now."""

    FRESH = "fresh"
    STALE = "stale"
    ABSENT = "absent"


def manifest_state(
    session: Session, files: Mapping[str, FileRow], packages: Mapping[str, PackageRow]
) -> tuple[ManifestState, str]:
    """(state, why) for the root's ``MANIFEST.json`` against the given registry rows.

    Anything that is not byte-for-byte the manifest ``cpctl manifest`` would
    write now (edited, reformatted, a symlink, unreadable) is stale.
    """
    path = session.layout.manifest
    if not (path.exists() or path.is_symlink()):
        return ManifestState.ABSENT, "MANIFEST.json does not exist"
    if path.is_symlink() or not path.is_file():
        return ManifestState.STALE, "MANIFEST.json is not a regular file"
    try:
        current = path.read_bytes()
    except OSError as error:
        return ManifestState.STALE, f"MANIFEST.json cannot be read: {error.strerror}"
    expected = serialise_manifest(build_manifest(files.values(), packages.values()))
    if current != expected:
        return (
            ManifestState.STALE,
            "MANIFEST.json does not match the registries (run cpctl manifest)",
        )
    return ManifestState.FRESH, "MANIFEST.json matches the registries"


def _result(manifest: Manifest, data: bytes, *, changed: bool, session: Session) -> ManifestResult:
    return ManifestResult(
        path=session.layout.relative(session.layout.manifest),
        changed=changed,
        merkle_root=manifest.merkle_root,
        files=len(manifest.files),
        packages=len(manifest.packages),
        sha256=hashlib.sha256(data).hexdigest(),
        warnings=tuple(session.warnings),
    )


def write_manifest(session: Session) -> ManifestResult:
    """See ``GateOperations.manifest``."""
    path = session.layout.manifest
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError("MANIFEST.json exists and is not a regular file; remove it first")
    manifest = build_manifest(session.files().values(), session.packages().values())
    data = serialise_manifest(manifest)
    try:
        previous = path.read_bytes() if path.exists() else None
    except OSError as error:
        raise UsageError(f"cannot read MANIFEST.json: {error.strerror}") from None
    if previous == data:
        return _result(manifest, data, changed=False, session=session)
    digests = {"new": format_digest(hashlib.sha256(data).hexdigest())}
    if previous is not None:
        digests["old"] = format_digest(hashlib.sha256(previous).hexdigest())
    txn = session.begin()
    try:
        txn.put_bytes(path, data)
        record = session.record(
            session.layout.relative(path),
            digests=digests,
            details={
                "merkle_root": manifest.merkle_root,
                "files": len(manifest.files),
                "packages": len(manifest.packages),
            },
            txn=txn,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return _result(manifest, data, changed=True, session=session)
