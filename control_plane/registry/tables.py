"""The two registries as typed rows: parse (row rules, then duplicate rules) and dump.

``csvio`` reads and writes the CSV tables; ``rows`` turns one record into a
typed row or findings.  Here whole files meet the cross-row rules: a row in a
duplicate group (by look-alike id, or by path after NFC and case folding) is
dropped with a finding for each later member.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from control_plane.errors import UsageError
from control_plane.findings import Finding
from control_plane.registry.csvio import (
    DEFAULT_LIMITS,
    RegistryLimits,
    read_records,
    write_table,
)
from control_plane.registry.ids import find_duplicates, normalise_id, shown
from control_plane.registry.rows import (
    FILE_COLUMNS,
    PACKAGE_COLUMNS,
    FileRow,
    PackageRow,
    file_fields,
    file_row,
    is_registry_path,
    package_fields,
    package_row,
)

# The header before deprecation metadata; still read (as not deprecated, no card), never written.
LEGACY_PACKAGE_COLUMNS = tuple(
    name for name in PACKAGE_COLUMNS if name not in ("deprecated", "replacement", "card_id")
)
# Every older header still read, oldest first: before deprecation metadata, then before card ids.
LEGACY_PACKAGE_HEADERS = (
    LEGACY_PACKAGE_COLUMNS,
    tuple(name for name in PACKAGE_COLUMNS if name != "card_id"),
)


def legacy_package_fields(header: Sequence[str], fields: Sequence[str]) -> tuple[str, ...]:
    """A record under an older ``header`` as fields under ``PACKAGE_COLUMNS`` (new cells empty)."""
    cells = dict(zip(header, fields, strict=True))
    return tuple(cells.get(name, "") for name in PACKAGE_COLUMNS)


RowT = TypeVar("RowT")


@dataclass(frozen=True)
class Parsed(Generic[RowT]):
    """The valid rows of a registry and the findings for the rows that were dropped."""

    rows: tuple[RowT, ...]
    findings: tuple[Finding, ...]

    def require_clean(self) -> tuple[RowT, ...]:
        """Return the rows when nothing was found.

        Raises:
            UsageError: the first finding, with the number of further findings.
        """
        if not self.findings:
            return self.rows
        more = len(self.findings) - 1
        suffix = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
        raise UsageError(f"{self.findings[0]}{suffix}")


def _bulk_keys(values: Sequence[str], key: Callable[[str], str]) -> list[str] | None:
    """``[key(value) for value in values]`` in one call of ``key``, or None when it cannot be.

    For these keys (normalisation, case folding, replacement) NUL splits text into
    independently keyed stretches: a starter that composes with nothing and maps
    to itself.  A value holding NUL (``read_table`` refuses them) means None.
    """
    if not values:
        return []
    joined = "\x00".join(values)
    if joined.count("\x00") != len(values) - 1:
        return None
    keys = key(joined).split("\x00")
    return keys if len(keys) == len(values) else None


def _duplicates(
    entries: Sequence[tuple[int, str]],
    key: Callable[[str], str],
    *,
    rule: str,
    what: str,
    source: str,
) -> tuple[set[int], list[tuple[int, Finding]]]:
    """Lines of every entry in a duplicate group, and one finding per later entry."""
    lines: set[int] = set()
    findings: list[tuple[int, Finding]] = []
    keys = _bulk_keys([value for _line, value in entries], key)
    if keys is not None and len(set(keys)) == len(keys):
        return lines, findings
    for line, value, first_line, first_value in find_duplicates(entries, key):
        lines.update((first_line, line))
        alike = (
            ""
            if value == first_value
            else " (a look-alike: equal after case and separator folding)"
        )
        message = (
            f"{what} {shown(value)} on line {line} duplicates"
            f" {shown(first_value)} on line {first_line}{alike}"
        )
        findings.append((line, Finding(f"{source}:{line}", rule, message)))
    return lines, findings


def _finish(
    built: Sequence[tuple[int, RowT | None, list[Finding]]],
    duplicate_checks: Iterable[tuple[set[int], list[tuple[int, Finding]]]],
) -> Parsed[RowT]:
    """Drop every row in a duplicate group; order findings by line."""
    dropped: set[int] = set()
    located = [(line, finding) for line, _row, findings in built for finding in findings]
    for lines, findings in duplicate_checks:
        dropped |= lines
        located.extend(findings)
    located.sort(key=lambda pair: pair[0])
    rows = tuple(row for line, row, _ in built if row is not None and line not in dropped)
    return Parsed(rows, tuple(finding for _, finding in located))


def parse_packages(
    data: bytes,
    *,
    limits: RegistryLimits = DEFAULT_LIMITS,
    source_name: str = "packages_registry.csv",
) -> Parsed[PackageRow]:
    """Parse ``packages_registry.csv`` bytes into valid rows and findings.

    A registry written with an older header (``LEGACY_PACKAGE_HEADERS``: before
    deprecation metadata, before card ids) reads with those cells empty (not
    deprecated, no card); writing always uses ``PACKAGE_COLUMNS``.

    Raises:
        UsageError: a structural problem (size, encoding, header, quoting, ragged row, limits).
    """
    records, older = read_records(
        data, PACKAGE_COLUMNS, limits=limits, source_name=source_name, legacy=LEGACY_PACKAGE_HEADERS
    )
    if older is not None:
        records = [(line, legacy_package_fields(older, fields)) for line, fields in records]
    built = [(line, *package_row(line, fields, source_name)) for line, fields in records]
    ids = [(line, fields[0]) for line, fields in records if fields[0]]
    checks = [_duplicates(ids, normalise_id, rule="id-duplicate", what="id", source=source_name)]
    return _finish(built, checks)


def _path_key(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


def parse_files(
    data: bytes,
    *,
    limits: RegistryLimits = DEFAULT_LIMITS,
    source_name: str = "control_plane_registry.csv",
) -> Parsed[FileRow]:
    """Parse ``control_plane_registry.csv`` bytes into valid rows and findings.

    Raises:
        UsageError: a structural problem (size, encoding, header, quoting, ragged row, limits).
    """
    records, _legacy = read_records(data, FILE_COLUMNS, limits=limits, source_name=source_name)
    built: list[tuple[int, FileRow | None, list[Finding]]] = []
    ids: list[tuple[int, str]] = []
    paths: list[tuple[int, str]] = []
    for line, fields in records:
        row, findings = file_row(line, fields, source_name)
        built.append((line, row, findings))
        if fields[0]:
            ids.append((line, fields[0]))
        # A row that was built has a registry path; only the others need the test.
        if row is not None or is_registry_path(fields[1]):
            paths.append((line, fields[1]))
    checks = [
        _duplicates(ids, normalise_id, rule="id-duplicate", what="id", source=source_name),
        _duplicates(paths, _path_key, rule="path-duplicate", what="path", source=source_name),
    ]
    return _finish(built, checks)


def dump_packages(rows: Iterable[PackageRow]) -> bytes:
    """``packages_registry.csv`` bytes: the header, then rows sorted by id.

    Raises:
        UsageError: a field cannot be written (NUL character, unencodable text).
    """
    ordered = sorted(rows, key=lambda row: row.id)
    return write_table(PACKAGE_COLUMNS, (package_fields(row) for row in ordered))


def dump_files(rows: Iterable[FileRow]) -> bytes:
    """``control_plane_registry.csv`` bytes: the header, then rows sorted by path.

    Raises:
        UsageError: a field cannot be written (NUL character, unencodable text).
    """
    ordered = sorted(rows, key=lambda row: row.path)
    return write_table(FILE_COLUMNS, (file_fields(row) for row in ordered))
