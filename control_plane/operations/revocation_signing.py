"""Re-signing the revocation list, and keeping its signer from being retired under it.

The list verifies only with a trusted, unrevoked key.  Retiring the key that
signed it (``keys revoke``) would leave a list nothing verifies: every
install fails closed and ``revoke`` cannot append.  So ``keys revoke``
refuses to retire the list's signer, and ``revoke --re-sign`` signs the
list as it is (same entries, same version) with another trusted key first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from control_plane.errors import ConflictError, ControlPlaneError, UsageError
from control_plane.operations.results import Result
from control_plane.operations.revoking import list_path, load_revocations, require_trusted_signer
from control_plane.operations.session import Session
from control_plane.operations.signatures import key_store, load_signing_key
from control_plane.revocations import SIG_SUFFIX
from control_plane.signing import encode_signature, key_id, sign_digest

RESIGN_HINT = "cpctl revoke --re-sign --key OTHER.key (another trusted key)"


@dataclass(frozen=True)
class RevocationsSignResult(Result):
    """``cpctl revoke --re-sign``: ``changed`` is False when the key already signed the list."""

    SCHEMA: ClassVar[str] = "control-plane.revocations-sign/1"
    path: str
    list_version: int
    signer: str
    previous_signer: str | None
    changed: bool

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "list_version": self.list_version,
            "signer": self.signer,
            "previous_signer": self.previous_signer,
            "changed": self.changed,
        }


def resign(
    session: Session, key_path: Path, passphrase_file: Path | None, env: Mapping[str, str]
) -> RevocationsSignResult:
    """See ``GateOperations.resign_revocations``."""
    private = load_signing_key(key_path, passphrase_file, env)
    signer = key_id(private.public_key())
    layout = session.layout
    keys = key_store(layout.root).load()
    require_trusted_signer(signer, keys)
    path = list_path(layout)
    shown = layout.relative(path)
    if not path.exists():
        raise UsageError(f"{shown} does not exist: there is no revocation list to re-sign")
    # Only a list that verifies now is vouched for again: never launder a tampered one.
    current = load_revocations(layout, keys)
    if signer in current.revocations.revoked_keys:
        raise UsageError(f"key {signer} is revoked by this list; sign it with another trusted key")
    version = current.revocations.version
    result = RevocationsSignResult(
        path=shown,
        list_version=version,
        signer=signer,
        previous_signer=current.signer,
        changed=True,
    )
    if current.signer == signer:
        warning = f"{shown} is already signed by {signer}"
        return replace(result, changed=False, warnings=(*session.warnings, warning))
    # The verified list is canonical: its bytes are exactly what was just verified.
    data = current.revocations.to_bytes()
    signature = sign_digest(private, hashlib.sha256(data).digest())
    txn = session.begin()
    try:
        txn.put_bytes(path.with_name(path.name + SIG_SUFFIX), encode_signature(signature))
        details = {"list_version": version, "signer": signer, "previous_signer": current.signer}
        session.commit(txn, session.record(shown, details=details, txn=txn))
    except BaseException:
        txn.abort()
        raise
    return replace(result, warnings=tuple(session.warnings))


def refuse_retiring_list_signer(session: Session, retiring: str) -> None:
    """Refuse (exit 4) to retire the key that signs the verified revocation list.

    A list that does not verify now has nothing to lose: that is for ``cpctl
    revocations`` and ``doctor`` to report, not a reason to keep a key.

    Raises:
        ConflictError: ``retiring`` is the list's signer.
    """
    try:
        current = load_revocations(session.layout)
    except ControlPlaneError:
        return
    if current.signer == retiring:
        shown = session.layout.relative(list_path(session.layout))
        raise ConflictError(
            f"key {retiring} signs {shown}; retiring it would leave a list nothing verifies"
            " (every install would be refused)",
            hint=f"re-sign the list first: {RESIGN_HINT}",
        )
