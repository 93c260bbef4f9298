"""Signed registry manifest v1: export, sign, verify, and install --manifest refusals.

Every refusal is exit 5 with one line naming why, and writes nothing (registries,
trust state, installed files and the ledger are compared byte for byte).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from control_plane import signing
from control_plane.operations import manifest_trust
from tests.conftest import CliFn, assert_rejection_ledgered, snapshot, write

MANIFEST = "registries/registry.manifest.v1.json"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

KeyMaker = Callable[..., Path]


@pytest.fixture
def make_key(tmp_path: Path) -> KeyMaker:
    """A private key file outside the root; ``trust_in`` puts its .pub in keys/trusted/."""

    def make(name: str, kind: signing.KeyType = "ed25519", trust_in: Path | None = None) -> Path:
        key = signing.generate_key(kind)
        path = write(tmp_path / "private" / f"{name}.key", signing.private_pem(key))
        if trust_in is not None:
            write(trust_in / "keys" / "trusted" / f"{name}.pub", signing.public_pem(key))
        return path

    return make


def manifest_sigs(root: Path, name: str = MANIFEST) -> Path:
    return root / (name + ".sigs")


def export(cpctl: CliFn, root: Path, *args: str) -> dict:
    outcome = cpctl("registry", "export", *args, "--json", root=root, cwd=root)
    assert outcome.exit_code == 0, outcome.stderr
    return outcome.json()


def install(cpctl: CliFn, root: Path, package_id: str = "PKG-DOCS", manifest: str = MANIFEST):
    return cpctl("install", "--manifest", manifest, "--id", package_id, root=root, cwd=root)


def refused(cpctl: CliFn, root: Path, why: str, **kwargs: str) -> None:
    """install --manifest is exit 5 naming ``why``, and nothing changed but the ledgered
    rejection."""
    before = snapshot(root)
    outcome = install(cpctl, root, **kwargs)
    assert outcome.exit_code == 5, outcome.stderr
    assert why in outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1
    assert why in assert_rejection_ledgered(root, before)["details"]["reason"]


@pytest.fixture
def signed(packed: Path, cpctl: CliFn, make_key: KeyMaker) -> Path:
    """A root with PKG-DOCS packed and manifest version 1 signed by trusted key alpha."""
    key = make_key("alpha", trust_in=packed)
    export(cpctl, packed, "--sign", str(key))
    return packed


def set_policy(root: Path, **settings: int) -> None:
    config = root / "control_plane.toml"
    text = config.read_text()
    for name, value in settings.items():
        text = text.replace(
            next(line for line in text.splitlines() if line.startswith(f"{name} =")),
            f"{name} = {value}",
        )
    config.write_text(text)


def test_export_is_canonical_and_lists_every_package(signed: Path) -> None:
    data = (signed / MANIFEST).read_bytes()
    document = json.loads(data)
    assert data == json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    assert document["schema"] == "control-plane.registry-manifest/1"
    assert document["version"] == 1
    entry = document["packages"]["PKG-DOCS"]
    assert entry["version"] == "1.0.0" and entry["archive"] == "docs.tar.gz"
    assert entry["tier"] in {"verified", "community"} and entry["dependencies"] == []
    assert entry["signer"] is None  # the archive has no .sig
    sigs = json.loads(manifest_sigs(signed).read_bytes())
    assert [set(item) for item in sigs] == [{"keyid", "sig"}]


def test_export_twice_gives_identical_bytes(packed: Path, cpctl: CliFn) -> None:
    fixed = ("--version", "3", "--expires", "2099-01-01T00:00:00Z")
    export(cpctl, packed, "--out", "one.json", *fixed)
    export(cpctl, packed, "--out", "two.json", *fixed)
    assert (packed / "one.json").read_bytes() == (packed / "two.json").read_bytes()


def test_versions_increase_and_install_records_the_accepted_one(
    signed: Path, cpctl: CliFn, make_key: KeyMaker
) -> None:
    again = export(cpctl, signed, "--sign", str(make_key("alpha2", trust_in=signed)))
    assert again["version"] == 2
    verify = cpctl("registry", "verify", MANIFEST, "--json", root=signed, cwd=signed)
    assert verify.exit_code == 0, verify.stderr
    assert verify.json()["version"] == 2 and len(verify.json()["signers"]) == 1
    outcome = install(cpctl, signed)
    assert outcome.exit_code == 0, outcome.stderr
    state = json.loads((signed / "registries/trust_state.json").read_bytes())
    assert state["manifest_version"] == 2 and state["exported_version"] == 2
    assert (signed / "docs/guide.md").read_text() == "# Guide\n"


def _edit_after_signing(root: Path) -> None:
    path = root / MANIFEST
    document = json.loads(path.read_bytes())
    document["packages"]["PKG-DOCS"]["tier"] = "verified-by-me"
    path.write_bytes(json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n")


def _replace_signature_file(root: Path) -> None:
    intruder = signing.generate_key("ed25519")
    sig = signing.sign_digest(intruder, hashlib.sha256((root / MANIFEST).read_bytes()).digest())
    trusted = json.loads(manifest_sigs(root).read_bytes())[0]["keyid"]
    entry = {"keyid": trusted, "sig": base64.b64encode(sig).decode()}  # claims the trusted key
    manifest_sigs(root).write_text(json.dumps([entry]))


def _remove_signature_file(root: Path) -> None:
    manifest_sigs(root).unlink()


def _nest_signature_file(root: Path) -> None:
    manifest_sigs(root).write_text("[" * 100_000 + "]" * 100_000)  # a parser stack bomb


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (_edit_after_signing, "signed by 0 distinct trusted key(s)"),
        (_replace_signature_file, "signed by 0 distinct trusted key(s)"),
        (_remove_signature_file, "unsigned"),
        (_nest_signature_file, "nested too deeply"),
    ],
    ids=[
        "edited-after-signing",
        "signature-file-replaced",
        "signature-file-removed",
        "signature-file-nested-too-deeply",
    ],
)
def test_tampered_manifest_is_refused(
    signed: Path, cpctl: CliFn, tamper: Callable[[Path], None], why: str
) -> None:
    tamper(signed)
    refused(cpctl, signed, why)
    outcome = cpctl("registry", "verify", MANIFEST, root=signed, cwd=signed)
    assert outcome.exit_code == 5 and why in outcome.stderr


def test_expired_manifest_is_refused(
    packed: Path, cpctl: CliFn, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    export(cpctl, packed, "--expires-in", "1", "--sign", str(make_key("a", trust_in=packed)))
    later = datetime.now(UTC) + timedelta(days=2)
    monkeypatch.setattr(manifest_trust, "now", lambda: later)
    refused(cpctl, packed, "refusing a frozen manifest")


def test_older_manifest_replayed_after_a_newer_one_is_refused(
    signed: Path, cpctl: CliFn, make_key: KeyMaker
) -> None:
    write(signed / "extra" / "b.txt", "b\n")
    outcome = cpctl("pack", "--src", "extra", "--id", "PKG-B", root=signed, cwd=signed)
    assert outcome.exit_code == 0, outcome.stderr
    shutil.rmtree(signed / "extra")
    key = signed.parent / "private" / "alpha.key"
    export(cpctl, signed, "--out", "v2.json", "--sign", str(key))
    export(cpctl, signed, "--out", "v3.json", "--sign", str(key))
    assert install(cpctl, signed, manifest="v3.json").exit_code == 0
    refused(cpctl, signed, "refusing a rollback", package_id="PKG-B", manifest="v2.json")


def test_same_version_with_other_contents_is_refused(
    signed: Path, cpctl: CliFn, make_key: KeyMaker
) -> None:
    assert install(cpctl, signed).exit_code == 0
    write(signed / "extra" / "b.txt", "b\n")
    assert cpctl("pack", "--src", "extra", "--id", "PKG-B", root=signed, cwd=signed).exit_code == 0
    shutil.rmtree(signed / "extra")
    key = signed.parent / "private" / "alpha.key"
    export(cpctl, signed, "--version", "1", "--out", "again.json", "--sign", str(key))
    refused(
        cpctl,
        signed,
        "already accepted with other contents",
        package_id="PKG-B",
        manifest="again.json",
    )


def test_implausible_version_jump_is_refused(
    packed: Path, cpctl: CliFn, make_key: KeyMaker
) -> None:
    set_policy(packed, max_manifest_version_jump=10)
    export(cpctl, packed, "--version", "11", "--sign", str(make_key("a", trust_in=packed)))
    refused(cpctl, packed, "refusing a fast-forward")


def test_manifest_sha256_not_matching_the_archive_is_refused(signed: Path, cpctl: CliFn) -> None:
    # Re-pack PKG-DOCS 1.0.0 with other content: the registry and the archive agree,
    # the signed manifest does not (mix-and-match of files from different versions).
    write(signed / "docs" / "guide.md", "# Guide, changed\n")
    outcome = cpctl(
        "pack", "--src", "docs", "--id", "PKG-DOCS", "--version", "1.0.0", root=signed, cwd=signed
    )
    assert outcome.exit_code == 0, outcome.stderr
    shutil.rmtree(signed / "docs")
    refused(cpctl, signed, "refusing a mix-and-match install")


def test_manifest_not_listing_the_package_is_refused(signed: Path, cpctl: CliFn) -> None:
    write(signed / "extra" / "b.txt", "b\n")
    assert cpctl("pack", "--src", "extra", "--id", "PKG-B", root=signed, cwd=signed).exit_code == 0
    shutil.rmtree(signed / "extra")
    refused(cpctl, signed, "does not list PKG-B", package_id="PKG-B")


def _malleate(signature: bytes) -> bytes:
    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, P256_ORDER - s)


def _reencode(signature: bytes) -> bytes:
    """The same (r, s) in a BER long-form length: not DER, so it must never add a vote."""
    assert signature[0] == 0x30 and signature[1] < 0x80
    return b"\x30\x81" + signature[1:]


@pytest.mark.parametrize(
    "case", ["one-key", "same-key-twice", "ecdsa-malleated", "ecdsa-reencoded"]
)
def test_below_threshold_is_refused(
    packed: Path, cpctl: CliFn, make_key: KeyMaker, case: str
) -> None:
    set_policy(packed, manifest_threshold=2)
    first = make_key("first", "ecdsa-p256", trust_in=packed)
    second = make_key("second", trust_in=packed)
    export(cpctl, packed, "--sign", str(first))
    sigs = json.loads(manifest_sigs(packed).read_bytes())
    other_id = signing.key_id(signing.load_private_key(second.read_bytes(), "second").public_key())
    if case == "same-key-twice":
        sigs.append({"keyid": other_id, "sig": sigs[0]["sig"]})
    elif case == "ecdsa-malleated":
        malleated = _malleate(base64.b64decode(sigs[0]["sig"]))
        sigs.append({"keyid": other_id, "sig": base64.b64encode(malleated).decode()})
        digest = hashlib.sha256((packed / MANIFEST).read_bytes()).digest()
        public = signing.load_public_key((packed / "keys/trusted/first.pub").read_bytes(), "k")
        assert isinstance(public, ec.EllipticCurvePublicKey)
        signing.verify_digest(public, digest, malleated, "malleated")  # really a valid signature
    manifest_sigs(packed).write_text(json.dumps(sigs))
    refused(
        cpctl, packed, "signed by 1 distinct trusted key(s); policy.manifest_threshold requires 2"
    )


def test_two_distinct_keys_meet_a_threshold_of_two(
    packed: Path, cpctl: CliFn, make_key: KeyMaker
) -> None:
    set_policy(packed, manifest_threshold=2)
    first = make_key("first", "ecdsa-p256", trust_in=packed)
    second = make_key("second", trust_in=packed)
    export(cpctl, packed, "--sign", str(first))
    signed = cpctl(
        "registry", "sign", MANIFEST, "--key", str(second), "--json", root=packed, cwd=packed
    )
    assert signed.exit_code == 0, signed.stderr
    assert signed.json()["signatures"] == 2
    assert install(cpctl, packed).exit_code == 0


def test_signature_by_an_untrusted_key_is_refused(
    packed: Path, cpctl: CliFn, make_key: KeyMaker
) -> None:
    make_key("trusted", trust_in=packed)
    export(cpctl, packed, "--sign", str(make_key("stranger")))
    refused(cpctl, packed, "signed by 0 distinct trusted key(s)")


def test_install_manifest_needs_an_id(signed: Path, cpctl: CliFn) -> None:
    before = snapshot(signed)
    outcome = cpctl(
        "install",
        "--manifest",
        MANIFEST,
        "--archive",
        "packages_store/docs.tar.gz",
        root=signed,
        cwd=signed,
    )
    assert outcome.exit_code == 2 and "needs --id" in outcome.stderr
    assert snapshot(signed) == before


def test_verify_json_failure_is_one_document(signed: Path, cpctl: CliFn) -> None:
    _edit_after_signing(signed)
    outcome = cpctl("registry", "verify", MANIFEST, "--json", root=signed, cwd=signed)
    assert outcome.exit_code == 5
    assert outcome.json()["error"]["exit_code"] == 5


def test_export_names_the_archive_signer(packed: Path, cpctl: CliFn, make_key: KeyMaker) -> None:
    key = signing.generate_key("ecdsa-p256")
    write(packed / "keys" / "trusted" / "release.pub", signing.public_pem(key))
    archive = packed / "packages_store" / "docs.tar.gz"
    digest = hashlib.sha256(archive.read_bytes()).digest()
    write(
        archive.with_name("docs.tar.gz.sig"),
        signing.encode_signature(signing.sign_digest(key, digest)),
    )
    export(cpctl, packed, "--sign", str(make_key("a", trust_in=packed)))
    entry = json.loads((packed / MANIFEST).read_bytes())["packages"]["PKG-DOCS"]
    assert entry["signer"] == signing.key_id(key.public_key())
    assert install(cpctl, packed).exit_code == 0
