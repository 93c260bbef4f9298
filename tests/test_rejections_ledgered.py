"""Refused content (exit 5) is ledgered: one "rejected" entry naming the target and the reason,
nothing else written, the chain and checkpoints still verify; read-only sessions write nothing,
and a failing append never masks the refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CliFn, Outcome, assert_refused, ledger_entries, snapshot, write
from hostile import HOSTILE
from test_cli_refusals import forge_row

from control_plane import GateOperations
from control_plane.auth import mint_hmac_token
from control_plane.errors import DigestMismatchError, RejectedContentError
from control_plane.ledger import Ledger
from control_plane.operations import installing
from control_plane.operations.session import REJECTION_REASON_CHARS
from control_plane.signing import generate_key, private_pem, public_pem

ARCHIVE = "packages_store/docs.tar.gz"
SECRET = "rejections are on the record 0123456789"


def rejected(
    cpctl: CliFn,
    root: Path,
    outcome: Outcome,
    before: dict[str, str],
    *words: str,
    auth: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> dict:
    """``outcome`` is a one-line exit-5 refusal naming ``words``; the only write is one
    "rejected" ledger entry (and its checkpoint) whose reason names them too; the ledger
    verifies.  Returns the entry."""
    assert_refused(outcome, 5, before, root, *words)  # exactly one entry appended
    entry = ledger_entries(root)[-1]
    assert entry["result"] == "rejected" and entry["txn"] is None and entry["digests"] == {}
    message = next(line for line in outcome.stderr.splitlines() if line.startswith("cpctl:"))
    assert entry["details"]["reason"] in message
    for word in words:
        assert word in entry["details"]["reason"]
    verified = cpctl(*auth, "ledger", "verify", root=root, env=env)
    assert verified.exit_code == 0, verified.stderr
    return entry


def tamper(archive: Path) -> None:
    data = bytearray(archive.read_bytes())
    data[-9] ^= 0xFF
    archive.write_bytes(bytes(data))


def test_tampered_archive_by_id(packed: Path, cpctl: CliFn) -> None:
    tamper(packed / ARCHIVE)
    before = snapshot(packed)
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed)
    entry = rejected(cpctl, packed, outcome, before, "digest")
    assert (entry["action"], entry["target"]) == ("install", "PKG-DOCS")
    assert entry["details"]["kind"] == "DigestMismatchError"
    assert entry["role"] == "admin" and entry["actor"]  # passthrough: the OS user, as admin


def test_unsafe_archive_by_path(root: Path, cpctl: CliFn) -> None:
    forge_row(root, "PKG-EVIL", "evil.tar.gz", HOSTILE["dotdot"]())
    before = snapshot(root)
    outcome = cpctl("install", "--archive", "packages_store/evil.tar.gz", root=root, cwd=root)
    entry = rejected(cpctl, root, outcome, before, "..")
    assert (entry["action"], entry["target"]) == ("install", "packages_store/evil.tar.gz")
    assert entry["details"]["kind"] == "UnsafeArchiveError"


def test_a_long_reason_is_cut(root: Path, cpctl: CliFn) -> None:
    forge_row(root, "PKG-LONG", "long.tar.gz", HOSTILE["long-name"]())
    before = snapshot(root)
    outcome = cpctl("install", "--archive", "packages_store/long.tar.gz", root=root, cwd=root)
    assert_refused(outcome, 5, before, root)
    reason = ledger_entries(root)[-1]["details"]["reason"]
    assert len(reason) <= REJECTION_REASON_CHARS


def require_signatures(root: Path) -> None:
    config = root / "control_plane.toml"
    config.write_text(
        config.read_text().replace("require_signatures = false", "require_signatures = true")
    )


@pytest.mark.parametrize("case", ["garbage-sig-required", "unsigned-required", "stranger-sig"])
def test_bad_signatures(root: Path, cpctl: CliFn, case: str) -> None:
    write(root / "docs" / "guide.md", "# Guide\n")
    trusted = generate_key("ed25519")
    write(root / "keys/trusted/release.pub", public_pem(trusted))
    key = generate_key("ed25519") if case == "stranger-sig" else trusted
    write(root / "release.key", private_pem(key))
    packed = cpctl(
        "pack", "--src", "docs", "--id", "PKG-DOCS", "--sign", "release.key", root=root, cwd=root
    )
    assert packed.exit_code == 0, packed.stderr
    sig = root / (ARCHIVE + ".sig")
    if case == "garbage-sig-required":
        sig.write_text("AAAA\n")
    elif case == "unsigned-required":
        sig.unlink()
    if case != "stranger-sig":
        require_signatures(root)
    before = snapshot(root)
    outcome = cpctl("install", "--id", "PKG-DOCS", root=root)
    words = {
        "garbage-sig-required": "signature",
        "unsigned-required": "unsigned",
        "stranger-sig": "no trusted key verifies",
    }[case]
    entry = rejected(cpctl, root, outcome, before, words)
    assert entry["target"] == "PKG-DOCS" and entry["details"]["kind"] == "SignatureError"


def test_untrusted_tier_names_the_identity(root: Path, cpctl: CliFn) -> None:
    write(root / "bad" / "file.txt", "bad\n")
    outcome = cpctl(
        "pack", "--src", "bad", "--id", "PKG-BAD", "--tier", "untrusted", root=root, cwd=root
    )
    assert outcome.exit_code == 0, outcome.stderr
    config = root / "control_plane.toml"
    text = config.read_text().replace('provider = "passthrough"', 'provider = "hmac"')
    config.write_text(text.replace("[authz.users]\n", '[authz.users]\nmona = "maintainer"\n'))
    before = snapshot(root)
    auth = ("--token", mint_hmac_token(SECRET.encode(), "mona"))
    env = {"CONTROL_PLANE_SHARED_SECRET": SECRET}
    outcome = cpctl(*auth, "install", "--id", "PKG-BAD", root=root, env=env)
    entry = rejected(cpctl, root, outcome, before, "untrusted", auth=auth, env=env)
    assert (entry["actor"], entry["role"], entry["action"]) == ("mona", "maintainer", "install")
    assert entry["target"] == "PKG-BAD"


def test_dry_run_rejections_are_ledgered_too(packed: Path, cpctl: CliFn) -> None:
    tamper(packed / ARCHIVE)
    before = snapshot(packed)
    outcome = cpctl("install", "--id", "PKG-DOCS", "--dry-run", root=packed)
    rejected(cpctl, packed, outcome, before, "digest")


def test_rejections_are_not_mistaken_for_installs(packed: Path, cpctl: CliFn) -> None:
    tamper(packed / ARCHIVE)
    assert cpctl("install", "--id", "PKG-DOCS", root=packed).exit_code == 5
    doctor = cpctl("doctor", "--json", root=packed)
    checks = {check["name"]: check["status"] for check in doctor.json()["checks"]}
    assert checks["ledger"] == checks["trust-state"] == "ok", checks
    assert cpctl("remove", "--id", "PKG-DOCS", root=packed).exit_code == 0  # not installed


def test_read_only_sessions_write_nothing(packed: Path, cpctl: CliFn) -> None:
    (packed / "registries/revocations.json").write_text("{}")  # no signature: exit 5
    before = snapshot(packed)
    outcome = cpctl("revocations", root=packed)
    assert_refused(outcome, 5, before, packed, rejection=False)


def test_a_failing_append_never_masks_the_refusal(
    packed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tamper(packed / ARCHIVE)
    before = snapshot(packed, include_ledger=False)
    with pytest.raises(DigestMismatchError) as expected:
        GateOperations(control_plane_root=packed).install(package_id="PKG-DOCS")
    message = str(expected.value)

    def broken(_ledger: Ledger, _record: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Ledger, "append", broken)
    with pytest.raises(DigestMismatchError) as raised:
        GateOperations(control_plane_root=packed).install(package_id="PKG-DOCS")
    assert str(raised.value) == message and raised.value.exit_code == 5
    assert snapshot(packed, include_ledger=False) == before


def test_an_interrupt_while_appending_is_not_swallowed(
    packed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tamper(packed / ARCHIVE)

    def interrupted(_ledger: Ledger, _record: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Ledger, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        GateOperations(control_plane_root=packed).install(package_id="PKG-DOCS")


def test_only_rejected_content_is_ledgered(packed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The original error object propagates unchanged; other exit codes are not ledgered."""
    error = RejectedContentError("x" * 5000, hint="a hint")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise error

    monkeypatch.setattr(installing, "install", refuse)
    gate = GateOperations(control_plane_root=packed)
    with pytest.raises(RejectedContentError) as raised:
        gate.install(package_id="PKG-DOCS")
    assert raised.value is error and error.hint == "a hint"
    entry = ledger_entries(packed)[-1]
    assert entry["details"] == {
        "kind": "RejectedContentError",
        "reason": "x" * (REJECTION_REASON_CHARS - 3) + "...",
    }
    entries = len(ledger_entries(packed))
    with pytest.raises(KeyError):
        monkeypatch.setattr(installing, "install", lambda *_a, **_k: {}["missing"])
        gate.install(package_id="PKG-DOCS")
    assert len(ledger_entries(packed)) == entries
