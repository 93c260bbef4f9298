"""``control_plane.lock``: what is installed, pinned; its TOML form; and drift from it.

A lock pins every installed package: its version, archive digest and store path,
its signer's key id (when known), where it installs, and the hash of every file it
owns.  The TOML is deterministic (packages sorted by id, files by path, no
timestamps), so locking the same state twice gives the same bytes and a diff of
the lock is a diff of the installed state.

Pure: bytes and typed values in, bytes, typed values and findings out.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

import tomli_w

from control_plane.digests import digests_equal, is_hex64, parse_digest
from control_plane.errors import UsageError
from control_plane.registry import OutputType, PackageRow, is_registry_path, is_valid_id
from control_plane.registry.rows import ARCHIVE_SUFFIX, STORE_PREFIX
from control_plane.versions import parse_version

SCHEMA = "control-plane.lock/1"
LOCK_NAME = "control_plane.lock"

_TOP_KEYS = frozenset({"schema", "packages"})
_PACKAGE_KEYS = frozenset({"id", "version", "digest", "archive", "signer", "output_type", "files"})
_REQUIRED_PACKAGE_KEYS = _PACKAGE_KEYS - {"signer"}
_FILE_KEYS = frozenset({"path", "sha256"})
_OUTPUT_TYPES = frozenset(kind.value for kind in OutputType)


@dataclass(frozen=True, order=True)
class LockedFile:
    """One file a locked package owns: root-relative (absolute for ``external``) and its hex sha256."""

    path: str
    sha256: str


@dataclass(frozen=True)
class LockedPackage:
    """One installed package as pinned: ``digest`` is ``sha256:HEX`` of ``archive``."""

    id: str
    version: str
    digest: str
    archive: str
    output_type: str
    files: tuple[LockedFile, ...]
    signer: str | None = None  # key id ``sha256:HEX`` of the archive's signer, None when unknown


@dataclass(frozen=True)
class Lockfile:
    """The whole lock: packages sorted by id, each package's files sorted by path."""

    packages: tuple[LockedPackage, ...]

    def by_id(self) -> dict[str, LockedPackage]:
        return {package.id: package for package in self.packages}


def build_lock(packages: Iterable[LockedPackage]) -> Lockfile:
    """A lock in canonical order.

    Raises:
        UsageError: two packages with one id, or a package listing one path twice.
    """
    ordered: dict[str, LockedPackage] = {}
    for package in packages:
        if package.id in ordered:
            raise UsageError(f"lock: package {package.id} appears twice")
        files = tuple(sorted(package.files))
        paths = [item.path for item in files]
        if len(set(paths)) != len(paths):
            raise UsageError(f"lock: {package.id} lists a file twice")
        ordered[package.id] = LockedPackage(
            id=package.id,
            version=package.version,
            digest=package.digest,
            archive=package.archive,
            output_type=package.output_type,
            files=files,
            signer=package.signer,
        )
    return Lockfile(tuple(ordered[key] for key in sorted(ordered)))


def _package_document(package: LockedPackage) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": package.id,
        "version": package.version,
        "digest": package.digest,
        "archive": package.archive,
        "output_type": package.output_type,
    }
    if package.signer is not None:
        document["signer"] = package.signer
    document["files"] = [{"path": item.path, "sha256": item.sha256} for item in package.files]
    return document


def serialise_lock(lock: Lockfile) -> bytes:
    """The lock's TOML bytes: the same lock always gives the same bytes."""
    document = {
        "schema": SCHEMA,
        "packages": [_package_document(package) for package in build_lock(lock.packages).packages],
    }
    header = (
        "# control_plane.lock: written by `cpctl lock` and by install/update/remove. Do not edit.\n"
    )
    return (header + tomli_w.dumps(document)).encode("utf-8")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(f"control_plane.lock: {message}", hint="cpctl lock rewrites it")


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    _require(isinstance(value, str) and value != "", f"{where}: {key} must be a non-empty string")
    return str(value)


