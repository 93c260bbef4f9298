"""What operations return: frozen result objects, rendered once by the interface.

Each result's ``to_json`` is the ``--json`` document users script against;
it always carries ``schema`` (name/version).  Changing a key means bumping
the version (a contract test pins them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from control_plane.findings import Finding


@dataclass(frozen=True)
class Result:
    """Base of every operation result."""

    SCHEMA: ClassVar[str] = "control-plane.result/1"
    warnings: tuple[str, ...] = field(default=(), kw_only=True)

    @property
    def ok(self) -> bool:
        return True

    def payload(self) -> dict[str, Any]:
        raise AssertionError("every result type defines payload()")

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "ok": self.ok,
            **self.payload(),
            "warnings": list(self.warnings),
        }


class FindingsResult(Result):
    """A check's result: ok when its ``findings`` (a field each subclass declares) are none."""

    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def findings_json(self) -> list[dict[str, str]]:
        return [finding.as_dict() for finding in self.findings]


@dataclass(frozen=True)
class InitResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.init/1"
    root: str
    created: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {"root": self.root, "created": list(self.created)}


@dataclass(frozen=True)
class PackResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.pack/2"
    id: str
    version: str
    archive: str
    digest: str
    files: int
    content_bytes: int
    dependencies: tuple[str, ...]
    signer: str | None = None  # key id of the pack --sign key
    card_id: str | None = None  # the identity card the package carries

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "archive": self.archive,
            "digest": self.digest,
            "files": self.files,
            "content_bytes": self.content_bytes,
            "dependencies": list(self.dependencies),
            "signer": self.signer,
            "card_id": self.card_id,
        }


@dataclass(frozen=True)
class CreateResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.create/1"
    id: str
    version: str
    archive: str
    digest: str
    sidecar_written: bool

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "archive": self.archive,
            "digest": self.digest,
            "sidecar_written": self.sidecar_written,
        }


@dataclass(frozen=True)
class PackageChange:
    """What happened (or would happen) to one package."""

    id: str
    version: str
    digest: str
    output_type: str
    destination: str
    status: str  # installed | updated | unchanged | removed | planned
    written: tuple[str, ...] = ()
    adopted: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    overwritten: tuple[str, ...] = ()
    signer: str | None = None  # key id whose signature verified, None when unsigned

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "digest": self.digest,
            "output_type": self.output_type,
            "destination": self.destination,
            "status": self.status,
            "written": list(self.written),
            "adopted": list(self.adopted),
            "deleted": list(self.deleted),
            "overwritten": list(self.overwritten),
            "signer": self.signer,
        }


@dataclass(frozen=True)
class ChangeResult(Result):
    """install, update and remove: the packages touched, in order."""

    SCHEMA: ClassVar[str] = "control-plane.change/1"
    action: str
    packages: tuple[PackageChange, ...]
    dry_run: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "packages": [package.to_json() for package in self.packages],
        }


@dataclass(frozen=True)
class SyncResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.sync/1"
    path: str
    changed: bool
    written: bool
    packages: int
    files: int

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "changed": self.changed,
            "written": self.written,
            "packages": self.packages,
            "files": self.files,
        }


@dataclass(frozen=True)
class ValidateResult(FindingsResult):
    SCHEMA: ClassVar[str] = "control-plane.validate/1"
    packages: int
    files: int
    findings: tuple[Finding, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "packages": self.packages,
            "files": self.files,
            "findings": self.findings_json(),
        }


@dataclass(frozen=True)
class IntegrityResult(FindingsResult):
    SCHEMA: ClassVar[str] = "control-plane.integrity/1"
    merkle_root: str
    checked: int
    mismatched: tuple[str, ...]
    missing: tuple[str, ...]
    orphans: tuple[str, ...]
    archives_checked: int
    findings: tuple[Finding, ...]
    mode: str = "full"  # "fast": digests of unchanged files came from the stat cache
    cached: int = 0  # governed files trusted from the stat cache instead of hashed
    files_checked: int = 0  # governed files (not archives) checked, hashed or cached
    manifest: str | None = None  # fresh | stale | absent; None where not assessed (verify)

    @property
    def ok(self) -> bool:
        return not (self.mismatched or self.missing or self.orphans or self.findings)

    def payload(self) -> dict[str, Any]:
        return {
            "merkle_root": self.merkle_root,
            "checked": self.checked,
            "mismatched": list(self.mismatched),
            "missing": list(self.missing),
            "orphans": list(self.orphans),
            "archives_checked": self.archives_checked,
            "findings": self.findings_json(),
            "mode": self.mode,
            "cached": self.cached,
            "files_checked": self.files_checked,
            "manifest": self.manifest,
        }


@dataclass(frozen=True)
class ManifestResult(Result):
    """``cpctl manifest``: ``changed`` is False when MANIFEST.json already had these bytes."""

    SCHEMA: ClassVar[str] = "control-plane.manifest-write/1"
    path: str
    changed: bool
    merkle_root: str
    files: int
    packages: int
    sha256: str

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": "written" if self.changed else "unchanged",
            "changed": self.changed,
            "merkle_root": self.merkle_root,
            "files": self.files,
            "packages": self.packages,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class HashUpdateResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.hash-update/1"
    path: str
    old: str | None
    new: str

    def payload(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class WhoamiResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.whoami/1"
    user: str
    provider: str
    roles: tuple[str, ...]
    actions: tuple[str, ...]
    expires_at: int | None
    role: str | None = None  # the strongest known role, as authorisation would use it

    def payload(self) -> dict[str, Any]:
        return {
            "identity": self.user,
            "user": self.user,
            "provider": self.provider,
            "role": self.role,
            "roles": list(self.roles),
            "actions": list(self.actions),
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True)
class LedgerVerifyResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.ledger-verify/1"
    entries: int
    head: str | None
    root: str = ""
    checkpoints: int = 0
    checkpoint: dict[str, Any] | None = None  # the newest signed checkpoint
    key_id: str | None = None
    against: dict[str, Any] | None = None  # the saved checkpoint proven to be a prefix

    def payload(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "head": self.head,
            "root": self.root,
            "checkpoints": self.checkpoints,
            "checkpoint": self.checkpoint,
            "key_id": self.key_id,
            "against": self.against,
        }


@dataclass(frozen=True)
class DocumentResult(Result):
    """A document users save (a proof, a checkpoint): printed as it is, in either mode."""

    document: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.document)

    def payload(self) -> dict[str, Any]:
        return dict(self.document)


@dataclass(frozen=True)
class ProofCheckResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.proof-check/1"
    kind: str
    statement: str
    key_id: str

    def payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "statement": self.statement, "key_id": self.key_id}


@dataclass(frozen=True)
class LedgerShowResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.ledger-show/1"
    entries: tuple[dict[str, Any], ...]

    def payload(self) -> dict[str, Any]:
        return {"entries": list(self.entries)}


@dataclass(frozen=True)
class DoctorCheck:
    """One area ``cpctl doctor`` looked at: ``ok``, ``warn`` or ``fail``, and the fix."""

    name: str
    status: str
    summary: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary, "fix": self.fix}


@dataclass(frozen=True)
class DoctorResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.doctor/1"
    checks: tuple[DoctorCheck, ...]

    @property
    def ok(self) -> bool:
        return all(check.status != "fail" for check in self.checks)

    def payload(self) -> dict[str, Any]:
        return {"checks": [check.as_dict() for check in self.checks]}
