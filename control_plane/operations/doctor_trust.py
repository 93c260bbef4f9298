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
from control_plane.registry.rows import Tier

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
            _listed(exposed, "; "),
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
            shown = _listed(unsigned)
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


def probe_tiers(session: Session, _subjects: object) -> DoctorCheck:
    """Installed packages whose registry row has since been marked untrusted or deprecated:
    install would refuse them now, so they deserve a look."""
    untrusted: list[str] = []
    deprecated: list[str] = []
    for row in sorted(session.packages().values(), key=lambda row: row.id):
        if row.installed_digest is None:
            continue
        if row.tier is Tier.UNTRUSTED:
            untrusted.append(row.id)
        if row.deprecated:
            deprecated.append(f"{row.id} (use {row.replacement})" if row.replacement else row.id)
    if untrusted:
        return DoctorCheck(
            "tiers",
            "fail",
            "installed but now untrusted: " + _listed(untrusted),
            "cpctl remove --id ID (an untrusted package is never installed again)",
        )
    if deprecated:
        return DoctorCheck(
            "tiers",
            "warn",
            "installed but now deprecated: " + _listed(deprecated),
            "install the replacement, then cpctl remove --id ID",
        )
    return DoctorCheck("tiers", "ok", "no installed package is untrusted or deprecated")


def _listed(items: list[str], separator: str = ", ") -> str:
    return separator.join(items[:_SHOWN]) + (
        f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    )
