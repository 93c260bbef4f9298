"""Detached signatures over artifacts: ed25519 and ECDSA P-256, with key ids.

A signature file (``NAME.tar.gz.sig``, ``registry.manifest.v1.json.sig`` ...)
holds one base64 signature on one line, the form ``cosign sign-blob`` writes:

- **ECDSA P-256**: the DER-encoded ECDSA signature over the SHA-256 of the
  blob, exactly ``cosign sign-blob --key cosign.key --output-signature F``
  (and ``key.sign(blob, ec.ECDSA(hashes.SHA256()))`` in the cryptography
  library).  Signing and verifying use the prehashed digest, so a
  multi-gigabyte archive is streamed once, never held in memory.
- **ed25519**: the 64-byte signature over ``DOMAIN || sha256(blob)``; the
  domain prefix keeps a signature made for an artifact from ever being a
  valid signature over anything else this product signs (checkpoints sign
  canonical JSON).

A signature names no key: the verifier tries each key it trusts and reports
the key id of the one that verifies, so the signer's identity always comes
from the verifier's trust store, never from the signature file.

A key id is ``sha256:`` + the hex SHA-256 of the public key's DER
SubjectPublicKeyInfo, the same rule the ledger's checkpoints use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from control_plane.errors import RejectedContentError, UsageError

KeyType = Literal["ed25519", "ecdsa-p256"]
KEY_TYPES: tuple[KeyType, ...] = ("ed25519", "ecdsa-p256")
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey

ED25519_DOMAIN = b"control-plane.artifact-signature/1\x00"
MAX_SIGNATURE_FILE_BYTES = 4096  # a base64 P-256 DER signature is ~100 bytes


class SignatureError(RejectedContentError):
    """A signature is malformed, or no trusted key verifies it: exit 5."""


def key_id(public_key: PublicKey) -> str:
    """``sha256:HEX`` of the public key's DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def key_type(key: PublicKey | PrivateKey) -> KeyType:
    """The product's name for a key's algorithm."""
    if isinstance(key, Ed25519PublicKey | Ed25519PrivateKey):
        return "ed25519"
    return "ecdsa-p256"


def generate_key(kind: KeyType) -> PrivateKey:
    """A new private key of ``kind``.

    Raises:
        UsageError: an unknown key type.
    """
    if kind == "ed25519":
        return Ed25519PrivateKey.generate()
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise UsageError(f"unknown key type {kind!r}: use one of {', '.join(KEY_TYPES)}")


def private_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_pem(key: PublicKey | PrivateKey) -> bytes:
    """The public half as SubjectPublicKeyInfo PEM."""
    public = (
        key.public_key() if isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _supported(key: object, where: str) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise UsageError(f"{where}: ECDSA keys must be on P-256, not {key.curve.name}")
        return
    if not isinstance(
        key, Ed25519PublicKey | Ed25519PrivateKey
    ):  # RSA, DSA, X25519 ...: never silently accepted
        raise UsageError(f"{where}: unsupported key type; use one of {', '.join(KEY_TYPES)}")


def load_private_key(data: bytes, where: str, passphrase: bytes | None = None) -> PrivateKey:
    """Parse a PEM private key (PKCS#8 or traditional), decrypting with ``passphrase``.

    Raises:
        UsageError: not a PEM key, a wrong or missing passphrase, or an unsupported type.
    """
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError:
        if passphrase:
            raise UsageError(f"{where}: the key is not encrypted; drop the passphrase") from None
        raise UsageError(
            f"{where}: the key is encrypted",
            hint="set CONTROL_PLANE_KEY_PASSPHRASE or pass --passphrase-file",
        ) from None
    except ValueError:
        raise UsageError(f"{where}: not a PEM private key, or the passphrase is wrong") from None
    _supported(key, where)
    assert isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey)  # noqa: S101
    return key


def load_public_key(data: bytes, where: str) -> PublicKey:
    """Parse a PEM SubjectPublicKeyInfo public key.

    Raises:
        UsageError: not a PEM public key, or an unsupported type.
    """
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise UsageError(f"{where}: not a PEM public key") from None
    _supported(key, where)
    assert isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey)  # noqa: S101
    return key


def sign_digest(key: PrivateKey, sha256_digest: bytes) -> bytes:
    """The raw signature over a blob whose SHA-256 is ``sha256_digest``."""
    if len(sha256_digest) != 32:
        raise ValueError("sign_digest takes the 32-byte SHA-256 of the blob")
    if isinstance(key, Ed25519PrivateKey):
        return key.sign(ED25519_DOMAIN + sha256_digest)
    return key.sign(sha256_digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def _verifies(key: PublicKey, sha256_digest: bytes, signature: bytes) -> bool:
    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(signature, ED25519_DOMAIN + sha256_digest)
        else:
            key.verify(signature, sha256_digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


def encode_signature(signature: bytes) -> bytes:
    """The signature file's bytes: base64 on one line, with a newline."""
    return base64.b64encode(signature) + b"\n"


def decode_signature(data: bytes, where: str) -> bytes:
    """Parse a signature file (base64, surrounding whitespace allowed, as cosign writes it).

    Raises:
        SignatureError: too large, not base64, or empty.
    """
    if len(data) > MAX_SIGNATURE_FILE_BYTES:
        raise SignatureError(f"{where}: {len(data)} bytes is too large for a signature file")
    text = data.strip()
    try:
        signature = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{where}: not a base64 signature") from None
    if not signature:
        raise SignatureError(f"{where}: empty signature")
    return signature


def find_signer(
    sha256_digest: bytes, signature: bytes, keys: Iterable[tuple[str, PublicKey]]
) -> str | None:
    """The key id of the first of ``keys`` (key id, key) whose signature this is, else None."""
    for kid, key in keys:
        if _verifies(key, sha256_digest, signature):
            return kid
    return None


def verify_digest(
    public_key: PublicKey, sha256_digest: bytes, signature: bytes, where: str
) -> None:
    """Raise unless ``signature`` is ``public_key``'s signature over the blob.

    Raises:
        SignatureError: the signature does not verify.
    """
    if not _verifies(public_key, sha256_digest, signature):
        raise SignatureError(f"{where}: signature does not verify with key {key_id(public_key)}")
