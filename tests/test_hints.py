"""Refusals and findings suggest the next command when there is an obvious one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliFn, snapshot, write

from control_plane.auth import mint_hmac_token

SECRET = "correct horse battery staple 0123456789"


@pytest.fixture
def installed(packed: Path, cpctl: CliFn) -> Path:
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    return packed


def _hint(stderr: str) -> str:
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("cpctl: error: "), stderr
    assert "(next: " in line, f"no next step in: {line}"
    return line.split("(next: ", 1)[1].rstrip(")")


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (("install", "--id", "PKG-DOC"), 2, "did you mean PKG-DOCS?"),
        (("update", "--id", "PKG-DCOS"), 2, "did you mean PKG-DOCS?"),
        (("remove", "--id", "PKG-DOCSS"), 2, "did you mean PKG-DOCS?"),
        (("verify", "--id", "pkg-docs"), 2, "did you mean PKG-DOCS?"),
        (("install", "--id", "PKG-UNRELATED-THING"), 2, "cpctl pack --src PATH --id ID"),
        (("remove", "--id", "PKG-NOPE"), 2, "cpctl pack --src PATH --id ID"),
        (("update", "--id", "PKG-DOCS"), 4, "cpctl install --id PKG-DOCS"),
        (
            ("create", "--archive", "packages_store/docs.tar.gz", "--id", "PKG-OTHER"),
            4,
            "cpctl install --id PKG-DOCS",
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
)
def test_refusals_name_the_next_command(
    packed: Path, cpctl: CliFn, args: tuple[str, ...], code: int, expected: str
) -> None:
    before = snapshot(packed, include_ledger=False)
    outcome = cpctl(*args, root=packed, cwd=packed)
    assert outcome.exit_code == code, outcome.stderr
    assert expected in _hint(outcome.stderr)
    assert snapshot(packed, include_ledger=False) == before


def test_not_a_root_suggests_init(cpctl: CliFn, tmp_path: Path) -> None:
    outcome = cpctl("install", "--id", "PKG-DOCS", root=tmp_path)
    assert outcome.exit_code == 2
    assert "cpctl init" in _hint(outcome.stderr)
    assert list(tmp_path.iterdir()) == []


def test_a_conflict_suggests_force_or_remove(packed: Path, cpctl: CliFn) -> None:
    write(packed / "docs" / "guide.md", "# someone else's guide\n")
    before = snapshot(packed, include_ledger=False)
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed)
    assert outcome.exit_code == 4
    hint = _hint(outcome.stderr)
    assert "--force" in hint and "cpctl remove" in hint
    assert snapshot(packed, include_ledger=False) == before


def test_modified_files_block_remove_with_a_way_out(installed: Path, cpctl: CliFn) -> None:
    write(installed / "docs" / "guide.md", "# my edits\n")
    before = snapshot(installed, include_ledger=False)
    outcome = cpctl("remove", "--id", "PKG-DOCS", root=installed)
    assert outcome.exit_code == 4
    assert "--force" in _hint(outcome.stderr)
    assert snapshot(installed, include_ledger=False) == before


def _hmac(root: Path, users: str) -> dict[str, str]:
    config = root / "control_plane.toml"
    text = config.read_text().replace('provider = "passthrough"', 'provider = "hmac"')
    config.write_text(text.replace("[authz.users]\n", "[authz.users]\n" + users))
    return {"CONTROL_PLANE_SHARED_SECRET": SECRET}


@pytest.mark.parametrize(
    ("users", "expected"),
    [
        ('rita = "reader"\n', "cpctl whoami"),
        ("", "to [authz.users] in control_plane.toml"),
    ],
    ids=["role-lacks-action", "no-role"],
)
def test_denials_say_what_to_do(packed: Path, cpctl: CliFn, users: str, expected: str) -> None:
    env = _hmac(packed, users)
    token = mint_hmac_token(SECRET.encode(), "rita")
    before = snapshot(packed, include_ledger=False)
    outcome = cpctl("--token", token, "install", "--id", "PKG-DOCS", root=packed, env=env)
    assert outcome.exit_code == 3
    assert expected in _hint(outcome.stderr)
    assert snapshot(packed, include_ledger=False) == before


Damage = Callable[[Path], object]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            lambda root: write(root / "docs" / "guide.md", "# edited\n"),
            "next: restore docs/guide.md, or after an intentional change: "
            "cpctl hash-update --path docs/guide.md",
        ),
        (
            lambda root: (root / "docs" / "guide.md").unlink(),
            "next: restore docs/guide.md (cpctl install --id ID --force",
        ),
        (
            lambda root: write(root / "docs" / "stray.md", "x\n"),
            "next: cpctl hash-update --path docs/stray.md to govern it",
        ),
    ],
    ids=["mismatched", "missing", "orphan"],
)
def test_integrity_findings_suggest_the_fix(
    installed: Path, cpctl: CliFn, damage: Damage, expected: str
) -> None:
    damage(installed)
    outcome = cpctl("integrity-check", root=installed)
    assert outcome.exit_code == 1
    assert expected in outcome.stdout


def test_a_stale_manifest_suggests_cpctl_manifest(installed: Path, cpctl: CliFn) -> None:
    assert cpctl("manifest", root=installed).exit_code == 0
    write(installed / "MANIFEST.json", "{}\n")
    outcome = cpctl("integrity-check", root=installed)
    assert outcome.exit_code == 1
    assert "next: cpctl manifest" in outcome.stdout


def test_the_suggested_fix_works(installed: Path, cpctl: CliFn) -> None:
    write(installed / "docs" / "stray.md", "x\n")
    suggestion = next(
        line
        for line in cpctl("integrity-check", root=installed).stdout.splitlines()
        if line.startswith("next: ")
    )
    command = suggestion.removeprefix("next: ").split(" to govern")[0].split()
    assert command[0] == "cpctl"
    assert cpctl(*command[1:], root=installed, cwd=installed).exit_code == 0
    assert cpctl("integrity-check", root=installed).exit_code == 0


def test_signing_a_mistyped_id_suggests_the_registered_one(packed: Path, cpctl: CliFn) -> None:
    made = cpctl("keys", "generate", "--type", "ed25519", "--id", "release", root=packed)
    assert made.exit_code == 0, made.stderr
    before = snapshot(packed, include_ledger=False)
    key = str(packed / "keys" / "private" / "release.key")
    outcome = cpctl("sign", "--id", "PKG-DOCZ", "--key", key, root=packed)
    assert outcome.exit_code == 2
    assert _hint(outcome.stderr) == "did you mean PKG-DOCS?"
    assert snapshot(packed, include_ledger=False) == before
