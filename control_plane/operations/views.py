"""sync and validate: the compiled registry view and the registry checker."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

from control_plane.dependencies import dependency_findings
from control_plane.digests import (
    digests_equal,
    format_digest,
    parse_digest,
    parse_sidecar,
    sha256_file,
)
from control_plane.errors import UsageError
from control_plane.findings import Finding
from control_plane.fsutil import atomic_write_bytes
from control_plane.operations.package_cards import card_findings
from control_plane.operations.results import SyncResult, ValidateResult
from control_plane.operations.session import Session
from control_plane.registry import FileRow, OutputType, PackageRow, parse_files, parse_packages
from control_plane.trust_policy import replacement_findings

COMPILED_SCHEMA = "control-plane.compiled/2"
COMPILED_NAME = "registry.json"
SPECIAL_OWNERS = frozenset({"system", "manual"})


def package_json(row: PackageRow) -> dict[str, Any]:
    """The JSON form of a package row used by views and manifests."""
    return {
        "id": row.id,
        "name": row.name,
        "version": str(row.version),
        "source": row.source,
        "source_type": row.source_type.value,
        "digest": row.digest,
        "output_type": row.output_type.value,
        "output_path": row.output_path,
        "dependencies": [str(dep) for dep in row.dependencies],
        "tier": row.tier.value,
        "deprecated": row.deprecated,
        "replacement": row.replacement or None,
        "card_id": row.card_id or None,
        "installed_version": None if row.installed_version is None else str(row.installed_version),
        "installed_digest": row.installed_digest,
    }


def file_json(row: FileRow) -> dict[str, Any]:
    """The JSON form of a control-registry row."""
    return {
        "id": row.id,
        "path": row.path,
        "sha256": row.sha256 or None,
        "owner": row.owner,
        "kind": row.kind,
        "description": row.description,
    }


def compiled_document(session: Session) -> dict[str, Any]:
    """The deterministic compiled view of both registries."""
    packages = session.packages()
    files = session.files()
    return {
        "schema": COMPILED_SCHEMA,
        "packages": [package_json(packages[key]) for key in sorted(packages)],
        "files": [file_json(files[key]) for key in sorted(files)],
    }


def render_compiled(document: dict[str, Any]) -> bytes:
    """Stable bytes for the compiled view: sorted keys, two-space indent, final newline."""
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode(
        "utf-8"
    )


def sync(session: Session, *, dry_run: bool) -> SyncResult:
    """See ``GateOperations.sync``."""
    document = compiled_document(session)
    data = render_compiled(document)
    path = session.layout.compiled / COMPILED_NAME
    try:
        changed = path.read_bytes() != data
    except FileNotFoundError:
        changed = True
    except OSError as exc:
        shown = session.layout.relative(path)
        raise UsageError(f"cannot read {shown}: {exc.strerror}", hint=f"remove {shown}") from None
    written = changed and not dry_run
    if written:
        atomic_write_bytes(path, data)
        session.ledger.append(
            session.record(
                session.layout.relative(path),
                digests={"view": format_digest(hashlib.sha256(data).hexdigest())},
            )
        )
    return SyncResult(
        path=session.layout.relative(path),
        changed=changed,
        written=written,
        packages=len(document["packages"]),
        files=len(document["files"]),
        warnings=tuple(session.warnings),
    )


def _load(session: Session, path: Path, parser: Any) -> tuple[tuple[Any, ...], list[Finding]]:
    name = session.layout.relative(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return (), [Finding(name, "registry-missing", f"{name} does not exist")]
    except OSError as exc:
        return (), [Finding(name, "registry-unreadable", f"cannot read {name}: {exc.strerror}")]
    try:
        parsed = parser(data, limits=session.registry_limits)
    except UsageError as exc:
        return (), [Finding(name, "registry-structure", str(exc))]
    return parsed.rows, list(parsed.findings)


def validate(session: Session) -> ValidateResult:
    """See ``GateOperations.validate``."""
    package_rows, findings = _load(session, session.layout.packages_registry, parse_packages)
    file_rows, file_findings = _load(session, session.layout.control_registry, parse_files)
    findings.extend(file_findings)
    packages = {row.id: row for row in package_rows}
    findings.extend(dependency_findings(packages))
    findings.extend(replacement_findings(packages))
    findings.extend(card_findings(session, packages))
    for row in package_rows:
        findings.extend(_archive_findings(session, row))
        if (
            row.output_type is OutputType.EXTERNAL
            and not PurePosixPath(row.output_path).is_absolute()
        ):
            findings.append(
                Finding(row.id, "output-path", "external packages need an absolute output_path")
            )
    for file_row in file_rows:
        if file_row.owner not in packages and file_row.owner not in SPECIAL_OWNERS:
            findings.append(
                Finding(
                    file_row.path,
                    "owner-unknown",
                    f"owner {file_row.owner!r} is not a registered package",
                )
            )
    if not any(row.id == "REG-CP" for row in file_rows) and file_rows:
        findings.append(
            Finding(
                "control_plane_registry.csv",
                "reg-cp-missing",
                "the registry's own row REG-CP is missing",
            )
        )
    return ValidateResult(
        packages=len(package_rows),
        files=len(file_rows),
        findings=tuple(sorted(findings)),
        warnings=tuple(session.warnings),
    )


def _archive_findings(session: Session, row: PackageRow) -> list[Finding]:
    archive = session.layout.root / row.source
    if archive.is_symlink() or not archive.is_file():
        return [Finding(row.id, "archive-missing", f"archive {row.source} does not exist")]
    actual = sha256_file(archive)
    findings = []
    if not digests_equal(actual, parse_digest(row.digest)):
        findings.append(
            Finding(
                row.id,
                "digest-mismatch",
                f"{row.source} hashes to sha256:{actual}, registry says {row.digest}",
            )
        )
    sidecar = archive.with_name(archive.name + ".sha256")
    try:
        recorded, _name = parse_sidecar(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        findings.append(Finding(row.id, "sidecar-missing", f"{row.source}.sha256 does not exist"))
    except (OSError, UnicodeDecodeError, UsageError) as exc:
        findings.append(Finding(row.id, "sidecar-invalid", f"{row.source}.sha256: {exc}"))
    else:
        if not digests_equal(recorded, actual):
            findings.append(
                Finding(
                    row.id, "sidecar-mismatch", f"{row.source}.sha256 does not match the archive"
                )
            )
    return findings
