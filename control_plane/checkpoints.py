"""Signed checkpoints of the ledger's Merkle tree, and the root's ed25519 ledger key.

A checkpoint is one line of canonical JSON (keys sorted, no spaces):

    {"key_id":"sha256:<hex>","root_hash":"<hex>","schema":"control-plane.checkpoint/1",
     "signature":"<base64>","time":"<RFC 3339 UTC>","tree_size":<int>}

``signature`` is the ed25519 signature over the canonical JSON of every other
member; ``key_id`` is ``sha256:`` and the hex SHA-256 of the public key's DER
SubjectPublicKeyInfo.  ``ledger/checkpoints.jsonl`` keeps one per operation;
the private key lives outside version control (``.control_plane/ledger.key``,
mode 0600) and the public key is committed (``ledger/ledger.pub``).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from control_plane.appendlog import AppendLog
from control_plane.digests import is_hex64
from control_plane.errors import CheckFailedError, UsageError
from control_plane.jsoncanon import canonical_json, strict_loads
from control_plane.signing import key_id

CHECKPOINT_SCHEMA = "control-plane.checkpoint/1"
CHECKPOINTS_FILE = "checkpoints.jsonl"
PUBLIC_KEY_FILE = "ledger.pub"
_KEYS = frozenset({"schema", "tree_size", "root_hash", "time", "key_id", "signature"})


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo)."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_key(private_path: Path, public_path: Path) -> Ed25519PrivateKey:
    """Create a new ed25519 key: private PEM with mode 0600, public PEM beside the ledger.

    Raises:
        UsageError: either file already exists (keys are never overwritten).
    """
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_bytes(public_pem(key.public_key()))
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read the ledger signing key, refusing one that others can read.

    Raises:
        UsageError: unreadable, not an unencrypted ed25519 PEM, or group/world accessible.
    """
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the ledger signing key {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise UsageError(
            f"ledger signing key {path} is accessible by other users (mode {mode & 0o777:o})",
            hint=f"chmod 600 {path}",
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"ledger signing key {path} is not a usable PEM key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"ledger signing key {path} is not an ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an ed25519 public key PEM.

    Raises:
        UsageError: unreadable or not an ed25519 public key.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the ledger public key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{path} is not an ed25519 public key")
    return key


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the ledger's first ``tree_size`` entries have Merkle root ``root_hash``."""

    tree_size: int
    root_hash: str
    time: str
    key_id: str
    signature: str

    def body(self) -> dict[str, Any]:
        """Every member but the signature: what is signed."""
        return {
            "schema": CHECKPOINT_SCHEMA,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "time": self.time,
            "key_id": self.key_id,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}

    def encode(self) -> bytes:
        """The stored line: canonical JSON."""
        return canonical_json(self.to_json())


def sign_checkpoint(key: Ed25519PrivateKey, tree_size: int, root: bytes, time: str) -> Checkpoint:
    """A checkpoint of ``tree_size`` entries with Merkle ``root``, signed by ``key``."""
    unsigned = Checkpoint(tree_size, root.hex(), time, key_id(key.public_key()), "")
    signature = key.sign(canonical_json(unsigned.body()))
    return Checkpoint(
        tree_size, root.hex(), time, unsigned.key_id, base64.b64encode(signature).decode("ascii")
    )


def parse_checkpoint(data: Mapping[str, Any] | bytes, where: str) -> Checkpoint:
    """A checkpoint from its JSON (bytes are parsed strictly); shape only, not the signature.

    Raises:
        CheckFailedError: not a well-formed checkpoint (``where`` names it in the message).
    """
    if isinstance(data, bytes):
        try:
            data = strict_loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckFailedError(f"{where}: invalid JSON ({exc})") from None
    if not isinstance(data, Mapping) or set(data) != _KEYS:
        raise CheckFailedError(f"{where}: not a checkpoint (expected keys {sorted(_KEYS)})")
    if data["schema"] != CHECKPOINT_SCHEMA:
        raise CheckFailedError(f"{where}: unknown schema {data['schema']!r}")
    size, root, time = data["tree_size"], data["root_hash"], data["time"]
    kid, signature = data["key_id"], data["signature"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CheckFailedError(f"{where}: tree_size must be a non-negative integer")
    if not isinstance(root, str) or not is_hex64(root):
        raise CheckFailedError(f"{where}: root_hash must be 64 lower-case hex digits")
    if not isinstance(kid, str) or not kid.startswith("sha256:") or not is_hex64(kid[7:]):
        raise CheckFailedError(f"{where}: key_id must be sha256:HEX")
    if not isinstance(time, str) or not isinstance(signature, str):
        raise CheckFailedError(f"{where}: time and signature must be strings")
    return Checkpoint(size, root, time, kid, signature)


def verify_checkpoint(checkpoint: Checkpoint, public_key: Ed25519PublicKey, where: str) -> None:
    """Check the checkpoint's key id and ed25519 signature.

    Raises:
        CheckFailedError: signed by another key, or the signature does not verify.
    """
    expected = key_id(public_key)
    if checkpoint.key_id != expected:
        raise CheckFailedError(
            f"{where}: signed by key {checkpoint.key_id}, not the root's ledger key {expected}"
        )
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public_key.verify(signature, canonical_json(checkpoint.body()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise CheckFailedError(f"{where}: signature does not verify") from None


class CheckpointLog:
    """``ledger/checkpoints.jsonl``: one signed checkpoint per line, oldest first."""

    def __init__(self, ledger_dir: Path) -> None:
        self.log = AppendLog(ledger_dir / CHECKPOINTS_FILE, "checkpoints")

    @property
    def path(self) -> Path:
        return self.log.path

    def append(self, checkpoint: Checkpoint) -> None:
        """Append one checkpoint (the caller holds the root lock)."""
        self.log.append(checkpoint.encode())

    def newest(self) -> Checkpoint | None:
        """The last complete checkpoint, or None.

        Raises:
            CheckFailedError: the last line is not a well-formed checkpoint.
        """
        lines = self.log.tail(1)
        return parse_checkpoint(lines[0], f"{CHECKPOINTS_FILE} (last line)") if lines else None

    def entries(self) -> Iterator[tuple[int, Checkpoint]]:
        """Every checkpoint with its line number, strictly parsed and canonically encoded.

        Raises:
            CheckFailedError: a line is malformed or not in canonical encoding.
        """
        for number, line in self.log.lines():
            where = f"{CHECKPOINTS_FILE} line {number}"
            checkpoint = parse_checkpoint(line, where)
            if checkpoint.encode() != line:
                raise CheckFailedError(f"{where}: not in canonical encoding")
            yield number, checkpoint
