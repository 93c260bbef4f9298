"""Typed registry rows, their enums, and the row-level rules of both registries.

``package_row`` and ``file_row`` turn one CSV record's fields into a frozen
row, or into findings when a field breaks a rule; ``csvio`` applies them to
whole files and adds the cross-row rules (duplicates).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from control_plane.archive.limits import ArchiveLimits
from control_plane.digests import is_hex64
from control_plane.errors import UsageError
from control_plane.findings import Finding
from control_plane.registry.ids import (
    FILE_ID_PREFIX,
    ID_PATTERN,
    ID_RULE,
    MAX_ID_CHARS,
    file_row_id,
    is_valid_id,
    normalise_id,
    shown,
    validate_package_id,
)
from control_plane.versions import Dependency, Version, parse_constraint, parse_version

# The exact headers; reading refuses any other column set or order.
PACKAGE_COLUMNS = ("id", "name", "version", "source", "source_type", "digest", "output_type",
    "output_path", "dependencies", "tier", "deprecated", "replacement", "card_id",
    "installed_version", "installed_digest")  # fmt: skip
FILE_COLUMNS = ("id", "path", "sha256", "owner", "kind", "description")
REG_CP_ID = "REG-CP"
STORE_PREFIX = "packages_store/"
ARCHIVE_SUFFIX = ".tar.gz"
_DIGEST_PREFIX = "sha256:"
# Unicode category Cc is exactly C0, DEL and C1.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_DEPENDENCY = re.compile(r" *([^<>=! ]+) *(.*?) *")
# What _relative_path_problem(normalised=True) accepts, as one regex for the fast path
# of file_row: components of anything but '/', backslash and Cc, none of them '.' or '..'.
_COMPONENT = r"(?!\.\.?(?:/|\Z))[^/\\\x00-\x1f\x7f-\x9f]+"
_CLEAN_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HEX64 = re.compile("[0-9a-f]{64}")
# A canonical ULID: 26 upper-case Crockford base32 characters, at most 7ZZZ... (128 bits).
_ULID = re.compile("[0-7][0-9A-HJKMNP-TV-Z]{25}")


class OutputType(StrEnum):
    """Where an installed package lands: the root, ``modules/``, or an absolute path outside."""

    EXTENSION = "extension"
    MODULE = "module"
    EXTERNAL = "external"


class SourceType(StrEnum):
    """The archive format of a package's source."""

    TAR = "tar"


class Tier(StrEnum):
    """How far a package is trusted; an empty CSV cell (a legacy row) means ``community``."""

    VERIFIED = "verified"
    COMMUNITY = "community"
    EXPERIMENTAL = "experimental"
    UNTRUSTED = "untrusted"


_SOURCE_TYPES = frozenset(kind.value for kind in SourceType)
_OUTPUT_TYPES = frozenset(kind.value for kind in OutputType)
_TIERS = frozenset(tier.value for tier in Tier)


@dataclass(frozen=True)
class PackageRow:
    """One row of ``packages_registry.csv``.

    ``source`` is the root-relative archive path (``packages_store/NAME.tar.gz``),
    ``digest`` is ``sha256:HEX``, ``output_path`` is ``""`` for the default
    location; ``installed_*`` are both ``None`` while the package is not installed.
    ``replacement`` is the id of the package that replaces a deprecated one, or ``""``;
    ``card_id`` is the ULID of the identity card of what was packed (``ids/cards/``), or ``""``.
    """

    id: str
    name: str
    version: Version
    source: str
    source_type: SourceType
    digest: str
    output_type: OutputType
    output_path: str
    dependencies: tuple[Dependency, ...]
    tier: Tier = Tier.COMMUNITY
    deprecated: bool = False
    replacement: str = ""
    card_id: str = ""
    installed_version: Version | None = None
    installed_digest: str | None = None


@dataclass(frozen=True)
class FileRow:
    """One row of ``control_plane_registry.csv``; ``sha256`` is ``""`` only for ``REG-CP``."""

    id: str
    path: str
    sha256: str
    owner: str
    kind: str
    description: str = ""


def parse_dependency(text: str) -> Dependency:
    """Parse ``ID`` or ``ID`` + constraints, e.g. ``PKG-A>=1.2,<2``.

    Raises:
        UsageError: an invalid id or constraint.
    """
    match = _DEPENDENCY.fullmatch(text)
    if match is None or not match.group(1):
        raise UsageError(
            f"invalid dependency {shown(text)}: expected ID or ID followed by constraints"
        )
    try:
        package_id = validate_package_id(match.group(1))
        constraint = parse_constraint(match.group(2))
    except UsageError as exc:
        raise UsageError(f"invalid dependency {shown(text)}: {exc}") from None
    return Dependency(package_id, constraint)


