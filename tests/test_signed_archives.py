"""Signed archives: pack --sign, sign, install verification, cosign sign-blob, every refusal."""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliFn, assert_refused, ledger_entries, snapshot, write
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from control_plane.registry import dump_packages, parse_packages
from control_plane.signing import (
    KeyType,
    SignatureError,
    encode_signature,
    generate_key,
    key_id,
    private_pem,
    public_pem,
    sign_digest,
)

ARCHIVE = "packages_store/docs.tar.gz"
SIG = ARCHIVE + ".sig"


def require_signatures(root: Path) -> None:
    config = root / "control_plane.toml"
    text = config.read_text()
    assert "require_signatures = false" in text
    config.write_text(text.replace("require_signatures = false", "require_signatures = true"))


def new_key(root: Path, name: str, kind: KeyType = "ed25519", *, trust: bool = True) -> Path:
    """A private key file in keys/private/ (trusted unless told otherwise)."""
    key = generate_key(kind)
    path = write(root / "keys/private" / f"{name}.key", private_pem(key))
    if trust:
        write(root / "keys/trusted" / f"{name}.pub", public_pem(key))
    return path


def key_id_of(key_path: Path) -> str:
    pub = key_path.with_suffix(".pub")
    trusted = key_path.parents[1] / "trusted" / pub.name
    from control_plane.signing import load_public_key

    return key_id(load_public_key(trusted.read_bytes(), "pub"))


@pytest.fixture
def sources(root: Path) -> Path:
    write(root / "docs" / "guide.md", "# Guide\n")
    write(root / "docs" / "sub" / "notes.txt", "notes\n")
    return root


