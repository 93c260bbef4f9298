"""Signed archives: load a signing key, sign an archive, check an archive's ``.sig``.

``NAME.tar.gz.sig`` sits beside its archive in ``packages_store/`` and holds one
base64 line (see ``control_plane.signing``): for ECDSA P-256 exactly what
``cosign sign-blob`` writes, for ed25519 a domain-separated signature over the
archive's SHA-256.  Install checks it against ``keys/trusted/`` after the
archive's digest has been checked against the registry, so the signature is
verified over exactly the bytes that will be extracted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from control_plane.digests import parse_digest
from control_plane.errors import UsageError
from control_plane.keystore import KeyStore, identify_signer
from control_plane.layout import RootLayout
from control_plane.operations import revoking
from control_plane.operations.session import Session
from control_plane.registry import PackageRow
from control_plane.signing import (
    PrivateKey,
    SignatureError,
    decode_signature,
    encode_signature,
    key_id,
    load_private_key,
    sign_digest,
)

# The name of an environment variable, not a secret.
PASSPHRASE_VARIABLE = "CONTROL_PLANE_KEY_PASSPHRASE"  # noqa: S105
SIGNATURE_SUFFIX = ".sig"
MAX_PRIVATE_KEY_BYTES = 16 * 1024
MAX_PASSPHRASE_FILE_BYTES = 4096


def key_store(session_root: Path) -> KeyStore:
    """The key store of the root at ``session_root``."""
    return KeyStore(session_root / "keys")


def signature_path(archive: Path) -> Path:
    """Where an archive's detached signature lives: ``NAME.tar.gz.sig`` beside it."""
    return archive.with_name(archive.name + SIGNATURE_SUFFIX)


def read_small_file(path: Path, limit: int, what: str) -> bytes:
    """Read a regular file of at most ``limit`` bytes; one-line UsageError otherwise."""
    try:
        if path.is_symlink() or not path.is_file():
            raise UsageError(f"{what} {path} is not a regular file")
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise UsageError(f"{what} {path} is larger than {limit} bytes")
    return data


def read_passphrase(
    passphrase_file: Path | None, env: Mapping[str, str] | None = None
) -> bytes | None:
    """The private key passphrase: the first line of ``passphrase_file``, else
    ``CONTROL_PLANE_KEY_PASSPHRASE``, else None (an unencrypted key).

    Raises:
        UsageError: the file is unreadable, too large, or its first line is empty.
    """
    if passphrase_file is not None:
        data = read_small_file(passphrase_file, MAX_PASSPHRASE_FILE_BYTES, "passphrase file")
        first = data.split(b"\n", 1)[0].removesuffix(b"\r")
        if not first:
            raise UsageError(f"passphrase file {passphrase_file}: the first line is empty")
        return first
    value = (os.environ if env is None else env).get(PASSPHRASE_VARIABLE)
    return value.encode("utf-8") if value else None


def load_signing_key(
    path: Path, passphrase_file: Path | None = None, env: Mapping[str, str] | None = None
) -> PrivateKey:
    """Load the PEM private key at ``path``, decrypted with ``read_passphrase``'s passphrase.

    Raises:
        UsageError: unreadable, not a supported private key, or a wrong/missing passphrase.
    """
    data = read_small_file(path, MAX_PRIVATE_KEY_BYTES, "private key")
    return load_private_key(data, str(path), read_passphrase(passphrase_file, env))


def signature_bytes(key: PrivateKey, hex_sha256: str) -> bytes:
    """The signature file's content for a blob whose SHA-256 is ``hex_sha256``."""
    return encode_signature(sign_digest(key, bytes.fromhex(hex_sha256)))


def check_signature(session: Session, row: PackageRow, archive_path: Path) -> str | None:
    """Check ``archive_path``'s ``.sig`` (call only after its digest matched ``row.digest``).

    Returns the signer's key id, or None for an unsigned archive while ``[policy]
    require_signatures`` is off (a warning on the session says so).  A signature that
    is present must verify with a trusted key, whatever the policy.

    Raises:
        SignatureError: a malformed or replaced signature file, a signature no trusted
            key verifies, one by a revoked key, or (under ``require_signatures``) none.
        UsageError: an unreadable key store.
    """
    required = session.config.policy.require_signatures
    sig_path = signature_path(archive_path)
    shown = session.layout.relative(sig_path)
    if not (sig_path.exists() or sig_path.is_symlink()):
        if required:
            raise SignatureError(
                f"{row.id}: {session.layout.relative(archive_path)} is unsigned and "
                "[policy] require_signatures is on",
                hint=f"cpctl sign --id {row.id} --key KEYFILE",
            )
        session.warnings.append(f"{row.id}: unsigned archive installed unverified")
        return None
    if sig_path.is_symlink() or not sig_path.is_file():
        raise SignatureError(f"{shown}: a signature must be a regular file")
    try:
        data = sig_path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read {shown}: {exc.strerror}") from None
    signature = decode_signature(data, shown)
    digest = bytes.fromhex(parse_digest(row.digest))
    signer = identify_signer(key_store(session.layout.root).load(), digest, signature)
    if signer is not None and signer.revoked:
        raise SignatureError(
            f"{shown}: signed by revoked key {signer.key_id} ({signer.name}); refusing {row.id}"
        )
    if signer is not None:
        return signer.key_id
    # A signature is a claim; one that no trusted key confirms is refused whatever the policy:
    # an unknown signer and a signature over other bytes look the same, and both fail closed.
    raise SignatureError(
        f"{shown}: no trusted key verifies this signature of {row.id} "
        "(an unknown signer, or the archive changed since it was signed)",
        hint="cpctl keys trust the signer's public key, or re-sign the archive (cpctl sign)",
    )


def list_revoked_keys(layout: RootLayout) -> frozenset[str]:
    """Key ids the root's signed revocation list revokes (empty when it never had one).

    Raises:
        RevocationError: the list exists (or existed) and does not verify: fail closed.
    """
    if not (revoking.list_path(layout).exists() or revoking.read_state(layout).revocations_version):
        return frozenset()
    return revoking.load_revocations(layout).revocations.revoked_keys


def refuse_revoked_signer(session: Session, key: PrivateKey) -> str:
    """The signing key's id; warn when the store does not trust it yet.

    Raises:
        SignatureError: the key is revoked in this root (keys/revoked/ or the revocation list).
        RevocationError: the revocation list does not verify.
    """
    kid = key_id(key.public_key())
    if kid in list_revoked_keys(session.layout):
        raise SignatureError(
            f"key {kid} is revoked by registries/revocations.json; refusing to sign"
        )
    for stored in key_store(session.layout.root).load():
        if stored.key_id == kid:
            if stored.revoked:
                raise SignatureError(f"key {kid} ({stored.name}) is revoked; refusing to sign")
            return kid
    session.warnings.append(
        f"signing key {kid} is not in keys/trusted/: install refuses its signatures "
        "until an admin runs cpctl keys trust on its public key"
    )
    return kid
