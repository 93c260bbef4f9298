"""registry export, sign and verify, and the manifest checks of ``install --manifest``.

``export`` writes the canonical manifest (and, with ``--sign``, its ``.sigs``)
and records the exported version; ``sign`` appends one signer's detached
signature; ``verify`` checks a manifest offline against ``keys/trusted``, the
threshold (or a stricter ``--threshold``), the revocation list, its expiry and
the version checks (rollback, fast-forward, a forked version) against the last
accepted manifest, reading the trust state and writing nothing.  ``pin_manifest``
makes the same checks for an install, and ``admit`` -- the one call install
makes -- refuses revoked packages and, under a pinned manifest, any package
whose archive sha256 or version differs from its entry, then stages the
accepted version into the install's own transaction.  Paths in results are
root-relative inside the root and absolute outside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from control_plane.config import Config
from control_plane.digests import parse_digest
from control_plane.errors import ControlPlaneError, UsageError
from control_plane.fsutil import atomic_write_bytes
from control_plane.keystore import StoredKey
from control_plane.layout import RootLayout
from control_plane.manifest_acceptance import require_acceptable
from control_plane.operations import revoking
from control_plane.operations.placement import Plan
from control_plane.operations.results import Result
from control_plane.operations.session import Session
from control_plane.operations.signatures import key_store, load_signing_key, signature_path
from control_plane.registry import PackageRow
from control_plane.registry_manifest import (
    MANIFEST_NAME,
    SIGS_SUFFIX,
    DetachedSignature,
    ManifestError,
    ManifestPackage,
    PinnedManifest,
    RegistryManifest,
    add_signature,
    dump_signatures,
    format_time,
    parse_manifest,
    parse_signatures,
    parse_time,
    require_fresh,
    require_threshold,
    trusted_signers,
)
from control_plane.signing import key_id, sign_digest
from control_plane.transaction import Transaction

DEFAULT_EXPIRES_DAYS = 30
MAX_EXPIRES_DAYS = 3660


def now() -> datetime:
    """The current time (one place, so tests can pin it)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ManifestExportResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.registry-export/1"
    path: str
    signatures_path: str | None
    version: int
    expires: str
    packages: int
    sha256: str
    signers: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "signatures_path": self.signatures_path,
            "version": self.version,
            "expires": self.expires,
            "packages": self.packages,
            "sha256": self.sha256,
            "signers": list(self.signers),
        }


@dataclass(frozen=True)
class ManifestSignResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.registry-sign/1"
    path: str
    signatures_path: str
    keyid: str
    signatures: int

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "signatures_path": self.signatures_path,
            "keyid": self.keyid,
            "signatures": self.signatures,
        }


@dataclass(frozen=True)
class ManifestVerifyResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.registry-verify/1"
    path: str
    version: int
    expires: str
    packages: int
    sha256: str
    signers: tuple[str, ...]
    threshold: int
    last_accepted: int

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "version": self.version,
            "expires": self.expires,
            "packages": self.packages,
            "sha256": self.sha256,
            "signers": list(self.signers),
            "threshold": self.threshold,
            "last_accepted": self.last_accepted,
        }


def signatures_path(manifest: Path) -> Path:
    """``MANIFEST.sigs`` beside ``MANIFEST``."""
    return manifest.with_name(manifest.name + SIGS_SUFFIX)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


def _verified(
    layout: RootLayout, config: Config, path: Path, threshold: int | None = None
) -> tuple[RegistryManifest, tuple[str, ...], bytes]:
    """Signatures (threshold of trusted unrevoked keys), schema, expiry and version (against
    the last accepted manifest) of a manifest; reads the root, writes nothing."""
    data = _read(path)
    sigs_path = signatures_path(path)
    if not sigs_path.exists():
        raise ManifestError(f"{path}: unsigned ({sigs_path.name} is missing)")
    signatures = parse_signatures(_read(sigs_path), str(sigs_path))
    keys = key_store(layout.root).load()
    revoked = revoking.load_revocations(layout, keys).revocations.revoked_keys
    active = [(k.key_id, k.public_key) for k in keys if not k.revoked and k.key_id not in revoked]
    signers = trusted_signers(data, signatures, active)
    if threshold is None:
        require_threshold(signers, config.policy.manifest_threshold, str(path))
    else:
        require_threshold(signers, threshold, str(path), source="--threshold")
    manifest = parse_manifest(data, str(path))
    require_fresh(manifest, now(), str(path))
    require_acceptable(
        manifest.version,
        hashlib.sha256(data).hexdigest(),
        revoking.read_state(layout),
        config.policy.max_manifest_version_jump,
        str(path),
    )
    return manifest, signers, data


