"""revoke and revocations: the signed revocation list, and refusing what it names.

The list is read only through ``load_revocations``, which verifies its
signature against the trusted keys and its version against the one last
written (``registries/trust_state.json``): an unsigned, tampered, re-signed by
an unknown key, deleted or rolled-back list is exit 5, so revocation fails
closed.  ``refuse_revoked`` is what install calls; ``revocation_findings`` is
what integrity-check reports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from control_plane.digests import parse_digest
from control_plane.errors import ControlPlaneError, UsageError
from control_plane.findings import Finding
from control_plane.jsoncanon import utc_now
from control_plane.keystore import StoredKey, identify_signer
from control_plane.layout import RootLayout
from control_plane.operations.results import DoctorCheck, Result
from control_plane.operations.session import Session
from control_plane.operations.signatures import key_store, load_signing_key, signature_path
from control_plane.registry import PackageRow
from control_plane.registry_manifest import TrustState, parse_state
from control_plane.revocations import (
    LIST_NAME,
    SIG_SUFFIX,
    Revocation,
    RevocationError,
    RevocationKind,
    RevocationList,
    check_reason,
    check_target,
    parse_revocations,
)
from control_plane.signing import (
    decode_signature,
    encode_signature,
    find_signer,
    key_id,
    sign_digest,
)

STATE_NAME = "trust_state.json"


@dataclass(frozen=True)
class RevokeResult(Result):
    """``cpctl revoke``: ``changed`` is False when the target was already revoked."""

    SCHEMA: ClassVar[str] = "control-plane.revoke/1"
    kind: str
    value: str
    reason: str
    list_version: int
    signer: str
    changed: bool

    def payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "reason": self.reason,
            "list_version": self.list_version,
            "signer": self.signer,
            "changed": self.changed,
        }


@dataclass(frozen=True)
class RevocationsResult(Result):
    """``cpctl revocations``: the verified list (empty when the root never revoked anything)."""

    SCHEMA: ClassVar[str] = "control-plane.revocations-show/1"
    list_version: int
    signer: str | None
    entries: tuple[Revocation, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "list_version": self.list_version,
            "signer": self.signer,
            "entries": [entry.to_json() for entry in self.entries],
        }


@dataclass(frozen=True)
class VerifiedRevocations:
    """A revocation list whose signature and version were checked; ``signer`` None when empty."""

    revocations: RevocationList
    signer: str | None


def list_path(layout: RootLayout) -> Path:
    return layout.registries / LIST_NAME


def state_path(layout: RootLayout) -> Path:
    return layout.registries / STATE_NAME


def read_state(layout: RootLayout) -> TrustState:
    """The root's trust state (defaults when the file does not exist yet).

    Raises:
        UsageError: unreadable or malformed.
    """
    path = state_path(layout)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return TrustState()
    except OSError as exc:
        raise UsageError(f"cannot read {layout.relative(path)}: {exc.strerror}") from exc
    return parse_state(data, layout.relative(path))


def _active(keys: Iterable[StoredKey], revoked: frozenset[str]) -> list[tuple[str, Any]]:
    return [(k.key_id, k.public_key) for k in keys if not k.revoked and k.key_id not in revoked]


def load_revocations(
    layout: RootLayout, keys: Sequence[StoredKey] | None = None, state: TrustState | None = None
) -> VerifiedRevocations:
    """The root's revocation list, verified (an empty list when there is none and never was).

    Raises:
        RevocationError: deleted, unsigned, tampered, signed by no trusted unrevoked key,
            or older than the version last written.
        UsageError: an unreadable key store or trust state.
    """
    state = read_state(layout) if state is None else state
    path = list_path(layout)
    shown = layout.relative(path)
    sig_path = path.with_name(path.name + SIG_SUFFIX)
    if not path.exists() and not sig_path.exists():
        if state.revocations_version:
            raise RevocationError(
                f"{shown} is missing but version {state.revocations_version} was written; "
                "refusing to run without it",
                hint="restore it from version control or a backup",
            )
        return VerifiedRevocations(RevocationList(), None)
    if not sig_path.exists():
        raise RevocationError(f"{shown} is not signed ({shown}{SIG_SUFFIX} is missing)")
    try:
        data = path.read_bytes()
        signature = decode_signature(sig_path.read_bytes(), f"{shown}{SIG_SUFFIX}")
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    revocations = parse_revocations(data, shown)
    keys = key_store(layout.root).load() if keys is None else keys
    signer = find_signer(
        hashlib.sha256(data).digest(), signature, _active(keys, revocations.revoked_keys)
    )
    if signer is None:
        raise RevocationError(
            f"{shown}: no trusted, unrevoked key in keys/trusted signed it (tampered or re-signed)"
        )
    if revocations.version < state.revocations_version:
        raise RevocationError(
            f"{shown}: version {revocations.version} is older than the {state.revocations_version} "
            "last written; refusing a rolled-back revocation list"
        )
    return VerifiedRevocations(revocations, signer)


def archive_signer(layout: RootLayout, row: PackageRow, keys: Sequence[StoredKey]) -> str | None:
    """The key id (trusted or revoked) whose ``.sig`` accompanies the row's archive, else None.

    The archive's bytes are proven equal to ``row.digest`` elsewhere (install streams and
    checks them); the signature is checked over that digest.

    Raises:
        SignatureError: the ``.sig`` is malformed.
    """
    sig_path = signature_path(layout.root / row.source)
    if not sig_path.is_file():
        return None
    signature = decode_signature(sig_path.read_bytes(), layout.relative(sig_path))
    found = identify_signer(keys, bytes.fromhex(parse_digest(row.digest)), signature)
    return None if found is None else found.key_id


def refuse_revoked(session: Session, packages: Iterable[tuple[PackageRow, str | None]]) -> None:
    """Raise when any package (row, trusted signer key id of its archive) is revoked: its
    version, its archive digest or its signer.

    Raises:
        RevocationError: revoked, or the revocation list itself is refused.
    """
    layout = session.layout
    if not (list_path(layout).exists() or read_state(layout).revocations_version):
        return
    revocations = load_revocations(layout).revocations
    for row, signer in packages:
        found = revocations.matching(row.id, str(row.version), row.digest, signer)
        if found is not None:
            raise RevocationError(f"{row.id} {row.version} is revoked: {found.describe()}")


def revocation_findings(session: Session, packages: Mapping[str, PackageRow]) -> list[Finding]:
    """One finding per installed package revoked since, or one for a list that fails to verify."""
    layout = session.layout
    shown = layout.relative(list_path(layout))
    try:
        if not (list_path(layout).exists() or read_state(layout).revocations_version):
            return []
        keys = key_store(layout.root).load()
        revocations = load_revocations(layout, keys).revocations
        findings = []
        for row in sorted(packages.values(), key=lambda item: item.id):
            if row.installed_digest is None or row.installed_version is None:
                continue
            installed = replace(row, digest=row.installed_digest)
            signer = archive_signer(layout, installed, keys) if revocations.revoked_keys else None
            found = revocations.matching(
                row.id, str(row.installed_version), row.installed_digest, signer
            )
            if found is not None:
                findings.append(
                    Finding(
                        row.id,
                        "revoked",
                        f"{row.id} {row.installed_version} is installed but {found.describe()}",
                    )
                )
    except ControlPlaneError as error:
        return [Finding(shown, "revocations-invalid", str(error))]
    return findings


def require_trusted_signer(signer: str, keys: Sequence[StoredKey]) -> None:
    """Raises UsageError unless ``signer`` is a trusted, unrevoked key (else the list would
    not verify)."""
    if signer not in {k.key_id for k in keys if not k.revoked}:
        raise UsageError(
            f"signing key {signer} is not trusted in keys/trusted: the list would not verify",
            hint="sign with a trusted key, or cpctl keys trust its .pub first",
        )


def revoke(
    session: Session,
    kind: RevocationKind,
    value: str,
    reason: str,
    *,
    key_path: Path,
    passphrase_file: Path | None,
    env: Mapping[str, str],
) -> RevokeResult:
    """See ``GateOperations.revoke``."""
    target = check_target(kind, value)
    reason = check_reason(reason)
    private = load_signing_key(key_path, passphrase_file, env)
    signer = key_id(private.public_key())
    layout = session.layout
    keys = key_store(layout.root).load()
    require_trusted_signer(signer, keys)
    state = read_state(layout)
    current = load_revocations(layout, keys, state).revocations
    if signer in current.revoked_keys or (kind is RevocationKind.KEY and target == signer):
        raise UsageError(f"key {signer} is revoked by this list; sign it with another trusted key")
    existing = current.find(kind, target)
    if existing is not None:
        return RevokeResult(
            kind=kind.value,
            value=target,
            reason=existing.reason,
            list_version=current.version,
            signer=signer,
            changed=False,
            warnings=(*session.warnings, f"{kind.value} {target} was already revoked"),
        )
    entry = Revocation(kind, target, reason, utc_now(), session.identity.user)
    updated = current.append(entry)
    data = updated.to_bytes()
    signature = sign_digest(private, hashlib.sha256(data).digest())
    path = list_path(layout)
    txn = session.begin()
    try:
        txn.put_bytes(path, data)
        txn.put_bytes(path.with_name(path.name + SIG_SUFFIX), encode_signature(signature))
        new_state = replace(state, revocations_version=updated.version)
        txn.put_bytes(state_path(layout), new_state.to_bytes())
        record = session.record(
            f"{kind.value}:{target}",
            details={
                "revocation": entry.to_json(),
                "list_version": updated.version,
                "signer": signer,
            },
            txn=txn,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return RevokeResult(
        kind=kind.value,
        value=target,
        reason=reason,
        list_version=updated.version,
        signer=signer,
        changed=True,
        warnings=tuple(session.warnings),
    )


def show(session: Session) -> RevocationsResult:
    """See ``GateOperations.revocations``."""
    verified = load_revocations(session.layout)
    return RevocationsResult(
        list_version=verified.revocations.version,
        signer=verified.signer,
        entries=verified.revocations.entries,
        warnings=tuple(session.warnings),
    )


def probe_revocations(session: Session, _subjects: object) -> DoctorCheck:
    """``cpctl doctor``: the revocation list verifies (else every install is refused)."""
    layout = session.layout
    shown = layout.relative(list_path(layout))
    state = read_state(layout)
    try:
        verified = load_revocations(layout, state=state)
    except RevocationError as error:
        return DoctorCheck(
            "revocations",
            "fail",
            f"{error}: every install is refused until it verifies",
            error.hint
            or f"restore {shown} and {shown}{SIG_SUFFIX} from version control or a backup",
        )
    accepted = (
        f"; registry manifest version {state.manifest_version} accepted"
        if state.manifest_version
        else ""
    )
    if not verified.revocations.entries:
        return DoctorCheck("revocations", "ok", f"no revocations{accepted}")
    return DoctorCheck(
        "revocations",
        "ok",
        f"{len(verified.revocations.entries)} revocation(s), list version "
        f"{verified.revocations.version} signed by {verified.signer}{accepted}",
    )
