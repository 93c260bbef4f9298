"""``cpctl doctor`` probes for the supply chain: the key store and the signing policy.

Kept apart from ``doctor.py`` so each file stays about one subject; the probes
have the same shape (``Probe``) and join ``doctor.PROBES``.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING

from control_plane.keystore import KeyStore, StoredKey
from control_plane.ledger import Ledger
from control_plane.operations import revoking
from control_plane.operations.results import DoctorCheck
from control_plane.operations.session import Session

if TYPE_CHECKING:
    from control_plane.operations.doctor import Subjects

_PRIVATE_MARKER = b"PRIVATE KEY"
_SHOWN = 3
_KEY_FILE_PREFIX = 64 * 1024  # a PEM key is far smaller; never read a huge stray file whole


def key_store(session: Session) -> KeyStore:
    return KeyStore(session.layout.root / "keys")


def _holds_private_key(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as handle:
        return _PRIVATE_MARKER in handle.read(_KEY_FILE_PREFIX)


def _exposed_private_keys(store: KeyStore, root: Path) -> list[str]:
    """Private key material where it would be committed, or readable by other users."""
    problems = []
    for directory in (store.trusted_dir, store.revoked_dir):
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if _holds_private_key(path):
                problems.append(f"{path.relative_to(root).as_posix()} holds a private key")
    if store.private_dir.is_dir():
        for path in sorted(store.private_dir.iterdir()):
            if _holds_private_key(path) and stat.S_IMODE(path.stat().st_mode) & 0o077:
                problems.append(f"{path.relative_to(root).as_posix()} is readable by other users")
    return problems


def probe_keys(session: Session, _subjects: object) -> DoctorCheck:
    store = key_store(session)
    root = session.layout.root
    exposed = _exposed_private_keys(store, root)
    if exposed:
        return DoctorCheck(
            "keys",
            "fail",
            "; ".join(exposed[:_SHOWN])
            + (f"; and {len(exposed) - _SHOWN} more" if len(exposed) > _SHOWN else ""),
            "keep private keys only in keys/private/ (git-ignored) with mode 600: "
            "chmod 600 keys/private/*; move any private key out of keys/trusted/ and rotate it",
        )
    keys = store.load()  # raises on an unreadable, unsupported or duplicated key file
    trusted = [key for key in keys if not key.revoked]
    revoked = [key for key in keys if key.revoked]
    return DoctorCheck("keys", "ok", f"{len(trusted)} trusted key(s), {len(revoked)} revoked")


def _unsigned_archives(session: Session) -> list[str]:
    root = session.layout.root
    return sorted(
        row.id for row in session.packages().values() if not (root / f"{row.source}.sig").is_file()
    )


def probe_policy(session: Session, _subjects: object) -> DoctorCheck:
    policy = session.config.policy
    trusted: list[StoredKey] = [key for key in key_store(session).load() if not key.revoked]
    summary = (
        f"require_signatures = {str(policy.require_signatures).lower()}; "
        f"manifest threshold {policy.manifest_threshold} of {len(trusted)} trusted key(s)"
    )
    if policy.require_signatures and not trusted:
        return DoctorCheck(
            "policy",
            "fail",
            "require_signatures is on but no key is trusted: every install will be refused",
            "cpctl keys trust FILE.pub (or cpctl keys generate --trust)",
        )
    if not trusted:
        return DoctorCheck(
            "policy",
            "ok",
            "no key is trusted: archive signatures and registry manifests are not checked",
        )
    if policy.manifest_threshold > len(trusted):
        return DoctorCheck(
            "policy",
            "warn",
            f"manifest_threshold is {policy.manifest_threshold} but only {len(trusted)} key(s) are "
            "trusted: no registry manifest can be accepted",
            "trust more keys (cpctl keys trust FILE.pub) or lower [policy] manifest_threshold",
        )
    if policy.require_signatures:
        unsigned = _unsigned_archives(session)
        if unsigned:
            shown = ", ".join(unsigned[:_SHOWN]) + (
                f" and {len(unsigned) - _SHOWN} more" if len(unsigned) > _SHOWN else ""
            )
            return DoctorCheck(
                "policy",
                "fail",
                f"require_signatures is on and {len(unsigned)} registered archive(s) are unsigned "
                f"({shown}): installing them will be refused",
                "sign them: cpctl sign --id ID --key keys/private/NAME.key",
            )
    return DoctorCheck("policy", "ok", summary)


def accepted_manifest_versions(ledger: Ledger) -> int:
    """The newest registry manifest version the ledger records as accepted by an install."""
    newest = 0
    for entry in ledger.entries():
        fields = entry.fields
        details = fields.get("details")
        if fields.get("result") != "ok" or not isinstance(details, dict):
            continue
        manifest = details.get("manifest")
        if isinstance(manifest, dict) and isinstance(manifest.get("version"), int):
            newest = max(newest, manifest["version"])
    return newest


def probe_trust_state(session: Session, subjects: Subjects) -> DoctorCheck:
    """``registries/trust_state.json`` holds the last accepted manifest version, and it is
    unsigned: compare it with what the signed ledger recorded, so a rolled-back copy (which
    would let an older manifest be replayed) is caught."""
    state = revoking.read_state(session.layout)
    recorded = accepted_manifest_versions(subjects.ledger)
    shown = session.layout.relative(revoking.state_path(session.layout))
    if state.manifest_version < recorded:
        return DoctorCheck(
            "trust-state",
            "fail",
            f"{shown} says manifest version {state.manifest_version} was the last accepted, but the "
            f"ledger records version {recorded}: an older manifest could be replayed",
            f"restore {shown} from version control or a backup (manifest_version = {recorded})",
        )
    if not recorded and not state.manifest_version:
        return DoctorCheck("trust-state", "ok", "no registry manifest accepted yet")
    return DoctorCheck(
        "trust-state",
        "ok",
        f"last accepted registry manifest version {state.manifest_version} (ledger: {recorded})",
    )