def parse_dependencies(text: str) -> tuple[Dependency, ...]:
    """Parse a ``;``-separated dependency list; empty text means none.

    Raises:
        UsageError: an invalid entry, an empty entry, or the same package listed twice.
    """
    if not text:
        return ()
    dependencies: list[Dependency] = []
    seen: dict[str, str] = {}
    for item in text.split(";"):
        dependency = parse_dependency(item)
        key = normalise_id(dependency.package_id)
        if key in seen:
            raise UsageError(
                f"dependency {dependency.package_id} is listed more than once"
                f" (also as {seen[key]}); combine its constraints with ','"
            )
        seen[key] = dependency.package_id
        dependencies.append(dependency)
    return tuple(dependencies)


def format_dependencies(dependencies: Iterable[Dependency]) -> str:
    """The canonical ``;``-separated text of a dependency list."""
    return ";".join(str(dependency) for dependency in dependencies)


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


_LIMITS = ArchiveLimits()


def _relative_path_problem(text: str, *, normalised: bool) -> str | None:
    if not text:
        return "is empty"
    if _has_control(text):
        return "contains control characters"
    if text.startswith("/"):
        return "must be relative"
    parts = text.split("/")
    if ".." in parts:
        return "must not contain '..'"
    if normalised and ("\\" in text or any(part in ("", ".") for part in parts)):
        return "must be normalised (no backslash, empty or '.' component, or trailing '/')"
    return _length_problem(text)


def _length_problem(path: str) -> str | None:
    """The archive member limits: a longer name is one no file system would take."""
    if len(path.encode("utf-8")) > _LIMITS.max_name_bytes:
        return f"is longer than {_LIMITS.max_name_bytes} bytes"
    if any(len(part.encode("utf-8")) > _LIMITS.max_component_bytes for part in path.split("/")):
        return f"has a component longer than {_LIMITS.max_component_bytes} bytes"
    return None


def is_registry_path(text: str) -> bool:
    """True for a relative, normalised POSIX path without ``..`` or control characters."""
    return _relative_path_problem(text, normalised=True) is None


def _source_problem(source: str) -> str | None:
    problem = _relative_path_problem(source, normalised=True)
    if problem is not None:
        return problem
    # The store is flat: packages_store/NAME.tar.gz, nothing deeper.
    name = source.removeprefix(STORE_PREFIX).removesuffix(ARCHIVE_SUFFIX)
    if f"{STORE_PREFIX}{name}{ARCHIVE_SUFFIX}" != source or not name or "/" in name:
        return f"must be {STORE_PREFIX}NAME{ARCHIVE_SUFFIX}"
    return None


def _digest_ok(text: str) -> bool:
    return text.startswith(_DIGEST_PREFIX) and is_hex64(text.removeprefix(_DIGEST_PREFIX))


class _RowCheck:
    """Collects the findings of one row under a ``file:line`` subject."""

    def __init__(self, source_name: str, line: int, row_id: str) -> None:
        self.subject = f"{source_name}:{line}"
        valid = is_valid_id(row_id)
        # Messages name the row's id when it has one worth repeating.
        self.prefix = f"{row_id}: " if valid else ""
        self.findings: list[Finding] = []
        if not valid:
            self.add("id-format", f"invalid id {shown(row_id)}: {ID_RULE}")

    def add(self, rule: str, message: str) -> None:
        self.findings.append(Finding(self.subject, rule, self.prefix + message))


def package_row(
    line: int, fields: Sequence[str], source_name: str
) -> tuple[PackageRow | None, list[Finding]]:
    """The typed row for one record's fields, or ``None`` and the findings that stop it."""
    (row_id, name, version_text, source, source_type_text, digest, output_type_text,
     output_path, dependencies_text, tier_text, deprecated_text, replacement, card_id,
     installed_version_text, installed_digest,
    ) = fields  # fmt: skip
    check = _RowCheck(source_name, line, row_id)
    version = installed_version = None
    dependencies: tuple[Dependency, ...] = ()
    try:
        version = parse_version(version_text)
    except UsageError as exc:
        check.add("version-format", str(exc))
    problem = _source_problem(source)
    if problem is not None:
        check.add("source-path", f"source {shown(source)} {problem}")
    if source_type_text not in _SOURCE_TYPES:
        check.add("source-type", f"source_type {shown(source_type_text)} is not one of: tar")
    if not _digest_ok(digest):
        check.add(
            "digest-format", f"digest {shown(digest)} is not sha256: and 64 lower-case hex digits"
        )
    if output_type_text not in _OUTPUT_TYPES:
        choices = ", ".join(kind.value for kind in OutputType)
        check.add("output-type", f"output_type {shown(output_type_text)} is not one of: {choices}")
    elif output_type_text == OutputType.EXTERNAL:
        if (
            not output_path.startswith("/")
            or ".." in output_path.split("/")
            or _has_control(output_path)
        ):
            check.add(
                "output-path",
                f"external output_path {shown(output_path)} must be absolute,"
                " without '..' or control characters",
            )
        elif (problem := _length_problem(output_path)) is not None:
            check.add("output-path", f"external output_path {shown(output_path)} {problem}")
    elif output_path:
        problem = _relative_path_problem(output_path, normalised=False)
        if problem is not None:
            check.add("output-path", f"output_path {shown(output_path)} {problem}")
    try:
        dependencies = parse_dependencies(dependencies_text)
    except UsageError as exc:
        check.add("dependencies-format", str(exc))
    if tier_text and tier_text not in _TIERS:
        check.add(
            "tier",
            f"tier {shown(tier_text)} is not one of: {', '.join(tier.value for tier in Tier)}",
        )
    _check_deprecation(check, row_id, deprecated_text, replacement)
    if card_id and _ULID.fullmatch(card_id) is None:
        check.add(
            "card-id-format", f"card_id {shown(card_id)} is not a canonical (upper-case) ULID"
        )
    if installed_version_text or installed_digest:
        try:
            installed_version = parse_version(installed_version_text)
        except UsageError:
            installed_version = None
        if installed_version is None or not _digest_ok(installed_digest):
            check.add(
                "installed-state",
                "installed_version and installed_digest must both be empty or both valid"
                f" (got {shown(installed_version_text)} and {shown(installed_digest)})",
            )
    if check.findings or version is None:
        return None, check.findings
    row = PackageRow(
        id=row_id,
        name=name,
        version=version,
        source=source,
        source_type=SourceType(source_type_text),
        digest=digest,
        output_type=OutputType(output_type_text),
        output_path=output_path,
        dependencies=dependencies,
        tier=Tier(tier_text) if tier_text else Tier.COMMUNITY,
        deprecated=deprecated_text == "true",
        replacement=replacement,
        card_id=card_id,
        installed_version=installed_version,
        installed_digest=installed_digest or None,
    )
    return row, []


