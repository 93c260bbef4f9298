"""Tampering with files, archives, sidecars and registries is caught by integrity-check (full and
--fast); the stat cache behind --fast; MANIFEST.json fresh, stale, absent and deterministic."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliFn, Outcome, snapshot, write

from control_plane import statcache

GUIDE = "docs/guide.md"
NOTES = "docs/sub/notes.txt"
ARCHIVE = "packages_store/docs.tar.gz"
CACHE = Path(".control_plane") / "statcache.json"


@pytest.fixture
def installed(packed: Path, cpctl: CliFn) -> Path:
    """PKG-DOCS installed: docs/guide.md and docs/sub/notes.txt governed by the registry."""
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    return packed


@pytest.fixture
def racy_rule_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn the racy-file rule off, so the stat comparison alone decides what is trusted.

    Tests write files moments before checking them; with the rule on, every such
    file would be re-hashed and an edit caught by the rule, not by the stat fields.
    The rule itself is pinned in test_statcache.py and by
    test_files_written_just_before_the_full_check_are_not_trusted below.
    """
    monkeypatch.setattr(statcache, "RACY_WINDOW_NS", -(10**18))


def ledger_size(cpctl: CliFn, root: Path) -> int:
    outcome = cpctl("ledger", "show", "--json", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    return len(outcome.json()["entries"])


def _edit_installed(root: Path) -> None:
    write(root / GUIDE, "# Guide, edited\n")


def _delete_installed(root: Path) -> None:
    (root / NOTES).unlink()


def _add_orphan(root: Path) -> None:
    write(root / "docs" / "planted.sh", "echo hi\n")


def _edit_archive(root: Path) -> None:
    with (root / ARCHIVE).open("ab") as handle:
        handle.write(b"\0")


def _edit_sidecar(root: Path) -> None:
    sidecar = root / (ARCHIVE + ".sha256")
    recorded = sidecar.read_text().split()[0]
    forged = ("0" if recorded[0] != "0" else "1") + recorded[1:]
    sidecar.write_text(sidecar.read_text().replace(recorded, forged))


def _edit_registry_row(root: Path) -> None:
    registry = root / "registries" / "control_plane_registry.csv"
    lines = registry.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if f",{GUIDE}," in line)
    fields = lines[index].split(",")
    fields[2] = "ab" * 32
    lines[index] = ",".join(fields)
    registry.write_text("".join(lines))


# (tamper, the path it must be reported under, the JSON key or finding rule naming it)
TAMPERS: list[tuple[Callable[[Path], None], str, str]] = [
    (_edit_installed, GUIDE, "mismatched"),
    (_delete_installed, NOTES, "missing"),
    (_add_orphan, "docs/planted.sh", "orphans"),
    (_edit_archive, ARCHIVE, "mismatched"),
    (_edit_sidecar, ARCHIVE, "sidecar-mismatch"),
    (_edit_registry_row, GUIDE, "mismatched"),
]
TAMPER_IDS = [
    "installed-file-edited",
    "file-deleted",
    "orphan-added",
    "archive-edited",
    "sidecar-edited",
    "registry-row-edited",
]


def _reported(report: dict, path: str, where: str) -> bool:
    if where in report:
        return path in report[where]
    return any(f["subject"] == path and f["rule"] == where for f in report["findings"])


@pytest.mark.usefixtures("racy_rule_off")
@pytest.mark.parametrize("mode", [(), ("--fast",)], ids=["full", "fast"])
@pytest.mark.parametrize("case", TAMPERS, ids=TAMPER_IDS)
def test_tampering_is_detected_and_named(
    installed: Path,
    cpctl: CliFn,
    mode: tuple[str, ...],
    case: tuple[Callable[[Path], None], str, str],
) -> None:
    tamper, path, where = case
    clean = cpctl("integrity-check", "--json", root=installed)  # also primes the stat cache
    assert clean.exit_code == 0, clean.stdout
    tamper(installed)
    report = cpctl("integrity-check", *mode, "--json", root=installed)
    assert report.exit_code == 1, report.stdout
    assert report.json()["ok"] is False
    assert _reported(report.json(), path, where), report.stdout
    text = cpctl("integrity-check", *mode, root=installed)
    assert text.exit_code == 1
    assert path in text.stdout
    assert "FAILED" in text.stdout


@pytest.mark.parametrize("mode", [(), ("--fast",)], ids=["full", "fast"])
def test_integrity_check_writes_nothing_tracked(
    installed: Path, cpctl: CliFn, mode: tuple[str, ...]
) -> None:
    _edit_installed(installed)
    before = snapshot(installed)
    assert cpctl("integrity-check", *mode, root=installed).exit_code == 1
    assert cpctl("integrity-check", *mode, "--json", root=installed).exit_code == 1
    assert snapshot(installed) == before


