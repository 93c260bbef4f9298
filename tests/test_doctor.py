"""cpctl doctor: one pass over a root, each problem with its fix, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import CliFn, snapshot, write


def checks_of(cpctl: CliFn, root: Path) -> tuple[int, dict[str, dict]]:
    outcome = cpctl("doctor", "--json", root=root)
    document = outcome.json()
    assert document["schema"] == "control-plane.doctor/1"
    assert document["ok"] is (outcome.exit_code == 0)
    return outcome.exit_code, {check["name"]: check for check in document["checks"]}


def test_fresh_root_passes_with_the_auth_warning(cpctl: CliFn, root: Path) -> None:
    code, checks = checks_of(cpctl, root)
    assert code == 0
    assert checks["auth"]["status"] == "warn" and "hmac" in checks["auth"]["fix"]
    others = {name: check["status"] for name, check in checks.items() if name != "auth"}
    assert set(others.values()) == {"ok"}, others
    text = cpctl("doctor", root=root)
    assert text.exit_code == 0 and "WARN auth" in text.stdout


def test_doctor_writes_nothing(cpctl: CliFn, packed: Path) -> None:
    before = snapshot(packed)
    cpctl("doctor", root=packed)
    assert snapshot(packed) == before


@pytest.mark.parametrize(
    ("damage", "check", "status", "fix_words"),
    [
        (
            lambda root: write(
                root / "registries" / "packages_registry.csv",
                (root / "registries" / "packages_registry.csv")
                .read_text()
                .replace("sha256:", "sha256:0", 1)[:-2]
                + "\n",
            ),
            "registries",
            "fail",
            "cpctl validate",
        ),
        (
            lambda root: write(root / "packages_store" / "stray.tar.gz", b"x"),
            "store",
            "warn",
            "cpctl create",
        ),
        (
            lambda root: write(root / "ledger" / "ledger.jsonl", b'{"seq": 0}\n'),
            "open",
            "fail",
            "restore",
        ),
        (
            lambda root: os.chmod(root / ".control_plane" / "ledger.key", 0o644),
            "ledger-key",
            "fail",
            "chmod 600",
        ),
        (
            lambda root: (root / ".control_plane" / "ledger.key").unlink(),
            "ledger-key",
            "warn",
            "CONTROL_PLANE_LEDGER_KEY",
        ),
    ],
    ids=["bad-digest", "stray-archive", "ledger-rewritten", "key-exposed", "key-absent"],
)
def test_each_problem_is_named_with_its_fix(
    cpctl: CliFn, packed: Path, damage, check: str, status: str, *, fix_words: str | None
) -> None:
    damage(packed)
    _code, checks = checks_of(cpctl, packed)
    assert checks[check]["status"] == status, checks[check]
    if fix_words:
        assert fix_words in (checks[check]["fix"] or "")


def test_rewritten_ledger_entry_fails_the_ledger_check(cpctl: CliFn, packed: Path) -> None:
    ledger = packed / "ledger" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    write(ledger, b"".join([lines[0].replace(b'"init"', b'"tini"'), *lines[1:]]))
    code, checks = checks_of(cpctl, packed)
    assert code == 1 and checks["ledger"]["status"] == "fail"
    assert "entry 0" in checks["ledger"]["summary"] or "0" in checks["ledger"]["summary"]


def test_installed_file_changed_is_a_files_failure(cpctl: CliFn, packed: Path) -> None:
    assert cpctl("install", "--id", "PKG-DOCS", root=packed).exit_code == 0
    write(packed / "docs" / "guide.md", "# Edited\n")
    code, checks = checks_of(cpctl, packed)
    assert code == 1
    assert checks["files"]["status"] == "fail"
    assert "docs/guide.md" in checks["files"]["summary"]
    assert "hash-update" in checks["files"]["fix"]


def test_broken_config_is_reported_not_raised(cpctl: CliFn, root: Path) -> None:
    write(root / "control_plane.toml", "[surprise]\nx = 1\n")
    outcome = cpctl("doctor", root=root)
    assert outcome.exit_code == 1
    assert "FAIL config" in outcome.stdout and "surprise" in outcome.stdout
    assert "Traceback" not in outcome.stderr


def test_doctor_needs_the_verify_action(cpctl: CliFn, root: Path) -> None:
    write(
        root / "control_plane.toml",
        '[auth]\nprovider = "hmac"\n[authz.users]\nalice = "admin"\n',
    )
    env = {"CONTROL_PLANE_SHARED_SECRET": "s" * 32}
    outcome = cpctl("doctor", root=root, env=env)
    assert outcome.exit_code == 3


# -- supply chain: keys and policy ---------------------------------------------------


def _policy(root: Path, **values: object) -> None:
    config = root / "control_plane.toml"
    text = config.read_text()
    for key, value in values.items():
        old = next(line for line in text.splitlines() if line.startswith(f"{key} ="))
        text = text.replace(old, f"{key} = {str(value).lower()}")
    config.write_text(text)


def _trust_new_key(root: Path, name: str = "release") -> Path:
    from control_plane import signing

    key = signing.generate_key("ed25519")
    write(root / "keys" / "trusted" / f"{name}.pub", signing.public_pem(key.public_key()))
    private = root / "keys" / "private" / f"{name}.key"
    write(private, signing.private_pem(key))
    private.chmod(0o600)
    public_copy = write(root / "keys" / "private" / f"{name}.pub", signing.public_pem(key))
    public_copy.chmod(0o644)  # a public key beside it may be readable: not a finding
    return private


def test_require_signatures_without_a_trusted_key_fails(cpctl: CliFn, root: Path) -> None:
    _policy(root, require_signatures=True)
    code, checks = checks_of(cpctl, root)
    assert code == 1
    assert checks["policy"]["status"] == "fail"
    assert "cpctl keys trust" in checks["policy"]["fix"]


def test_threshold_above_the_trusted_keys_warns(cpctl: CliFn, root: Path) -> None:
    _trust_new_key(root)
    _policy(root, manifest_threshold=2)
    code, checks = checks_of(cpctl, root)
    assert code == 0
    assert checks["keys"]["status"] == "ok" and "1 trusted" in checks["keys"]["summary"]
    assert checks["policy"]["status"] == "warn" and "threshold" in checks["policy"]["fix"]


def test_unsigned_archive_under_require_signatures_is_named(cpctl: CliFn, packed: Path) -> None:
    _trust_new_key(packed)
    _policy(packed, require_signatures=True)
    code, checks = checks_of(cpctl, packed)
    assert code == 1
    assert checks["policy"]["status"] == "fail" and "PKG-DOCS" in checks["policy"]["summary"]


@pytest.mark.parametrize("where", ["trusted", "private"])
def test_exposed_private_keys_fail(cpctl: CliFn, root: Path, where: str) -> None:
    private = _trust_new_key(root)
    if where == "trusted":
        write(root / "keys" / "trusted" / "oops.pub", private.read_bytes())
    else:
        private.chmod(0o644)
    before = snapshot(root)
    code, checks = checks_of(cpctl, root)
    assert code == 1
    assert checks["keys"]["status"] == "fail" and "chmod 600" in checks["keys"]["fix"]
    assert snapshot(root) == before


def test_unreadable_public_key_fails_the_keys_check(cpctl: CliFn, root: Path) -> None:
    write(root / "keys" / "trusted" / "broken.pub", "not a key\n")
    code, checks = checks_of(cpctl, root)
    assert code == 1
    assert checks["keys"]["status"] == "fail" and "broken.pub" in checks["keys"]["summary"]


def test_installed_packages_later_deprecated_or_untrusted_are_named(
    cpctl: CliFn, packed: Path
) -> None:
    assert cpctl("install", "--id", "PKG-DOCS", root=packed).exit_code == 0
    write(packed / "other" / "x.md", "x\n")
    assert (
        cpctl("pack", "--src", "other", "--id", "PKG-NEW", root=packed, cwd=packed).exit_code == 0
    )
    assert (
        cpctl("deprecate", "--id", "PKG-DOCS", "--replacement", "PKG-NEW", root=packed).exit_code
        == 0
    )
    code, checks = checks_of(cpctl, packed)
    assert checks["tiers"]["status"] == "warn"
    assert "PKG-DOCS (use PKG-NEW)" in checks["tiers"]["summary"]
    registry = packed / "registries" / "packages_registry.csv"
    lines = registry.read_text().splitlines()
    lines = [
        line.replace(",community,", ",untrusted,") if line.startswith("PKG-DOCS,") else line
        for line in lines
    ]
    registry.write_text("\n".join(lines) + "\n")
    code, checks = checks_of(cpctl, packed)
    assert code == 1 and checks["tiers"]["status"] == "fail"
    assert "cpctl remove" in checks["tiers"]["fix"]
