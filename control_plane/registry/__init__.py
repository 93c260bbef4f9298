"""The two CSV registries as typed rows: strict parsing, deterministic writing, id rules.

``packages_registry.csv`` holds ``PackageRow``s, ``control_plane_registry.csv``
holds ``FileRow``s.  Bytes in, frozen dataclasses out; no file I/O here.
"""

from __future__ import annotations

from control_plane.registry.csvio import RegistryLimits
from control_plane.registry.ids import (
    ID_PATTERN,
    MAX_ID_CHARS,
    file_row_id,
    is_valid_id,
    normalise_id,
    validate_package_id,
)
from control_plane.registry.rows import (
    FILE_COLUMNS,
    PACKAGE_COLUMNS,
    REG_CP_ID,
    FileRow,
    OutputType,
    PackageRow,
    SourceType,
    Tier,
    format_dependencies,
    is_registry_path,
    parse_dependencies,
    parse_dependency,
)
from control_plane.registry.tables import (
    LEGACY_PACKAGE_COLUMNS,
    LEGACY_PACKAGE_HEADERS,
    Parsed,
    dump_files,
    dump_packages,
    parse_files,
    parse_packages,
)
from control_plane.versions import Dependency, Version, VersionConstraint

__all__ = [
    "FILE_COLUMNS",
    "ID_PATTERN",
    "LEGACY_PACKAGE_COLUMNS",
    "LEGACY_PACKAGE_HEADERS",
    "MAX_ID_CHARS",
    "PACKAGE_COLUMNS",
    "REG_CP_ID",
    "Dependency",
    "FileRow",
    "OutputType",
    "PackageRow",
    "Parsed",
    "RegistryLimits",
    "SourceType",
    "Tier",
    "Version",
    "VersionConstraint",
    "dump_files",
    "dump_packages",
    "file_row_id",
    "format_dependencies",
    "is_registry_path",
    "is_valid_id",
    "normalise_id",
    "parse_dependencies",
    "parse_dependency",
    "parse_files",
    "parse_packages",
    "validate_package_id",
]
