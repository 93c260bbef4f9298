"""Drift: every form is reported by `cpctl drift` and refused by install/update/remove."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CliFn, snapshot
from lockhelp import DRIFTS, LOCK, build_locked_root, ok

from control_plane.lockfile import parse_lock


@pytest.fixture
def locked(root: Path, cpctl: CliFn) -> Path:
    return build_locked_root(root, cpctl)


def test_a_fresh_lock_has_no_drift(locked: Path, cpctl: CliFn) -> None:
    outcome = cpctl("drift", "--json", root=locked)
    ok(outcome)
    document = outcome.json()
    assert document["schema"] == "control-plane.drift/1"
    assert document["ok"] is True and document["drift"] == []
    assert document["packages"] == 2 and document["files_checked"] == 3


@pytest.mark.parametrize("form", sorted(DRIFTS), ids=sorted(DRIFTS))
def test_drift_reports_each_form(locked: Path, cpctl: CliFn, form: str) -> None:
    make, kind = DRIFTS[form]
    make(locked, cpctl)
    outcome = cpctl("drift", "--json", root=locked)
    assert outcome.exit_code == 1, outcome.stderr
    document = outcome.json()
    assert document["ok"] is False
    assert [item["kind"] for item in document["drift"]] == [kind]
    text = cpctl("drift", root=locked)
    assert text.exit_code == 1 and kind in text.stdout


REFUSED = {
    "install": ("install", "--id", "PKG-NEW"),
    "update": ("update", "--id", "PKG-DOCS"),
    "remove": ("remove", "--id", "PKG-DOCS"),
    "install-dry-run": ("install", "--id", "PKG-NEW", "--dry-run"),
}


@pytest.mark.parametrize("command", sorted(REFUSED), ids=sorted(REFUSED))
@pytest.mark.parametrize("form", sorted(DRIFTS), ids=sorted(DRIFTS))
def test_changes_refuse_a_drifted_root(locked: Path, cpctl: CliFn, form: str, command: str) -> None:
    DRIFTS[form][0](locked, cpctl)
    before = snapshot(locked)
    outcome = cpctl(*REFUSED[command], root=locked)
    assert outcome.exit_code == 4, outcome.stdout + outcome.stderr
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("cpctl: error:")]
    assert len(errors) == 1 and "Traceback" not in outcome.stderr
    assert "drifted from control_plane.lock" in errors[0]
    assert "in all" in errors[0] and "cpctl drift" in errors[0] and "--force" in errors[0]
    assert snapshot(locked) == before


def test_the_refusal_names_the_first_finding_and_the_count(locked: Path, cpctl: CliFn) -> None:
    (locked / "docs/guide.md").write_text("changed\n")
    (locked / "docs/sub/notes.txt").unlink()
    outcome = cpctl("remove", "--id", "PKG-EXTRA", root=locked)
    assert outcome.exit_code == 4
    assert "docs/guide.md (installed by PKG-DOCS) was changed (2 findings in all)" in outcome.stderr


def test_force_overrides_drift_and_rewrites_the_lock(locked: Path, cpctl: CliFn) -> None:
    (locked / "docs/guide.md").write_text("my edit\n")
    outcome = cpctl("install", "--id", "PKG-NEW", "--force", root=locked)
    ok(outcome)
    assert "--force: proceeding despite drift" in outcome.stderr
    pinned = parse_lock((locked / LOCK).read_bytes()).by_id()
    assert sorted(pinned) == ["PKG-DOCS", "PKG-EXTRA", "PKG-NEW"]
    # The lock pins what was installed, never the edit: the drift is still reported.
    report = cpctl("drift", "--json", root=locked)
    assert report.exit_code == 1
    assert [item["subject"] for item in report.json()["drift"]] == ["docs/guide.md"]


def test_remove_force_over_drift(locked: Path, cpctl: CliFn) -> None:
    (locked / "packages_store/extra.tar.gz").unlink()
    ok(cpctl("remove", "--id", "PKG-DOCS", "--force", root=locked))
    assert sorted(parse_lock((locked / LOCK).read_bytes()).by_id()) == ["PKG-EXTRA"]


def test_update_and_remove_rewrite_the_lock(locked: Path, cpctl: CliFn) -> None:
    ok(cpctl("remove", "--id", "PKG-EXTRA", root=locked))
    assert sorted(parse_lock((locked / LOCK).read_bytes()).by_id()) == ["PKG-DOCS"]
    ok(cpctl("install", "--id", "PKG-EXTRA", root=locked))
    ok(cpctl("drift", root=locked))
    assert sorted(parse_lock((locked / LOCK).read_bytes()).by_id()) == ["PKG-DOCS", "PKG-EXTRA"]


def test_a_registry_update_needs_force_while_locked(locked: Path, cpctl: CliFn) -> None:
    (locked / "docs").mkdir(exist_ok=True)
    (locked / "docs/guide.md").write_text("# Guide v2\n")
    (locked / "docs/sub/notes.txt").write_text("notes\n")
    outcome = cpctl(
        "pack", "--src", "docs", "--id", "PKG-DOCS", "--version", "1.1.0", root=locked, cwd=locked
    )
    ok(outcome)
    refused = cpctl("update", "--id", "PKG-DOCS", root=locked)
    assert refused.exit_code == 4 and "registry row now has 1.1.0" in refused.stderr
    ok(cpctl("update", "--id", "PKG-DOCS", "--force", root=locked))
    assert parse_lock((locked / LOCK).read_bytes()).by_id()["PKG-DOCS"].version == "1.1.0"
    ok(cpctl("drift", root=locked))


def test_no_lock_is_clean_with_a_note(root: Path, cpctl: CliFn) -> None:
    outcome = cpctl("drift", "--json", root=root)
    ok(outcome)
    assert outcome.json()["lock_present"] is False
    assert "no control_plane.lock" in outcome.stderr
    required = cpctl("drift", "--require-lock", "--json", root=root)
    assert required.exit_code == 1
    assert required.json()["ok"] is False


def test_without_a_lock_changes_are_not_guarded(packed: Path, cpctl: CliFn) -> None:
    ok(cpctl("install", "--id", "PKG-DOCS", root=packed))
    (packed / "docs/guide.md").write_text("edited\n")
    ok(cpctl("install", "--id", "PKG-DOCS", root=packed))  # already installed: unchanged
    assert not (packed / LOCK).exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"not toml [", "not valid TOML"),
        (b"x = " + b"[" * 100_000, "nested too deeply"),
        (b'schema = "control-plane.lock/9"\n', "schema must be"),
        (b'schema = "control-plane.lock/1"\nextra = 1\n', "unknown keys"),
        (
            b'schema = "control-plane.lock/1"\n[[packages]]\nid = "PKG-X"\nversion = "1.0.0"\n'
            b'digest = "sha256:00"\narchive = "packages_store/x.tar.gz"\noutput_type = "extension"\n'
            b"files = []\n",
            "invalid digest",
        ),
        (
            b'schema = "control-plane.lock/1"\n[[packages]]\nid = "PKG-X"\nversion = "1.0.0"\n'
            b'digest = "sha256:' + b"0" * 64 + b'"\narchive = "packages_store/x.tar.gz"\n'
            b'output_type = "extension"\nfiles = [{path = "../etc/passwd", sha256 = "'
            + b"0" * 64
            + b'"}]\n',
            "unsafe path",
        ),
    ],
    ids=["not-toml", "hostile-nesting", "other-schema", "unknown-key", "bad-digest", "traversal"],
)
def test_a_malformed_lock_fails_closed(
    locked: Path, cpctl: CliFn, content: bytes, words: str
) -> None:
    (locked / LOCK).write_bytes(content)
    before = snapshot(locked)
    for command in (("drift",), ("install", "--id", "PKG-NEW"), ("remove", "--id", "PKG-DOCS")):
        outcome = cpctl(*command, root=locked)
        assert outcome.exit_code == 2, outcome.stderr
        assert words in outcome.stderr and "Traceback" not in outcome.stderr
    assert snapshot(locked) == before


def test_a_symlinked_lock_fails_closed(locked: Path, cpctl: CliFn) -> None:
    (locked / LOCK).unlink()
    (locked / LOCK).symlink_to("registries/packages_registry.csv")
    before = snapshot(locked)
    outcome = cpctl("install", "--id", "PKG-NEW", root=locked)
    assert outcome.exit_code == 2 and "not a regular file" in outcome.stderr
    assert snapshot(locked) == before


def test_doctor_reports_the_lock(locked: Path, cpctl: CliFn) -> None:
    def lock_check() -> dict:
        outcome = cpctl("doctor", "--json", root=locked)
        return next(check for check in outcome.json()["checks"] if check["name"] == "lock")

    assert lock_check()["status"] == "ok"
    (locked / "docs/guide.md").write_text("edited\n")
    check = lock_check()
    assert check["status"] == "fail" and "docs/guide.md" in check["summary"]
    assert "cpctl drift" in check["fix"]
    (locked / LOCK).write_bytes(b"not toml [")
    assert lock_check()["status"] == "fail"


def test_dry_run_leaves_the_lock_alone(locked: Path, cpctl: CliFn) -> None:
    before = snapshot(locked)
    ok(cpctl("install", "--id", "PKG-NEW", "--dry-run", root=locked))
    ok(cpctl("remove", "--id", "PKG-DOCS", "--dry-run", root=locked))
    assert snapshot(locked) == before
