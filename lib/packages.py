"""Re-export of archive and registry primitives."""

from control_plane.archive import collect_sources, read_archive, write_archive
from control_plane.registry import PackageRow, parse_packages

__all__ = ["PackageRow", "collect_sources", "parse_packages", "read_archive", "write_archive"]