def verify(
    layout: RootLayout, config: Config, path: Path, threshold: int | None = None
) -> ManifestVerifyResult:
    """See ``GateOperations.registry_verify``.

    Raises:
        UsageError: ``threshold`` below ``policy.manifest_threshold``; an unreadable file.
        ManifestError: any check fails.
    """
    policy = config.policy.manifest_threshold
    if threshold is not None and threshold < policy:
        raise UsageError(
            f"--threshold {threshold} is below policy.manifest_threshold ({policy}): "
            "a verifier may demand more keys, never fewer"
        )
    manifest, signers, data = _verified(layout, config, path, threshold)
    return ManifestVerifyResult(
        path=layout.shown(path),
        version=manifest.version,
        expires=format_time(manifest.expires),
        packages=len(manifest.packages),
        sha256=hashlib.sha256(data).hexdigest(),
        signers=signers,
        threshold=policy if threshold is None else threshold,
        last_accepted=revoking.read_state(layout).manifest_version,
    )


def pin_manifest(session: Session, path: Path, package_id: str | None) -> PinnedManifest:
    """Verify ``path`` for installing ``package_id``: signatures, expiry, rollback, fast-forward,
    a forked version, and the target's entry against its registry row.

    Raises:
        ManifestError: any check fails.
        UsageError: no --id, an unknown id, an unreadable file.
    """
    if package_id is None:
        raise UsageError("install --manifest needs --id")
    manifest, signers, data = _verified(session.layout, session.config, path)
    pinned = PinnedManifest(str(path), manifest, hashlib.sha256(data).hexdigest(), signers)
    row = session.packages().get(package_id)
    if row is not None:
        pinned.require_package(row.id, str(row.version), parse_digest(row.digest))
    return pinned


def admit(session: Session, txn: Transaction, plans: Sequence[Plan]) -> None:
    """Install's one trust call: refuse revoked packages (version, digest or the archive's
    signer); under a pinned manifest refuse any package it does not list at this sha256 and
    version, and stage the accepted version into the install's transaction.

    Each plan's archive was proven equal to its row's digest, and its signer identified,
    while it was staged.

    Raises:
        RevocationError, ManifestError: refused (exit 5); the caller aborts the transaction.
    """
    revoking.refuse_revoked(session, [(plan.row, plan.signer) for plan in plans])
    pinned = session.manifest
    if pinned is None:
        return
    for plan in plans:
        pinned.require_package(plan.row.id, str(plan.row.version), parse_digest(plan.row.digest))
    state = revoking.read_state(session.layout).accepting(pinned.manifest.version, pinned.sha256)
    txn.put_bytes(revoking.state_path(session.layout), state.to_bytes())


def _entry(session: Session, row: PackageRow, keys: Sequence[StoredKey]) -> ManifestPackage:
    try:
        signer = revoking.archive_signer(session.layout, row, keys)
    except ControlPlaneError as error:
        session.warnings.append(f"{row.id}: signer left null: {error}")
        signer = None
    else:
        if signer is None and signature_path(session.layout.root / row.source).exists():
            session.warnings.append(
                f"{row.id}: no stored key verifies {row.source}.sig; signer null"
            )
    return ManifestPackage(
        id=row.id,
        version=str(row.version),
        archive=Path(row.source).name,
        sha256=parse_digest(row.digest),
        tier=row.tier.value,
        dependencies=tuple(str(dependency) for dependency in row.dependencies),
        signer=signer,
    )