def pack(cpctl: CliFn, root: Path, *extra: str, version: str = "1.0.0"):
    return cpctl(
        "pack", "--src", "docs", "--id", "PKG-DOCS", "--version", version, *extra,
        root=root, cwd=root,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_pack_sign_then_install_records_the_signer(
    sources: Path, cpctl: CliFn, kind: KeyType
) -> None:
    root = sources
    key = new_key(root, "release", kind)
    packed = pack(cpctl, root, "--sign", str(key), "--json")
    assert packed.exit_code == 0, packed.stderr
    signer = key_id_of(key)
    assert packed.json()["signer"] == signer
    sig = (root / SIG).read_bytes()
    assert sig.endswith(b"\n") and sig.count(b"\n") == 1
    base64.b64decode(sig.strip(), validate=True)
    assert ledger_entries(root)[-1]["details"]["signer"] == signer
    require_signatures(root)
    installed = cpctl("install", "--id", "PKG-DOCS", "--json", root=root)
    assert installed.exit_code == 0, installed.stderr
    assert installed.json()["packages"][0]["signer"] == signer
    entry = ledger_entries(root)[-1]
    assert entry["action"] == "install" and entry["details"]["packages"][0]["signer"] == signer


def test_unsigned_install_reports_null_signer_and_a_warning(packed: Path, cpctl: CliFn) -> None:
    outcome = cpctl("install", "--id", "PKG-DOCS", "--json", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["packages"][0]["signer"] is None
    assert "unsigned" in outcome.stderr
    assert ledger_entries(packed)[-1]["details"]["packages"][0]["signer"] is None


def test_cosign_sign_blob_signature_installs(packed: Path, cpctl: CliFn) -> None:
    # Exactly what `cosign sign-blob --key cosign.key --output-signature F blob` writes:
    # base64 of the DER ECDSA P-256 signature over SHA-256(blob), no trailing newline.
    cosign_key = ec.generate_private_key(ec.SECP256R1())
    blob = (packed / ARCHIVE).read_bytes()
    (packed / SIG).write_bytes(base64.b64encode(cosign_key.sign(blob, ec.ECDSA(hashes.SHA256()))))
    write(packed / "cosign.pub", public_pem(cosign_key.public_key()))
    assert (
        cpctl("keys", "trust", "cosign.pub", "--name", "ci", root=packed, cwd=packed).exit_code == 0
    )
    require_signatures(packed)
    outcome = cpctl("install", "--id", "PKG-DOCS", "--json", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["packages"][0]["signer"] == key_id(cosign_key.public_key())
    assert (packed / "docs/guide.md").read_text() == "# Guide\n"


def test_our_ecdsa_signature_is_cosign_verifiable(sources: Path, cpctl: CliFn) -> None:
    # The other direction: what pack --sign writes verifies as a plain ECDSA-SHA256 signature
    # over the blob (cosign verify-blob does exactly this check).
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key_path = new_key(sources, "release", "ecdsa-p256")
    assert pack(cpctl, sources, "--sign", str(key_path)).exit_code == 0
    key = load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = base64.b64decode((sources / SIG).read_bytes())
    key.public_key().verify(signature, (sources / ARCHIVE).read_bytes(), ec.ECDSA(hashes.SHA256()))


# -- refusals: each with its exit code, nothing written ----------------------------------------


def _rewrite_registry_digest(root: Path) -> None:
    """What an attacker with write access to the root would do after altering the archive."""
    data = (root / ARCHIVE).read_bytes()
    hex_digest = hashlib.sha256(data).hexdigest()
    registry = root / "registries/packages_registry.csv"
    rows = parse_packages(registry.read_bytes()).require_clean()
    from dataclasses import replace

    registry.write_bytes(
        dump_packages([replace(row, digest=f"sha256:{hex_digest}") for row in rows])
    )
    (root / (ARCHIVE + ".sha256")).write_text(f"{hex_digest}  docs.tar.gz\n")


def _tamper_archive_bytes(root: Path) -> None:
    path = root / ARCHIVE
    data = bytearray(path.read_bytes())
    data[-9] ^= 0x01  # inside the gzip trailer's CRC: the archive no longer matches its digest
    path.write_bytes(bytes(data))


def _swap_content_keep_format(root: Path) -> None:
    """Edit a file's bytes inside the tar (same length: tar headers still check out)."""
    path = root / ARCHIVE
    tar = gzip.decompress(path.read_bytes())
    assert tar.count(b"# Guide\n") == 1
    path.write_bytes(gzip.compress(tar.replace(b"# Guide\n", b"# Gu1de\n"), mtime=0))


def _repack_other_content(root: Path, cpctl: CliFn) -> None:
    """A different, well-formed archive under the same name, registered, with the old .sig."""
    sig = (root / SIG).read_bytes()
    write(root / "docs" / "guide.md", "# Guide, with a backdoor\n")
    assert pack(cpctl, root).exit_code == 0
    (root / SIG).write_bytes(sig)


def _sign_with(root: Path, name: str, *, trust: bool) -> None:
    key = new_key(root, name, trust=trust)
    from control_plane.signing import load_private_key

    private = load_private_key(key.read_bytes(), "k")
    digest = hashlib.sha256((root / ARCHIVE).read_bytes()).digest()
    (root / SIG).write_bytes(encode_signature(sign_digest(private, digest)))
    key.unlink()  # only the public half stays in the root


def _revoke_signer(root: Path, cpctl: CliFn) -> None:
    assert cpctl("keys", "revoke", "release", root=root).exit_code == 0


def _replace_with_signature_of_other_blob(root: Path) -> None:
    key = new_key(root, "other", trust=True)
    from control_plane.signing import load_private_key

    private = load_private_key(key.read_bytes(), "k")
    (root / SIG).write_bytes(encode_signature(sign_digest(private, hashlib.sha256(b"x").digest())))
    key.unlink()


def _swap_and_reregister(root: Path, _cpctl: CliFn) -> None:
    _swap_content_keep_format(root)
    _rewrite_registry_digest(root)


def _sig_symlink(root: Path, _cpctl: CliFn) -> None:
    (root / SIG).unlink()
    (root / SIG).symlink_to(root / "ledger/ledger.pub")


def _sig_directory(root: Path, _cpctl: CliFn) -> None:
    (root / SIG).unlink()
    (root / SIG).mkdir()


Attack = Callable[[Path, CliFn], None]

# name -> (attack, policy required?, exit code, words in the error)
ATTACKS: dict[str, tuple[Attack, bool, int, tuple[str, ...]]] = {
    "tampered-archive-valid-looking-sig": (
        lambda r, c: _tamper_archive_bytes(r),
        False,
        5,
        ("sha256",),
    ),
    "tampered-archive-registry-rewritten": (
        _swap_and_reregister,
        False,
        5,
        ("no trusted key verifies",),
    ),
    "other-content-with-old-sig": (_repack_other_content, False, 5, ("no trusted key",)),
    "untrusted-key": (
        lambda r, c: _sign_with(r, "stranger", trust=False),
        False,
        5,
        ("no trusted key",),
    ),
    "revoked-key": (_revoke_signer, False, 5, ("revoked",)),
    "revoked-key-required": (_revoke_signer, True, 5, ("revoked",)),
    "sig-replaced-garbage": (
        lambda r, c: (r / SIG).write_bytes(b"this is not a signature\n"),
        False,
        5,
        ("base64",),
    ),
    "sig-replaced-empty": (lambda r, c: (r / SIG).write_bytes(b""), False, 5, ("empty",)),
    "sig-replaced-huge": (
        lambda r, c: (r / SIG).write_bytes(b"A" * 10_000),
        False,
        5,
        ("too large",),
    ),
    "sig-replaced-other-blob": (
        lambda r, c: _replace_with_signature_of_other_blob(r),
        False,
        5,
        ("no trusted key",),
    ),
    "sig-replaced-by-symlink": (
        _sig_symlink,
        False,
        5,
        ("regular file",),
    ),
    "sig-replaced-by-directory": (
        _sig_directory,
        False,
        5,
        ("regular file",),
    ),
    "unsigned-under-policy": (lambda r, c: (r / SIG).unlink(), True, 5, ("unsigned",)),
}


@pytest.mark.parametrize("name", list(ATTACKS), ids=list(ATTACKS))
@pytest.mark.parametrize("command", ["install", "install-dry-run"])
def test_signature_refusals(sources: Path, cpctl: CliFn, name: str, command: str) -> None:
    root = sources
    key = new_key(root, "release")
    assert pack(cpctl, root, "--sign", str(key)).exit_code == 0
    attack, required, code, words = ATTACKS[name]
    attack(root, cpctl)
    if required:
        require_signatures(root)
    args = ("install", "--id", "PKG-DOCS") + (("--dry-run",) if command.endswith("dry-run") else ())
    before = snapshot(root)
    assert_refused(cpctl(*args, root=root), code, before, root, *words)


def test_update_verifies_the_new_archive(sources: Path, cpctl: CliFn) -> None:
    root = sources
    key = new_key(root, "release")
    assert pack(cpctl, root, "--sign", str(key)).exit_code == 0
    assert cpctl("install", "--id", "PKG-DOCS", root=root).exit_code == 0
    write(root / "docs" / "guide.md", "# Guide v2\n")
    assert pack(cpctl, root, version="1.1.0").exit_code == 0  # unsigned: the stale .sig goes
    assert not (root / SIG).exists()
    require_signatures(root)
    before = snapshot(root)
    assert_refused(cpctl("update", "--id", "PKG-DOCS", root=root), 5, before, root, "unsigned")
    assert cpctl("sign", "--id", "PKG-DOCS", "--key", str(key), root=root).exit_code == 0
    updated = cpctl("update", "--id", "PKG-DOCS", "--json", root=root)
    assert updated.exit_code == 0, updated.stderr
    assert updated.json()["packages"][0]["signer"] == key_id_of(key)


def test_unknown_signer_is_refused_even_without_the_policy(sources: Path, cpctl: CliFn) -> None:
    root = sources
    key = new_key(root, "stranger", trust=False)
    assert pack(cpctl, root, "--sign", str(key)).exit_code == 0
    before = snapshot(root)
    outcome = cpctl("install", "--id", "PKG-DOCS", "--json", root=root)
    assert_refused(outcome, 5, before, root, "no trusted key verifies")
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    private = load_pem_private_key(key.read_bytes(), None)
    write(root / "stranger.pub", public_pem(private))  # type: ignore[arg-type]
    assert cpctl("keys", "trust", "stranger.pub", root=root, cwd=root).exit_code == 0
    assert cpctl("install", "--id", "PKG-DOCS", root=root).exit_code == 0


# -- passphrases and the sign command ---------------------------------------------------------


def _locked_key(root: Path) -> Path:
    write(root / "pass.txt", "open sesame\n")
    write(root / "wrong.txt", "open barley\n")
    key = generate_key("ecdsa-p256")
    write(root / "keys/trusted/locked.pub", public_pem(key))
    return write(root / "keys/private/locked.key", private_pem(key, b"open sesame"))


def test_passphrase_protected_key_signs(sources: Path, cpctl: CliFn) -> None:
    key = _locked_key(sources)
    outcome = pack(cpctl, sources, "--sign", str(key), "--passphrase-file", "pass.txt", "--json")
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["signer"] == key_id_of(key)


def test_passphrase_from_the_environment(sources: Path, cpctl: CliFn) -> None:
    key = _locked_key(sources)
    outcome = cpctl(
        "pack", "--src", "docs", "--id", "PKG-DOCS", "--sign", str(key),
        root=sources, cwd=sources, env={"CONTROL_PLANE_KEY_PASSPHRASE": "open sesame"},
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.stderr


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (("--passphrase-file", "wrong.txt"), "passphrase is wrong"),
        ((), "encrypted"),
        (("--passphrase-file", "absent.txt"), "passphrase file"),
    ],
    ids=["wrong-passphrase", "no-passphrase", "missing-passphrase-file"],
)
@pytest.mark.parametrize("command", ["pack", "sign"])
def test_passphrase_mistakes_are_one_line_exit_2(
    sources: Path, cpctl: CliFn, extra: tuple[str, ...], word: str, command: str
) -> None:
    key = _locked_key(sources)
    if command == "sign":
        assert pack(cpctl, sources).exit_code == 0
        args = ("sign", "--id", "PKG-DOCS", "--key", str(key), *extra)
    else:
        args = ("pack", "--src", "docs", "--id", "PKG-DOCS", "--sign", str(key), *extra)
    before = snapshot(sources)
    outcome = cpctl(*args, root=sources, cwd=sources)
    assert_refused(outcome, 2, before, sources, word)
    assert "open" not in outcome.stderr  # never the passphrase


@pytest.mark.parametrize("bad", ["missing", "public-key", "garbage"])
def test_pack_sign_with_a_bad_key_file_writes_nothing(
    sources: Path, cpctl: CliFn, bad: str
) -> None:
    path = sources / "bad.key"
    if bad == "public-key":
        write(path, public_pem(generate_key("ed25519")))
    elif bad == "garbage":
        write(path, "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    before = snapshot(sources)
    assert_refused(pack(cpctl, sources, "--sign", str(path)), 2, before, sources)


def test_sign_refusals(sources: Path, cpctl: CliFn) -> None:
    root = sources
    key = new_key(root, "release")
    assert pack(cpctl, root).exit_code == 0
    before = snapshot(root)
    unknown = cpctl("sign", "--id", "PKG-NOPE", "--key", str(key), root=root)
    assert_refused(unknown, 2, before, root, "unknown package")
    _tamper_archive_bytes(root)
    before = snapshot(root)
    tampered = cpctl("sign", "--id", "PKG-DOCS", "--key", str(key), root=root)
    assert_refused(tampered, 5, before, root, "refusing to sign")


def test_signing_with_a_revoked_key_is_refused(sources: Path, cpctl: CliFn) -> None:
    root = sources
    key = new_key(root, "release")
    assert cpctl("keys", "revoke", "release", root=root).exit_code == 0
    before = snapshot(root)
    assert_refused(pack(cpctl, root, "--sign", str(key)), 5, before, root, "revoked")
    assert pack(cpctl, root).exit_code == 0
    before = snapshot(root)
    signed = cpctl("sign", "--id", "PKG-DOCS", "--key", str(key), root=root)
    assert_refused(signed, 5, before, root, "revoked")


def test_sign_is_ledgered_and_warns_for_an_untrusted_key(sources: Path, cpctl: CliFn) -> None:
    root = sources
    key = new_key(root, "later", trust=False)
    assert pack(cpctl, root).exit_code == 0
    outcome = cpctl("sign", "--id", "PKG-DOCS", "--key", str(key), "--json", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    assert "not in keys/trusted/" in outcome.stderr
    assert outcome.json()["signature"] == SIG
    entry = ledger_entries(root)[-1]
    assert entry["action"] == "sign" and entry["details"]["signature"] == SIG
    assert cpctl("ledger", "verify", root=root).exit_code == 0


def test_repacking_identical_content_keeps_an_external_signature(
    sources: Path, cpctl: CliFn
) -> None:
    root = sources
    key = new_key(root, "release")
    assert pack(cpctl, root, "--sign", str(key)).exit_code == 0
    sig = (root / SIG).read_bytes()
    assert pack(cpctl, root).exit_code == 0  # same bytes: the signature still covers them
    assert (root / SIG).read_bytes() == sig


def test_a_key_revoked_by_the_signed_list_is_refused_everywhere(
    sources: Path, cpctl: CliFn
) -> None:
    root = sources
    admin = new_key(root, "admin")
    release = new_key(root, "release")
    assert pack(cpctl, root, "--sign", str(release)).exit_code == 0
    write(root / "release.pub", (root / "keys/trusted/release.pub").read_bytes())
    listed = cpctl(
        "revoke", "--key", key_id_of(release), "--reason", "laptop stolen",
        "--signing-key", str(admin), root=root,
    )  # fmt: skip
    assert listed.exit_code == 0, listed.stderr
    before = snapshot(root)
    assert_refused(cpctl("install", "--id", "PKG-DOCS", root=root), 5, before, root, "revoked")
    before = snapshot(root)
    signed = cpctl("sign", "--id", "PKG-DOCS", "--key", str(release), root=root)
    assert_refused(signed, 5, before, root, "revoked")
    before = snapshot(root)
    again = cpctl("keys", "trust", "release.pub", "--name", "back", root=root, cwd=root)
    assert_refused(again, 5, before, root, "revocations.json")


def test_through_gate_operations(sources: Path) -> None:
    from control_plane import GateOperations

    gate = GateOperations(control_plane_root=sources)
    made = gate.keys_generate("ecdsa-p256", name="api", trust=True)
    packed = gate.pack(
        [sources / "docs"], "PKG-DOCS", version="1.0.0", sign=sources / made.private_key
    )
    assert packed.signer == made.key_id
    changed = gate.install(package_id="PKG-DOCS")
    assert changed.packages[0].signer == made.key_id
    assert [key.status for key in gate.keys_list().keys] == ["trusted"]
    assert gate.keys_revoke(made.key_id).changed
    with pytest.raises(SignatureError, match="revoked"):
        gate.install(package_id="PKG-DOCS", force=True)


def test_text_output_names_the_signer(sources: Path, cpctl: CliFn) -> None:
    key = new_key(sources, "release")
    packed = pack(cpctl, sources, "--sign", str(key))
    assert f"signed {SIG} with key {key_id_of(key)}" in packed.stdout
    installed = cpctl("install", "--id", "PKG-DOCS", root=sources)
    assert f"signature verified: key {key_id_of(key)}" in installed.stdout
