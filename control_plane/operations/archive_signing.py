"""sign: sign an archive already registered, writing ``packages_store/NAME.tar.gz.sig``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from control_plane.digests import digests_equal, format_digest, parse_digest
from control_plane.errors import DigestMismatchError
from control_plane.operations.hints import unknown_package
from control_plane.operations.packing import store_archive_path
from control_plane.operations.results import Result
from control_plane.operations.session import Session
from control_plane.operations.signatures import (
    refuse_revoked_signer,
    signature_bytes,
    signature_path,
)
from control_plane.registry import validate_package_id
from control_plane.signing import PrivateKey


@dataclass(frozen=True)
class SignResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.sign/1"
    id: str
    archive: str
    digest: str
    signature: str
    signer: str

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "archive": self.archive,
            "digest": self.digest,
            "signature": self.signature,
            "signer": self.signer,
        }


def sign(session: Session, package_id: str, key: PrivateKey) -> SignResult:
    """See ``GateOperations.sign``: sign the registered archive of ``package_id``."""
    validate_package_id(package_id)
    packages = session.packages()
    row = packages.get(package_id)
    if row is None:
        raise unknown_package(package_id, packages)
    signer = refuse_revoked_signer(session, key)
    archive = store_archive_path(session, session.layout.root / row.source)
    with archive.open("rb") as handle:
        actual = hashlib.file_digest(handle, "sha256").hexdigest()
    if not digests_equal(actual, parse_digest(row.digest)):
        raise DigestMismatchError(
            f"{row.source} is sha256:{actual}, not the registered {row.digest}; refusing to sign it"
        )
    sig_path = signature_path(archive)
    txn = session.begin()
    try:
        txn.put_bytes(sig_path, signature_bytes(key, actual))
        record = replace(
            session.record(
                package_id,
                digests={"archive": format_digest(actual)},
                details={"signature": session.layout.relative(sig_path), "signer": signer},
                txn=txn,
            ),
            action="sign",
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return SignResult(
        id=package_id,
        archive=row.source,
        digest=row.digest,
        signature=session.layout.relative(sig_path),
        signer=signer,
        warnings=tuple(session.warnings),
    )
