"""``cpctl doctor`` probes for the supply chain: the key store and the signing policy.

Kept apart from ``doctor.py`` so each file stays about one subject; the probes
have the same shape (``Probe``) and join ``doctor.PROBES``.
"""

from __future__ import annotations

import stat
from pathlib import Path

from control_plane.keystore import KeyStore, StoredKey
from control_plane.operations.results import DoctorCheck
from control_plane.operations.session import Session

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
