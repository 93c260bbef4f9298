"""keys generate, list, trust and revoke: the root's signing keys.

Private keys are created with ``O_EXCL`` (never overwriting anything) and mode
0600; trusting and revoking change ``keys/trusted/`` and ``keys/revoked/``
through one transaction, ledgered, so a crash leaves the store before or after.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from control_plane.errors import (
    ConflictError,
    RejectedContentError,
    UsageError,
)
from control_plane.keystore import PUBLIC_SUFFIX, KeyStore, StoredKey, check_key_name
from control_plane.layout import shown_path
from control_plane.operations.results import Result
from control_plane.operations.revocation_signing import refuse_retiring_list_signer
from control_plane.operations.session import Session
from control_plane.operations.signatures import (
    key_store,
    list_revoked_keys,
    read_passphrase,
    read_small_file,
)
from control_plane.signing import (
    KEY_TYPES,
    KeyType,
    PublicKey,
    generate_key,
    key_id,
    key_type,
    load_public_key,
    private_pem,
    public_pem,
)

PRIVATE_SUFFIX = ".key"
MAX_PUBLIC_KEY_BYTES = 16 * 1024


@dataclass(frozen=True)
class KeyInfo:
    """One key of the store, as listed."""

    key_id: str
    type: str
    name: str
    status: str  # trusted | revoked
    path: str

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "type": self.type,
            "name": self.name,
            "status": self.status,
            "path": self.path,
        }


@dataclass(frozen=True)
class KeyGenerateResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.key-generate/1"
    key_id: str
    type: str
    name: str
    private_key: str
    public_key: str
    encrypted: bool
    trusted: str | None  # the keys/trusted/ path with --trust

    def payload(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "type": self.type,
            "name": self.name,
            "private_key": self.private_key,
            "public_key": self.public_key,
            "encrypted": self.encrypted,
            "trusted": self.trusted,
        }


@dataclass(frozen=True)
class KeyListResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.keys/1"
    keys: tuple[KeyInfo, ...]

    def payload(self) -> dict[str, Any]:
        return {"keys": [key.to_json() for key in self.keys]}


@dataclass(frozen=True)
class KeyChangeResult(Result):
    """keys trust / keys revoke."""

    SCHEMA: ClassVar[str] = "control-plane.key-change/1"
    action: str  # trust | revoke
    key: KeyInfo
    changed: bool

    def payload(self) -> dict[str, Any]:
        return {"action": self.action, "key": self.key.to_json(), "changed": self.changed}


def _info(key: StoredKey, root: Path) -> KeyInfo:
    return KeyInfo(
        key_id=key.key_id,
        type=key.key_type,
        name=key.name,
        status="revoked" if key.revoked else "trusted",
        path=shown_path(root, key.path),
    )


def _create_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Write a new file with exactly ``mode``; never follows or replaces anything."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # the umask may only have narrowed it; make it exact
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        if fd >= 0:
            os.close(fd)


def _prepare_directory(directory: Path, *, private_store: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if private_store:
        # Keep private keys out of version control even in a root without our .gitignore.
        with contextlib.suppress(FileExistsError):
            _create_exclusive(directory / ".gitignore", b"*\n", 0o644)


def parse_key_type(text: str) -> KeyType:
    """The key type named ``text``.

    Raises:
        UsageError: not one of the supported types.
    """
    for kind in KEY_TYPES:
        if kind == text:
            return kind
    raise UsageError(f"unknown key type {text!r}: use one of {', '.join(KEY_TYPES)}")


@dataclass(frozen=True)
class GeneratedKey:
    """A key pair written to disk (before any trust step)."""

    result: KeyGenerateResult
    public_key: PublicKey


def generate(
    root: Path,
    kind: str,
    *,
    name: str | None,
    passphrase_file: Path | None,
    out: Path | None,
    env: Mapping[str, str],
) -> GeneratedKey:
    """Create ``NAME.key`` (0600) and ``NAME.pub`` in ``out`` (default ``keys/private/``).

    Raises:
        UsageError: a bad type, name or passphrase file.
        ConflictError: either file already exists (nothing is ever overwritten).
    """
    key_kind = parse_key_type(kind)
    passphrase = read_passphrase(passphrase_file, env)
    if name is not None:
        check_key_name(name)
    directory = out if out is not None else key_store(root).private_dir
    directory = directory if directory.is_absolute() else Path.cwd() / directory
    private = generate_key(key_kind)
    kid = key_id(private.public_key())
    stem = name if name is not None else f"{key_kind}-{kid.removeprefix('sha256:')[:12]}"
    private_path = directory / (stem + PRIVATE_SUFFIX)
    public_path = directory / (stem + PUBLIC_SUFFIX)
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise ConflictError(
                f"{path} already exists; refusing to overwrite a key", hint="choose another --id"
            )
    _prepare_directory(directory, private_store=out is None)
    try:
        _create_exclusive(private_path, private_pem(private, passphrase), 0o600)
    except FileExistsError:
        raise ConflictError(f"{private_path} already exists; refusing to overwrite a key") from None
    try:
        _create_exclusive(public_path, public_pem(private), 0o644)
    except FileExistsError:
        private_path.unlink()  # ours, made a moment ago: leave nothing half-made
        raise ConflictError(f"{public_path} already exists; refusing to overwrite a key") from None
    result = KeyGenerateResult(
        key_id=kid,
        type=key_kind,
        name=stem,
        private_key=shown_path(root, private_path),
        public_key=shown_path(root, public_path),
        encrypted=passphrase is not None,
        trusted=None,
    )
    return GeneratedKey(result=result, public_key=private.public_key())


def list_keys(session: Session) -> KeyListResult:
    """See ``GateOperations.keys_list``."""
    keys = key_store(session.layout.root).load()
    return KeyListResult(
        keys=tuple(_info(key, session.layout.root) for key in keys),
        warnings=tuple(session.warnings),
    )


def read_public_key(path: Path) -> PublicKey:
    """A supported public key from a PEM file.

    Raises:
        UsageError: unreadable, too large, not a PEM public key, or an unsupported type.
    """
    return load_public_key(read_small_file(path, MAX_PUBLIC_KEY_BYTES, "public key"), str(path))


def trust(session: Session, public: PublicKey, name: str) -> KeyChangeResult:
    """See ``GateOperations.keys_trust``: add ``public`` to ``keys/trusted/NAME.pub``."""
    check_key_name(name)
    root = session.layout.root
    store = key_store(root)
    kid = key_id(public)
    if kid in list_revoked_keys(session.layout):
        raise RejectedContentError(
            f"key {kid} is revoked by registries/revocations.json; a revoked key is never "
            "trusted again",
            hint="generate a new key pair",
        )
    for stored in store.load():
        if stored.key_id == kid and stored.revoked:
            raise RejectedContentError(
                f"key {kid} was revoked ({shown_path(root, stored.path)}); a revoked key is never "
                "trusted again",
                hint="generate a new key pair",
            )
        if stored.key_id == kid:
            return KeyChangeResult(
                action="trust",
                key=_info(stored, root),
                changed=False,
                warnings=(*session.warnings, f"key {kid} is already trusted as {stored.name}"),
            )
    target = store.trusted_dir / (name + PUBLIC_SUFFIX)
    if target.exists() or target.is_symlink():
        raise ConflictError(
            f"{shown_path(root, target)} already holds another key", hint="pass --name NAME"
        )
    txn = session.begin()
    try:
        txn.put_bytes(target, public_pem(public))
        record = session.record(
            kid,
            digests={"key": kid},
            details={"name": name, "type": key_type(public), "path": shown_path(root, target)},
            txn=txn,
        )
        session.commit(txn, replace(record, action="trust"))
    except BaseException:
        txn.abort()
        raise
    info = KeyInfo(kid, key_type(public), name, "trusted", shown_path(root, target))
    return KeyChangeResult(action="trust", key=info, changed=True, warnings=tuple(session.warnings))


def _find_for_revocation(store: KeyStore, reference: str) -> StoredKey:
    """A trusted key by id, 12+ digit id prefix or name; else whatever ``store.find`` says."""
    bare = reference.removeprefix("sha256:")
    trusted = [key for key in store.load() if not key.revoked]
    matches = [key for key in trusted if reference in (key.key_id, key.name)]
    if not matches and len(bare) >= 12:
        matches = [key for key in trusted if key.key_id.removeprefix("sha256:").startswith(bare)]
    return matches[0] if len(matches) == 1 else store.find(reference)


def revoke(session: Session, reference: str) -> KeyChangeResult:
    """See ``GateOperations.keys_revoke``: move a trusted key to ``keys/revoked/``."""
    root = session.layout.root
    store = key_store(root)
    stored = _find_for_revocation(store, reference)
    if stored.revoked:
        return KeyChangeResult(
            action="revoke",
            key=_info(stored, root),
            changed=False,
            warnings=(*session.warnings, f"key {stored.key_id} is already revoked"),
        )
    refuse_retiring_list_signer(session, stored.key_id)
    target = store.revoked_dir / (stored.name + PUBLIC_SUFFIX)
    if target.exists() or target.is_symlink():
        # Another key was revoked under this name: keep both, named apart by key id.
        suffix = stored.key_id.removeprefix("sha256:")[:12]
        target = store.revoked_dir / f"{stored.name}-{suffix}{PUBLIC_SUFFIX}"
        if target.exists() or target.is_symlink():
            raise ConflictError(f"{shown_path(root, target)} already exists; remove it first")
    txn = session.begin()
    try:
        txn.put_bytes(target, public_pem(stored.public_key))
        txn.delete(stored.path)
        record = session.record(
            stored.key_id,
            digests={"key": stored.key_id},
            details={
                "name": stored.name,
                "type": stored.key_type,
                "from": shown_path(root, stored.path),
                "path": shown_path(root, target),
            },
            txn=txn,
        )
        session.commit(txn, replace(record, action="revoke"))
    except BaseException:
        txn.abort()
        raise
    info = KeyInfo(stored.key_id, stored.key_type, target.stem, "revoked", shown_path(root, target))
    return KeyChangeResult(
        action="revoke", key=info, changed=True, warnings=tuple(session.warnings)
    )