def _expiry(expires_in: int | None, expires: str | None) -> datetime:
    if expires_in is not None and expires is not None:
        raise UsageError("give --expires-in DAYS or --expires TIME, not both")
    if expires is not None:
        moment = parse_time(expires, "--expires")
        if moment <= now():
            raise UsageError(f"--expires {expires} is in the past")
        return moment
    days = DEFAULT_EXPIRES_DAYS if expires_in is None else expires_in
    if not 1 <= days <= MAX_EXPIRES_DAYS:
        raise UsageError(f"--expires-in must be between 1 and {MAX_EXPIRES_DAYS} days")
    return (now() + timedelta(days=days)).replace(microsecond=0)


def export(
    session: Session,
    out: Path | None,
    *,
    expires_in: int | None,
    expires: str | None,
    version: int | None,
    sign_keys: Sequence[Path],
    passphrase_file: Path | None,
    env: Mapping[str, str],
) -> ManifestExportResult:
    """See ``GateOperations.registry_export``."""
    layout = session.layout
    state = revoking.read_state(layout)
    previous = max(state.manifest_version, state.exported_version)
    if version is None:
        version = previous + 1
    elif version < 1:
        raise UsageError("--version must be at least 1")
    elif version <= previous:
        session.warnings.append(
            f"version {version} is not newer than {previous}: installs that accepted a newer "
            "manifest refuse it"
        )
    moment = _expiry(expires_in, expires)
    private_keys = [load_signing_key(path, passphrase_file, env) for path in sign_keys]
    keys = key_store(layout.root).load()
    rows = session.packages()
    manifest = RegistryManifest(
        version=version,
        expires=moment,
        packages={pid: _entry(session, row, keys) for pid, row in sorted(rows.items())},
    )
    data = manifest.to_bytes()
    target = (
        (out if out.is_absolute() else Path.cwd() / out)
        if out
        else layout.registries / MANIFEST_NAME
    )
    sigs_path = signatures_path(target)
    trusted = {k.key_id for k in keys if not k.revoked}
    signatures: tuple[DetachedSignature, ...] = ()
    for private in private_keys:
        kid = key_id(private.public_key())
        if kid not in trusted:
            session.warnings.append(f"signing key {kid} is not trusted in this root's keys/trusted")
        signature = DetachedSignature(kid, sign_digest(private, hashlib.sha256(data).digest()))
        signatures = add_signature(signatures, signature)
    txn = session.begin()
    try:
        txn.put_bytes(target, data)
        if signatures:
            txn.put_bytes(sigs_path, dump_signatures(signatures))
        elif sigs_path.exists():
            txn.delete(sigs_path)  # signatures over the old bytes would only mislead
            session.warnings.append(f"removed {sigs_path.name}: it signed the previous export")
        new_state = replace(state, exported_version=max(state.exported_version, version))
        txn.put_bytes(revoking.state_path(layout), new_state.to_bytes())
        details = {
            "path": layout.shown(target),
            "version": version,
            "packages": len(rows),
            "signers": [item.keyid for item in signatures],
        }
        record = session.record(
            "registry-manifest",
            digests={"manifest": "sha256:" + hashlib.sha256(data).hexdigest()},
            details=details,
            txn=txn,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return ManifestExportResult(
        path=layout.shown(target),
        signatures_path=layout.shown(sigs_path) if signatures else None,
        version=version,
        expires=format_time(moment),
        packages=len(rows),
        sha256=hashlib.sha256(data).hexdigest(),
        signers=tuple(item.keyid for item in signatures),
        warnings=tuple(session.warnings),
    )


def sign(
    layout: RootLayout,
    path: Path,
    key_path: Path,
    passphrase_file: Path | None,
    env: Mapping[str, str],
) -> ManifestSignResult:
    """See ``GateOperations.registry_sign``: append one signature to ``MANIFEST.sigs``."""
    data = _read(path)
    parse_manifest(data, str(path))  # never sign something that is not a manifest
    private = load_signing_key(key_path, passphrase_file, env)
    sigs_path = signatures_path(path)
    existing = parse_signatures(_read(sigs_path), str(sigs_path)) if sigs_path.exists() else ()
    kid = key_id(private.public_key())
    updated = add_signature(
        existing, DetachedSignature(kid, sign_digest(private, hashlib.sha256(data).digest()))
    )
    atomic_write_bytes(sigs_path, dump_signatures(updated))
    return ManifestSignResult(
        path=layout.shown(path),
        signatures_path=layout.shown(sigs_path),
        keyid=kid,
        signatures=len(updated),
    )