# ------------------------------------------------------------------------- --fast


@pytest.mark.usefixtures("racy_rule_off")
def test_fast_trusts_unchanged_files_and_says_so(installed: Path, cpctl: CliFn) -> None:
    full = cpctl("integrity-check", "--json", root=installed).json()
    assert (full["mode"], full["cached"], full["files_checked"]) == ("full", 0, 2)
    fast = cpctl("integrity-check", "--fast", "--json", root=installed)
    assert fast.exit_code == 0, fast.stdout
    report = fast.json()
    assert (report["mode"], report["cached"], report["files_checked"]) == ("fast", 2, 2)
    assert report["merkle_root"] == full["merkle_root"]
    assert report["archives_checked"] == 1  # archives are always hashed
    text = cpctl("integrity-check", "--fast", root=installed).stdout
    assert "fast: 2 of 2 files trusted from the stat cache of the last full check" in text


@pytest.mark.usefixtures("racy_rule_off")
def test_fast_rehashes_a_file_whose_size_changed(installed: Path, cpctl: CliFn) -> None:
    assert cpctl("integrity-check", root=installed).exit_code == 0
    with (installed / GUIDE).open("a") as handle:
        handle.write("appended\n")
    report = cpctl("integrity-check", "--fast", "--json", root=installed).json()
    assert report["mismatched"] == [GUIDE]
    assert report["cached"] == 1


@pytest.mark.usefixtures("racy_rule_off")
@pytest.mark.parametrize("restore_mtime", [False, True], ids=["mtime-changed", "mtime-restored"])
def test_fast_rehashes_a_same_size_edit(installed: Path, cpctl: CliFn, restore_mtime: bool) -> None:
    target = installed / GUIDE
    original = target.stat()
    assert cpctl("integrity-check", root=installed).exit_code == 0
    target.write_text("# Gu1de\n")  # same length, other bytes
    if restore_mtime:
        # A careful tamperer resets mtime; ctime still moves and gives it away.
        os.utime(target, ns=(original.st_atime_ns, original.st_mtime_ns))
    else:
        os.utime(target, ns=(original.st_atime_ns, original.st_mtime_ns - 10**9))
    assert target.stat().st_size == original.st_size
    report = cpctl("integrity-check", "--fast", "--json", root=installed).json()
    assert report["mismatched"] == [GUIDE]
    assert report["cached"] == 1


def test_files_written_just_before_the_full_check_are_not_trusted(
    installed: Path, cpctl: CliFn
) -> None:
    # Installed moments ago: within the racy window of the cache, so hashed again.
    assert cpctl("integrity-check", root=installed).exit_code == 0
    report = cpctl("integrity-check", "--fast", "--json", root=installed).json()
    assert report["ok"] is True
    assert report["cached"] == 0


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b'{"schema": "control-plane.statcache/0", "taken_at_ns": 1, "entries": {}}',
        b"\xff\xfe",
    ],
    ids=["empty", "truncated-json", "other-schema", "not-utf8"],
)
@pytest.mark.usefixtures("racy_rule_off")
def test_a_corrupt_cache_falls_back_to_hashing_with_a_warning(
    installed: Path, cpctl: CliFn, content: bytes
) -> None:
    assert cpctl("integrity-check", root=installed).exit_code == 0
    (installed / CACHE).write_bytes(content)
    outcome = cpctl("integrity-check", "--fast", "--json", root=installed)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["cached"] == 0
    assert "ignoring the stat cache .control_plane/statcache.json" in outcome.stderr
    # The fallback run re-wrote a good cache, so the next one trusts it again.
    assert cpctl("integrity-check", "--fast", "--json", root=installed).json()["cached"] == 2


def test_fast_without_a_cache_hashes_everything_and_says_so(installed: Path, cpctl: CliFn) -> None:
    (installed / CACHE).unlink(missing_ok=True)
    outcome = cpctl("integrity-check", "--fast", "--json", root=installed)
    assert outcome.exit_code == 0
    assert outcome.json()["cached"] == 0
    assert "no stat cache" in outcome.stderr


