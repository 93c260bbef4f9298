"""Artifact signatures: both key types, cosign's sign-blob form, tampering, key ids."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from control_plane.errors import UsageError
from control_plane.signing import (
    SignatureError,
    decode_signature,
    encode_signature,
    find_signer,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    private_pem,
    public_pem,
    sign_digest,
    verify_digest,
)

BLOB = b"an archive's bytes\x00\x01" * 100


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_round_trip_through_pem_and_signature_file(kind: str) -> None:
    key = generate_key(kind)  # type: ignore[arg-type]
    loaded = load_private_key(private_pem(key, b"pass phrase"), "k", b"pass phrase")
    public = load_public_key(public_pem(loaded), "k.pub")
    assert key_id(public) == key_id(key.public_key())
    digest = hashlib.sha256(BLOB).digest()
    signature = decode_signature(encode_signature(sign_digest(loaded, digest)), "sig")
    verify_digest(public, digest, signature, "sig")
    assert (
        find_signer(digest, signature, [("other", generate_key(kind).public_key()), ("me", public)])
        == "me"
    )  # type: ignore[arg-type]
    tampered = hashlib.sha256(BLOB + b"!").digest()
    with pytest.raises(SignatureError):
        verify_digest(public, tampered, signature, "sig")
    assert find_signer(tampered, signature, [("me", public)]) is None


def test_cosign_sign_blob_signature_verifies() -> None:
    # cosign sign-blob with a P-256 key: base64(DER(ECDSA-SHA256(blob))), no trailing newline.
    key = ec.generate_private_key(ec.SECP256R1())
    cosign_file = base64.b64encode(key.sign(BLOB, ec.ECDSA(hashes.SHA256())))
    signature = decode_signature(cosign_file, "blob.sig")
    verify_digest(key.public_key(), hashlib.sha256(BLOB).digest(), signature, "blob.sig")


def test_ed25519_signature_is_domain_separated() -> None:
    # A plain ed25519 signature over the digest (no domain) must not verify.
    key = generate_key("ed25519")
    digest = hashlib.sha256(BLOB).digest()
    raw = key.sign(digest)  # type: ignore[call-arg]
    with pytest.raises(SignatureError):
        verify_digest(key.public_key(), digest, raw, "sig")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"not base64!!", "not a base64"),
        (b"A" * 5000, "too large"),
    ],
    ids=["empty", "garbage", "huge"],
)
def test_malformed_signature_files(data: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        decode_signature(data, "x.sig")


def test_wrong_passphrase_and_unsupported_keys() -> None:
    key = generate_key("ecdsa-p256")
    with pytest.raises(UsageError, match="passphrase"):
        load_private_key(private_pem(key, b"right"), "k", b"wrong")
    with pytest.raises(UsageError, match="encrypted"):
        load_private_key(private_pem(key, b"right"), "k")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(UsageError, match="unsupported"):
        load_public_key(public_pem(rsa_key.public_key()), "rsa.pub")  # type: ignore[arg-type]
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(UsageError, match="P-256"):
        load_public_key(public_pem(p384), "p384.pub")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        generate_key("rsa")  # type: ignore[arg-type]
