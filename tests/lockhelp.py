"""A locked root for the lockfile and drift tests, and the ways to make it drift."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from conftest import CliFn, write

from control_plane.registry import dump_packages, parse_packages
from control_plane.versions import parse_version

LOCK = "control_plane.lock"


def pack(cpctl: CliFn, root: Path, package_id: str, folder: str, files: dict[str, str]) -> None:
    """Pack ``files`` (relative to ``folder``) as ``package_id`` 1.0.0, then delete the sources."""
    for name, body in files.items():
        write(root / folder / name, body)
    outcome = cpctl(
        "pack", "--src", folder, "--id", package_id, "--version", "1.0.0", root=root, cwd=root
    )
    assert outcome.exit_code == 0, outcome.stderr
    shutil.rmtree(root / folder)


def ok(outcome) -> None:  # type: ignore[no-untyped-def]
    assert outcome.exit_code == 0, outcome.stdout + outcome.stderr


def build_locked_root(root: Path, cpctl: CliFn) -> Path:
    """PKG-DOCS and PKG-EXTRA installed and locked; PKG-NEW packed, not installed."""
    pack(cpctl, root, "PKG-DOCS", "docs", {"guide.md": "# Guide\n", "sub/notes.txt": "notes\n"})
    pack(cpctl, root, "PKG-EXTRA", "extra", {"x.txt": "x\n"})
    pack(cpctl, root, "PKG-NEW", "fresh", {"new.txt": "new\n"})
    ok(cpctl("install", "--id", "PKG-DOCS", root=root))
    ok(cpctl("install", "--id", "PKG-EXTRA", root=root))
    ok(cpctl("lock", root=root))
    return root


def edit_row(root: Path, package_id: str, **changes: object) -> None:
    """Rewrite one package row in the registry, as a hand edit or a tampered root would."""
    registry = root / "registries/packages_registry.csv"
    rows = list(parse_packages(registry.read_bytes()).require_clean())
    rows = [replace(row, **changes) if row.id == package_id else row for row in rows]
    registry.write_bytes(dump_packages(rows))


def without_lock(root: Path, action: Callable[[], None]) -> None:
    """Do ``action`` while the lock is moved aside, so it is not rewritten."""
    aside = root.parent / "lock.aside"
    (root / LOCK).replace(aside)
    try:
        action()
    finally:
        aside.replace(root / LOCK)


def _file_modified(root: Path, _cpctl: CliFn) -> None:
    with (root / "docs/guide.md").open("a") as handle:
        handle.write("edited\n")


def _file_missing(root: Path, _cpctl: CliFn) -> None:
    (root / "docs/sub/notes.txt").unlink()


def _registry_version(root: Path, _cpctl: CliFn) -> None:
    edit_row(root, "PKG-DOCS", version=parse_version("1.0.1"))


def _registry_digest(root: Path, _cpctl: CliFn) -> None:
    edit_row(root, "PKG-DOCS", digest="sha256:" + "ab" * 32)


def _registry_installed(root: Path, _cpctl: CliFn) -> None:
    edit_row(root, "PKG-DOCS", installed_version=parse_version("0.9.0"))


def _archive_changed(root: Path, _cpctl: CliFn) -> None:
    archive = root / "packages_store/docs.tar.gz"
    archive.write_bytes(archive.read_bytes() + b"\0")


def _archive_missing(root: Path, _cpctl: CliFn) -> None:
    (root / "packages_store/docs.tar.gz").unlink()


def _not_locked(root: Path, cpctl: CliFn) -> None:
    without_lock(root, lambda: ok(cpctl("install", "--id", "PKG-NEW", root=root)))


def _not_installed(root: Path, cpctl: CliFn) -> None:
    without_lock(root, lambda: ok(cpctl("remove", "--id", "PKG-EXTRA", root=root)))


# name -> (make the root drift, the drift kind `cpctl drift` reports)
DRIFTS: dict[str, tuple[Callable[[Path, CliFn], None], str]] = {
    "file-modified": (_file_modified, "file-modified"),
    "file-missing": (_file_missing, "file-missing"),
    "registry-version": (_registry_version, "registry-changed"),
    "registry-digest": (_registry_digest, "registry-changed"),
    "registry-installed-record": (_registry_installed, "registry-changed"),
    "archive-changed": (_archive_changed, "archive-changed"),
    "archive-missing": (_archive_missing, "archive-missing"),
    "not-locked": (_not_locked, "not-locked"),
    "not-installed": (_not_installed, "not-installed"),
}
