"""Rotating the key that signs the revocation list: keys revoke refuses to retire it,
revoke --re-sign signs the same list with another trusted key first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from control_plane import signing
from tests.conftest import CliFn, assert_refused, ledger_entries, snapshot, write
from tests.test_revocation import LIST, admin_key, keyed, revoke

__all__ = ["keyed"]  # the fixture, used by name


@pytest.fixture
def listed(keyed: Path, cpctl: CliFn) -> Path:
    """A revocation list signed by ``admin``; a second trusted key ``backup`` (tmp/backup.key)."""
    revoke(cpctl, keyed, "--package", "PKG-OLD@1.0.0")
    key = signing.generate_key("ecdsa-p256")
    write(keyed.parent / "backup.key", signing.private_pem(key))
    write(keyed / "keys" / "trusted" / "backup.pub", signing.public_pem(key))
    return keyed


def backup_key(root: Path) -> str:
    return str(root.parent / "backup.key")


def key_id_of(private: str) -> str:
    key = signing.load_private_key(Path(private).read_bytes(), private)
    return signing.key_id(key.public_key())


def signer(cpctl: CliFn, root: Path) -> str:
    outcome = cpctl("revocations", "--json", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    return str(outcome.json()["signer"])


def test_the_list_signer_cannot_be_retired_until_the_list_is_re_signed(
    listed: Path, cpctl: CliFn
) -> None:
    admin = key_id_of(admin_key(listed))
    before = snapshot(listed)
    refused = cpctl("keys", "revoke", "admin", root=listed)
    assert_refused(refused, 4, before, listed, f"key {admin} signs {LIST}", "--re-sign")

    data = (listed / LIST).read_bytes()
    resigned = cpctl("revoke", "--re-sign", "--key", backup_key(listed), "--json", root=listed)
    assert resigned.exit_code == 0, resigned.stderr
    document = resigned.json()
    backup = key_id_of(backup_key(listed))
    assert document["schema"] == "control-plane.revocations-sign/1"
    assert (document["signer"], document["previous_signer"]) == (backup, admin)
    assert (document["changed"], document["list_version"], document["path"]) == (True, 1, LIST)
    assert (listed / LIST).read_bytes() == data  # same entries, same version
    entry = ledger_entries(listed)[-1]
    assert (entry["target"], entry["details"]["signer"], entry["result"]) == (LIST, backup, "ok")
    assert signer(cpctl, listed) == backup

    retired = cpctl("keys", "revoke", "admin", root=listed)
    assert retired.exit_code == 0, retired.stderr
    assert signer(cpctl, listed) == backup  # the list still verifies
    assert cpctl("install", "--id", "PKG-DOCS", root=listed).exit_code == 0


def test_re_signing_with_the_current_signer_changes_nothing(listed: Path, cpctl: CliFn) -> None:
    before = snapshot(listed)
    outcome = cpctl("revoke", "--re-sign", "--key", admin_key(listed), "--json", root=listed)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["changed"] is False
    assert snapshot(listed) == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--package", "PKG-X@1.0.0"), "--re-sign takes only the signing key"),
        (("--reason", "why"), "--re-sign takes only the signing key"),
        ((), "exactly one signing key"),
    ],
    ids=["with-a-target", "with-a-reason", "without-a-key"],
)
def test_re_sign_usage_errors_write_nothing(
    listed: Path, cpctl: CliFn, args: tuple[str, ...], words: str
) -> None:
    key = ("--key", backup_key(listed)) if args else ()
    before = snapshot(listed)
    outcome = cpctl("revoke", "--re-sign", *args, *key, root=listed)
    assert_refused(outcome, 2, before, listed, words)


def test_an_untrusted_key_or_a_missing_list_is_refused(listed: Path, cpctl: CliFn) -> None:
    (listed / "keys" / "trusted" / "backup.pub").unlink()
    before = snapshot(listed)
    untrusted = cpctl("revoke", "--re-sign", "--key", backup_key(listed), root=listed)
    assert_refused(untrusted, 2, before, listed, "not trusted")


def test_no_list_no_re_sign(keyed: Path, cpctl: CliFn) -> None:
    before = snapshot(keyed)
    outcome = cpctl("revoke", "--re-sign", "--key", admin_key(keyed), root=keyed)
    assert_refused(outcome, 2, before, keyed, "no revocation list to re-sign")


def test_a_tampered_list_is_never_re_signed(listed: Path, cpctl: CliFn) -> None:
    path = listed / LIST
    document = json.loads(path.read_text(encoding="utf-8"))
    document["entries"][0]["reason"] = "edited after signing"
    path.write_text(json.dumps(document), encoding="utf-8")
    before = snapshot(listed)
    outcome = cpctl("revoke", "--re-sign", "--key", backup_key(listed), root=listed)
    assert_refused(outcome, 5, before, listed, "edited by hand")  # and ledgered


def test_retiring_a_key_that_signs_no_list_is_unaffected(listed: Path, cpctl: CliFn) -> None:
    outcome = cpctl("keys", "revoke", "backup", root=listed)
    assert outcome.exit_code == 0, outcome.stderr