def _parse_file(item: Any, where: str, *, external: bool) -> LockedFile:
    _require(isinstance(item, dict), f"{where}: each file must be a table")
    unknown = set(item) - _FILE_KEYS
    _require(not unknown, f"{where}: unknown file keys {sorted(unknown)}")
    path = _string(item, "path", where)
    sha256 = _string(item, "sha256", f"{where} {path}")
    _require(is_hex64(sha256), f"{where} {path}: sha256 must be 64 lower-case hex digits")
    # Root-relative and normalised, or (external deliveries only) absolute and without '..'.
    safe = (
        PurePosixPath(path).is_absolute() and is_registry_path(path.lstrip("/"))
        if external
        else is_registry_path(path)
    )
    _require(safe, f"{where}: unsafe path {path!r}")
    return LockedFile(path, sha256)


def _parse_package(table: Any, index: int) -> LockedPackage:
    _require(isinstance(table, dict), f"packages[{index}] must be a table")
    unknown = set(table) - _PACKAGE_KEYS
    _require(not unknown, f"packages[{index}]: unknown keys {sorted(unknown)}")
    missing = _REQUIRED_PACKAGE_KEYS - set(table)
    _require(not missing, f"packages[{index}]: missing keys {sorted(missing)}")
    package_id = _string(table, "id", f"packages[{index}]")
    _require(is_valid_id(package_id), f"{package_id!r} is not a valid package id")
    version = _string(table, "version", package_id)
    try:
        parse_version(version)
        parse_digest(_string(table, "digest", package_id))
    except UsageError as error:
        _require(False, f"{package_id}: {error}")
    output_type = _string(table, "output_type", package_id)
    _require(output_type in _OUTPUT_TYPES, f"{package_id}: unknown output_type {output_type!r}")
    signer = table.get("signer")
    _require(signer is None or isinstance(signer, str), f"{package_id}: signer must be a string")
    archive = _string(table, "archive", package_id)
    _require(
        is_registry_path(archive)
        and archive.startswith(STORE_PREFIX)
        and archive.endswith(ARCHIVE_SUFFIX),
        f"{package_id}: archive must be {STORE_PREFIX}NAME{ARCHIVE_SUFFIX}",
    )
    files = table["files"]
    _require(isinstance(files, list), f"{package_id}: files must be an array")
    external = output_type == OutputType.EXTERNAL.value
    return LockedPackage(
        id=package_id,
        version=version,
        digest=str(table["digest"]),
        archive=archive,
        output_type=output_type,
        files=tuple(_parse_file(item, package_id, external=external) for item in files),
        signer=signer,
    )


def parse_lock(data: bytes) -> Lockfile:
    """Strictly parse a lock's bytes (unknown keys, wrong types or another schema are errors).

    Raises:
        UsageError: the bytes are not a valid ``control-plane.lock/1`` document.
    """
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(
            f"control_plane.lock is not valid TOML: {error}", hint="cpctl lock rewrites it"
        ) from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise UsageError(
            "control_plane.lock is not valid TOML: nested too deeply", hint="cpctl lock rewrites it"
        ) from None
    unknown = set(document) - _TOP_KEYS
    _require(not unknown, f"unknown keys {sorted(unknown)}")
    _require(document.get("schema") == SCHEMA, f"schema must be {SCHEMA!r}")
    packages = document.get("packages", [])
    _require(isinstance(packages, list), "packages must be an array of tables")
    return build_lock(_parse_package(table, index) for index, table in enumerate(packages))


# -- drift -----------------------------------------------------------------------


class DriftKind(StrEnum):
    """The ways a root can differ from its lock."""

    FILE_MODIFIED = "file-modified"
    FILE_MISSING = "file-missing"
    REGISTRY_CHANGED = "registry-changed"
    ARCHIVE_CHANGED = "archive-changed"
    ARCHIVE_MISSING = "archive-missing"
    NOT_LOCKED = "not-locked"
    NOT_INSTALLED = "not-installed"


@dataclass(frozen=True, order=True)
class Drift:
    """One difference between the root and its lock; ``subject`` is a path or a package id."""

    package: str
    subject: str
    kind: DriftKind
    message: str

    def as_dict(self) -> dict[str, str]:
        return {
            "package": self.package,
            "kind": self.kind.value,
            "subject": self.subject,
            "message": self.message,
        }

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Observed:
    """What the root holds now, gathered by the caller.

    ``files`` and ``archives`` map a path to its hex sha256 ("" when it exists but
    cannot be read as a regular file); a path that is absent is missing.
    """

    rows: Mapping[str, PackageRow]
    files: Mapping[str, str]
    archives: Mapping[str, str]


