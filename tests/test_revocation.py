"""The signed revocation list: revoke by package, digest and key; install refuses,
integrity-check reports, and an unsigned, tampered or rolled-back list fails closed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from control_plane import signing
from control_plane.auth import mint_hmac_token
from tests.conftest import CliFn, assert_rejection_ledgered, snapshot, write

LIST = "registries/revocations.json"


@pytest.fixture
def keyed(packed: Path, tmp_path: Path) -> Path:
    """PKG-DOCS packed; trusted key ``admin`` (its private half in tmp_path/admin.key)."""
    key = signing.generate_key("ed25519")
    write(tmp_path / "admin.key", signing.private_pem(key))
    write(packed / "keys" / "trusted" / "admin.pub", signing.public_pem(key))
    return packed


def admin_key(root: Path) -> str:
    return str(root.parent / "admin.key")


def revoke(cpctl: CliFn, root: Path, *target: str) -> None:
    outcome = cpctl(
        "revoke",
        *target,
        "--reason",
        "compromised build",
        "--key",
        admin_key(root),
        root=root,
        cwd=root,
    )
    assert outcome.exit_code == 0, outcome.stderr


def docs_digest(root: Path) -> str:
    return (
        "sha256:" + hashlib.sha256((root / "packages_store/docs.tar.gz").read_bytes()).hexdigest()
    )


def sign_archive(root: Path) -> str:
    """Sign docs.tar.gz with a new trusted key ``release``; return its key id."""
    key = signing.generate_key("ecdsa-p256")
    write(root / "keys" / "trusted" / "release.pub", signing.public_pem(key))
    digest = hashlib.sha256((root / "packages_store/docs.tar.gz").read_bytes()).digest()
    write(
        root / "packages_store/docs.tar.gz.sig",
        signing.encode_signature(signing.sign_digest(key, digest)),
    )
    return signing.key_id(key.public_key())


def install_refused(cpctl: CliFn, root: Path, why: str) -> None:
    before = snapshot(root)
    outcome = cpctl("install", "--id", "PKG-DOCS", root=root, cwd=root)
    assert outcome.exit_code == 5, outcome.stderr
    assert why in outcome.stderr and len(outcome.stderr.strip().splitlines()) == 1
    assert why in assert_rejection_ledgered(root, before)["details"]["reason"]


@pytest.mark.parametrize("kind", ["package", "digest", "key"])
def test_install_refuses_what_is_revoked(keyed: Path, cpctl: CliFn, kind: str) -> None:
    if kind == "package":
        target = ("--package", "PKG-DOCS@1.0.0")
    elif kind == "digest":
        target = ("--digest", docs_digest(keyed))
    else:
        target = ("--key", sign_archive(keyed))
    revoke(cpctl, keyed, *target)
    install_refused(cpctl, keyed, f"PKG-DOCS 1.0.0 is revoked: {kind}")
    dry = cpctl("install", "--id", "PKG-DOCS", "--dry-run", root=keyed, cwd=keyed)
    assert dry.exit_code == 5


def test_revocations_lists_the_verified_list(keyed: Path, cpctl: CliFn) -> None:
    revoke(cpctl, keyed, "--package", "PKG-DOCS@1.0.0")
    revoke(cpctl, keyed, "--digest", docs_digest(keyed))
    outcome = cpctl("revocations", "--json", root=keyed, cwd=keyed)
    assert outcome.exit_code == 0, outcome.stderr
    document = outcome.json()
    assert document["list_version"] == 2
    doctor = cpctl("doctor", "--json", root=keyed, cwd=keyed).json()
    probe = next(c for c in doctor["checks"] if c["name"] == "revocations")
    assert probe["status"] == "ok" and "2 revocation(s)" in probe["summary"]
    assert [entry["kind"] for entry in document["entries"]] == ["package", "digest"]
    again = cpctl(
        "revoke",
        "--package",
        "PKG-DOCS@1.0.0",
        "--reason",
        "x",
        "--key",
        admin_key(keyed),
        "--json",
        root=keyed,
        cwd=keyed,
    )
    assert again.exit_code == 0 and again.json()["changed"] is False


def test_an_unrevoked_package_still_installs(keyed: Path, cpctl: CliFn) -> None:
    revoke(cpctl, keyed, "--package", "PKG-DOCS@0.9.0")
    outcome = cpctl("install", "--id", "PKG-DOCS", root=keyed, cwd=keyed)
    assert outcome.exit_code == 0, outcome.stderr


def test_integrity_check_reports_an_installed_package_revoked_since(
    keyed: Path, cpctl: CliFn
) -> None:
    assert cpctl("install", "--id", "PKG-DOCS", root=keyed, cwd=keyed).exit_code == 0
    assert cpctl("manifest", root=keyed, cwd=keyed).exit_code == 0
    assert cpctl("integrity-check", root=keyed, cwd=keyed).exit_code == 0
    revoke(cpctl, keyed, "--package", "PKG-DOCS@1.0.0")
    outcome = cpctl("integrity-check", "--json", root=keyed, cwd=keyed)
    assert outcome.exit_code == 1
    rules = [(f["subject"], f["rule"]) for f in outcome.json()["findings"]]
    assert ("PKG-DOCS", "revoked") in rules


def _edit_entry(root: Path) -> None:
    path = root / LIST
    document = json.loads(path.read_bytes())
    document["entries"][0]["value"] = "PKG-DOCS@0.0.1"
    path.write_bytes(json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n")


def _drop_entries(root: Path) -> None:
    path = root / LIST
    path.write_bytes(b'{"entries":[],"schema":"control-plane.revocations/1","version":0}\n')


def _unsign(root: Path) -> None:
    (root / (LIST + ".sig")).unlink()


def _resign_with_unknown_key(root: Path) -> None:
    _drop_entries(root)
    stranger = signing.generate_key("ed25519")
    digest = hashlib.sha256((root / LIST).read_bytes()).digest()
    (root / (LIST + ".sig")).write_bytes(
        signing.encode_signature(signing.sign_digest(stranger, digest))
    )


def _delete_list(root: Path) -> None:
    (root / LIST).unlink()
    (root / (LIST + ".sig")).unlink()


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (_edit_entry, "no trusted, unrevoked key"),
        (_drop_entries, "no trusted, unrevoked key"),
        (_unsign, "is not signed"),
        (_resign_with_unknown_key, "no trusted, unrevoked key"),
        (_delete_list, "is missing but version 1 was written"),
    ],
    ids=["entry-edited", "entries-dropped", "signature-removed", "re-signed", "deleted"],
)
def test_tampered_revocation_list_fails_closed(keyed: Path, cpctl: CliFn, tamper, why: str) -> None:
    revoke(cpctl, keyed, "--package", "PKG-DOCS@1.0.0")
    tamper(keyed)
    install_refused(cpctl, keyed, why)
    listed = cpctl("revocations", root=keyed, cwd=keyed)
    assert listed.exit_code == 5 and why in listed.stderr
    check = cpctl("integrity-check", "--json", root=keyed, cwd=keyed)
    assert check.exit_code == 1
    assert "revocations-invalid" in {f["rule"] for f in check.json()["findings"]}
    doctor = cpctl("doctor", "--json", root=keyed, cwd=keyed)
    assert doctor.exit_code == 1
    probe = next(c for c in doctor.json()["checks"] if c["name"] == "revocations")
    assert probe["status"] == "fail" and why in probe["summary"] and probe["fix"]


def test_rolled_back_revocation_list_fails_closed(
    keyed: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    revoke(cpctl, keyed, "--package", "PKG-DOCS@0.9.0")
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in (LIST, LIST + ".sig"):
        shutil.copy(keyed / name, saved / Path(name).name)
    revoke(cpctl, keyed, "--package", "PKG-DOCS@1.0.0")
    for name in (LIST, LIST + ".sig"):
        shutil.copy(saved / Path(name).name, keyed / name)
    install_refused(cpctl, keyed, "refusing a rolled-back revocation list")


@pytest.mark.parametrize(
    ("args", "code", "why"),
    [
        (("--package", "PKG-DOCS"), 2, "expected ID@VERSION"),
        (("--digest", "md5:abc"), 2, "expected sha256:"),
        (("--package", "PKG-DOCS@1.0.0", "--digest", "sha256:" + "0" * 64), 2, "exactly one of"),
        (("--package", "PKG-DOCS@1.0.0", "--reason", " "), 2, "--reason"),
    ],
    ids=["package-without-version", "bad-digest", "two-targets", "empty-reason"],
)
def test_bad_revoke_input_is_a_usage_error(
    keyed: Path, cpctl: CliFn, args: tuple[str, ...], code: int, why: str
) -> None:
    before = snapshot(keyed)
    reason = () if "--reason" in args else ("--reason", "r")
    outcome = cpctl("revoke", *args, *reason, "--key", admin_key(keyed), root=keyed, cwd=keyed)
    assert outcome.exit_code == code and why in outcome.stderr, outcome.stderr
    assert snapshot(keyed) == before


def test_revoke_with_an_untrusted_signing_key_is_refused(
    keyed: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    stranger = write(
        tmp_path / "stranger.key", signing.private_pem(signing.generate_key("ed25519"))
    )
    before = snapshot(keyed)
    outcome = cpctl(
        "revoke",
        "--package",
        "PKG-DOCS@1.0.0",
        "--reason",
        "r",
        "--key",
        str(stranger),
        root=keyed,
        cwd=keyed,
    )
    assert outcome.exit_code == 2 and "not trusted" in outcome.stderr
    assert snapshot(keyed) == before


def test_a_revoked_key_no_longer_counts_for_a_manifest(
    keyed: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    release = signing.generate_key("ed25519")
    release_path = write(tmp_path / "release.key", signing.private_pem(release))
    write(keyed / "keys" / "trusted" / "release.pub", signing.public_pem(release))
    exported = cpctl("registry", "export", "--sign", str(release_path), root=keyed, cwd=keyed)
    assert exported.exit_code == 0, exported.stderr
    revoke(cpctl, keyed, "--key", signing.key_id(release.public_key()))
    before = snapshot(keyed)
    outcome = cpctl(
        "install",
        "--manifest",
        "registries/registry.manifest.v1.json",
        "--id",
        "PKG-DOCS",
        root=keyed,
        cwd=keyed,
    )
    assert outcome.exit_code == 5 and "signed by 0 distinct trusted" in outcome.stderr
    assert_rejection_ledgered(keyed, before)


def test_only_admins_revoke(keyed: Path, cpctl: CliFn) -> None:
    secret = "correct horse battery staple 0123456789"
    config = keyed / "control_plane.toml"
    text = config.read_text().replace('provider = "passthrough"', 'provider = "hmac"')
    config.write_text(text.replace("[authz.users]\n", '[authz.users]\nmona = "maintainer"\n'))
    before = snapshot(keyed, include_ledger=False)
    outcome = cpctl(
        "--token",
        mint_hmac_token(secret.encode(), "mona"),
        "revoke",
        "--package",
        "PKG-DOCS@1.0.0",
        "--reason",
        "r",
        "--key",
        admin_key(keyed),
        root=keyed,
        cwd=keyed,
        env={"CONTROL_PLANE_SHARED_SECRET": secret},
    )
    assert outcome.exit_code == 3 and "may not trust" in outcome.stderr
    assert snapshot(keyed, include_ledger=False) == before


def test_update_refuses_a_revoked_new_version(keyed: Path, cpctl: CliFn) -> None:
    assert cpctl("install", "--id", "PKG-DOCS", root=keyed, cwd=keyed).exit_code == 0
    write(keyed / "docs" / "guide.md", "# Guide 2\n")
    outcome = cpctl(
        "pack", "--src", "docs", "--id", "PKG-DOCS", "--version", "2.0.0", root=keyed, cwd=keyed
    )
    assert outcome.exit_code == 0, outcome.stderr
    revoke(cpctl, keyed, "--package", "PKG-DOCS@2.0.0")
    before = snapshot(keyed)
    outcome = cpctl("update", "--id", "PKG-DOCS", root=keyed, cwd=keyed)
    assert outcome.exit_code == 5 and "PKG-DOCS 2.0.0 is revoked" in outcome.stderr
    assert assert_rejection_ledgered(keyed, before)["action"] == "update"