def _check_deprecation(check: _RowCheck, row_id: str, deprecated: str, replacement: str) -> None:
    if deprecated not in ("", "true", "false"):
        check.add("deprecated", f"deprecated {shown(deprecated)} is not one of: true, false")
    if not replacement:
        return
    if not is_valid_id(replacement):
        check.add("replacement", f"replacement {shown(replacement)} is not a valid id: {ID_RULE}")
    elif normalise_id(replacement) == normalise_id(row_id):
        check.add("replacement", "a package cannot be its own replacement")
    elif deprecated != "true":
        check.add("replacement", f"replacement {replacement} is set but the row is not deprecated")


def _file_row_is_clean(row_id: str, path: str, sha256: str) -> bool:
    """True only when ``_file_row_checked`` would find nothing; False means "look closer"."""
    if (
        len(row_id) > MAX_ID_CHARS
        or ID_PATTERN.match(row_id) is None
        or _CLEAN_PATH.fullmatch(path) is None
    ):
        return False
    if row_id == REG_CP_ID:
        return not sha256
    if _HEX64.fullmatch(sha256) is None:
        return False
    return not row_id.startswith(FILE_ID_PREFIX) or row_id == file_row_id(path)


def file_row(
    line: int, fields: Sequence[str], source_name: str
) -> tuple[FileRow | None, list[Finding]]:
    """The typed row for one record's fields, or ``None`` and the findings that stop it."""
    row_id, path, sha256, owner, kind, description = fields
    # A registry of 100,000 well-formed rows is the common case: one cheap test proves
    # a row clean, and only the others go through the checks that word the findings.
    if _file_row_is_clean(row_id, path, sha256):
        return FileRow(row_id, path, sha256, owner, kind, description), []
    return _file_row_checked(line, fields, source_name)


def _file_row_checked(
    line: int, fields: Sequence[str], source_name: str
) -> tuple[FileRow | None, list[Finding]]:
    row_id, path, sha256, owner, kind, description = fields
    check = _RowCheck(source_name, line, row_id)
    problem = _relative_path_problem(path, normalised=True)
    if problem is not None:
        check.add("path-format", f"path {shown(path)} {problem}")
    elif row_id.startswith(FILE_ID_PREFIX) and is_valid_id(row_id) and row_id != file_row_id(path):
        check.add("id-format", f"a FILE- id must be {file_row_id(path)} for path {shown(path)}")
    if row_id == REG_CP_ID:
        if sha256:
            check.add("sha256-format", "REG-CP is hashless by design: its sha256 must be empty")
    elif not is_hex64(sha256):
        check.add("sha256-format", f"sha256 {shown(sha256)} is not 64 lower-case hex digits")
    if check.findings:
        return None, check.findings
    return FileRow(row_id, path, sha256, owner, kind, description), []


def package_fields(row: PackageRow) -> tuple[str, ...]:
    """The CSV fields of a package row, in column order."""
    installed_version = "" if row.installed_version is None else str(row.installed_version)
    return (row.id, row.name, str(row.version), row.source, row.source_type.value, row.digest,
            row.output_type.value, row.output_path, format_dependencies(row.dependencies),
            row.tier.value, "true" if row.deprecated else "false", row.replacement, row.card_id,
            installed_version, row.installed_digest or "")  # fmt: skip


def file_fields(row: FileRow) -> tuple[str, ...]:
    """The CSV fields of a control-registry row, in column order."""
    return (row.id, row.path, row.sha256, row.owner, row.kind, row.description)