def _row_drift(locked: LockedPackage, row: PackageRow) -> list[Drift]:
    found: list[Drift] = []
    pinned = f"{locked.version} {locked.digest}"
    offered = f"{row.version} {row.digest}"
    if str(row.version) != locked.version or not digests_equal(row.digest, locked.digest):
        found.append(
            Drift(
                locked.id,
                locked.id,
                DriftKind.REGISTRY_CHANGED,
                f"{locked.id}: the registry row now has {offered}; the lock pins {pinned}",
            )
        )
    elif row.source != locked.archive:
        found.append(
            Drift(
                locked.id,
                locked.id,
                DriftKind.REGISTRY_CHANGED,
                f"{locked.id}: the registry row now points at {row.source}; the lock pins {locked.archive}",
            )
        )
    if row.installed_digest is not None and (
        str(row.installed_version) != locked.version
        or not digests_equal(row.installed_digest, locked.digest)
    ):
        found.append(
            Drift(
                locked.id,
                locked.id,
                DriftKind.REGISTRY_CHANGED,
                f"{locked.id}: the registry records {row.installed_version} {row.installed_digest}"
                f" as installed; the lock pins {pinned}",
            )
        )
    return found


def _archive_drift(locked: LockedPackage, archives: Mapping[str, str]) -> list[Drift]:
    actual = archives.get(locked.archive)
    if actual is None:
        return [
            Drift(
                locked.id,
                locked.archive,
                DriftKind.ARCHIVE_MISSING,
                f"{locked.archive} (archive of {locked.id}) is missing from the store",
            )
        ]
    if not digests_equal(f"sha256:{actual}", locked.digest):
        return [
            Drift(
                locked.id,
                locked.archive,
                DriftKind.ARCHIVE_CHANGED,
                f"{locked.archive} no longer matches the digest the lock pins for {locked.id}",
            )
        ]
    return []


def _file_drift(locked: LockedPackage, files: Mapping[str, str]) -> list[Drift]:
    found: list[Drift] = []
    for item in locked.files:
        actual = files.get(item.path)
        if actual is None:
            found.append(
                Drift(
                    locked.id,
                    item.path,
                    DriftKind.FILE_MISSING,
                    f"{item.path} (installed by {locked.id}) is missing or not a regular file",
                )
            )
        elif not digests_equal(actual, item.sha256):
            found.append(
                Drift(
                    locked.id,
                    item.path,
                    DriftKind.FILE_MODIFIED,
                    f"{item.path} (installed by {locked.id}) was changed",
                )
            )
    return found


def compute_drift(lock: Lockfile, observed: Observed) -> tuple[Drift, ...]:
    """Every difference between ``observed`` and ``lock``, sorted by package, subject and kind.

    Locked packages that are not installed are checked for their registry row
    and archive only (``install --locked`` will need both); their files are not
    expected on disk.
    """
    found: list[Drift] = []
    locked_ids = set()
    for locked in lock.packages:
        locked_ids.add(locked.id)
        row = observed.rows.get(locked.id)
        if row is None:
            found.append(
                Drift(
                    locked.id,
                    locked.id,
                    DriftKind.NOT_INSTALLED,
                    f"{locked.id} is locked but has no registry row",
                )
            )
            continue
        found.extend(_row_drift(locked, row))
        found.extend(_archive_drift(locked, observed.archives))
        if row.installed_digest is None:
            found.append(
                Drift(
                    locked.id,
                    locked.id,
                    DriftKind.NOT_INSTALLED,
                    f"{locked.id} {locked.version} is locked but not installed",
                )
            )
        else:
            found.extend(_file_drift(locked, observed.files))
    for row in observed.rows.values():
        if row.installed_digest is not None and row.id not in locked_ids:
            found.append(
                Drift(
                    row.id,
                    row.id,
                    DriftKind.NOT_LOCKED,
                    f"{row.id} {row.installed_version} is installed but not in the lock",
                )
            )
    return tuple(sorted(found))