def test_a_full_check_records_every_hashed_file(installed: Path, cpctl: CliFn) -> None:
    assert cpctl("integrity-check", root=installed).exit_code == 0
    cache = statcache.parse_statcache((installed / CACHE).read_bytes())
    assert sorted(cache.entries) == [GUIDE, NOTES]
    stat = (installed / GUIDE).stat()
    entry = cache.entries[GUIDE]
    assert (entry.stat.size, entry.stat.inode) == (stat.st_size, stat.st_ino)
    assert json.loads((installed / CACHE).read_text())["schema"] == statcache.SCHEMA


# ------------------------------------------------------------------------- MANIFEST.json


def _manifest(cpctl: CliFn, root: Path) -> Outcome:
    outcome = cpctl("manifest", "--json", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    return outcome


def test_a_root_without_a_manifest_checks_clean_and_reports_absent(
    installed: Path, cpctl: CliFn
) -> None:
    outcome = cpctl("integrity-check", "--json", root=installed)
    assert outcome.exit_code == 0
    assert outcome.json()["manifest"] == "absent"
    assert "manifest: absent" in cpctl("integrity-check", root=installed).stdout


def test_manifest_is_fresh_deterministic_and_written_once(installed: Path, cpctl: CliFn) -> None:
    entries = ledger_size(cpctl, installed)
    first = _manifest(cpctl, installed).json()
    assert (first["status"], first["changed"], first["files"], first["packages"]) == (
        "written",
        True,
        2,
        1,
    )
    assert ledger_size(cpctl, installed) == entries + 1
    data = (installed / "MANIFEST.json").read_bytes()
    before = snapshot(installed)
    second = _manifest(cpctl, installed).json()
    assert (second["status"], second["changed"]) == ("unchanged", False)
    assert second["sha256"] == first["sha256"]
    assert (installed / "MANIFEST.json").read_bytes() == data
    assert snapshot(installed) == before  # no second ledger entry either
    assert ledger_size(cpctl, installed) == entries + 1

    report = cpctl("integrity-check", "--json", root=installed)
    assert report.exit_code == 0, report.stdout
    assert report.json()["manifest"] == "fresh"
    assert report.json()["orphans"] == []  # MANIFEST.json is machinery, not an orphan
    assert report.json()["merkle_root"] == first["merkle_root"]

    document = json.loads(data)
    assert data.endswith(b"}\n")
    assert document["schema"] == "control-plane.manifest/1"
    assert [item["path"] for item in document["files"]] == [GUIDE, NOTES]
    assert document["packages"][0]["id"] == "PKG-DOCS"
    assert document["merkle_root"] == first["merkle_root"]


def test_a_registry_change_makes_the_manifest_stale(installed: Path, cpctl: CliFn) -> None:
    _manifest(cpctl, installed)
    write(installed / GUIDE, "# Guide v2\n")
    assert cpctl("hash-update", "--path", GUIDE, root=installed).exit_code == 0
    outcome = cpctl("integrity-check", "--json", root=installed)
    assert outcome.exit_code == 1
    report = outcome.json()
    assert report["manifest"] == "stale"
    assert [f["rule"] for f in report["findings"]] == ["manifest-stale"]
    text = cpctl("integrity-check", root=installed).stdout
    assert "MANIFEST.json" in text and "manifest: stale" in text
    assert _manifest(cpctl, installed).json()["status"] == "written"
    assert cpctl("integrity-check", root=installed).exit_code == 0


@pytest.mark.parametrize(
    "tamper",
    [
        lambda path: path.write_bytes(
            path.read_bytes().replace(b'"owner": "PKG-DOCS"', b'"owner": "me"', 1)
        ),
        lambda path: path.write_bytes(json.dumps(json.loads(path.read_bytes())).encode()),
        lambda path: path.write_bytes(path.read_bytes().rstrip(b"\n")),
    ],
    ids=["field-edited", "reformatted", "trailing-newline-dropped"],
)
def test_an_edited_manifest_is_stale(
    installed: Path, cpctl: CliFn, tamper: Callable[[Path], None]
) -> None:
    _manifest(cpctl, installed)
    tamper(installed / "MANIFEST.json")
    outcome = cpctl("integrity-check", "--json", root=installed)
    assert outcome.exit_code == 1
    assert outcome.json()["manifest"] == "stale"


def test_manifest_refuses_to_write_through_a_symlink(installed: Path, cpctl: CliFn) -> None:
    outside = installed.parent / "elsewhere.json"
    outside.write_text("{}\n")
    (installed / "MANIFEST.json").symlink_to(outside)
    outcome = cpctl("manifest", root=installed)
    assert outcome.exit_code == 2
    assert "MANIFEST.json" in outcome.stderr
    assert outside.read_text() == "{}\n"
    assert cpctl("integrity-check", "--json", root=installed).json()["manifest"] == "stale"
