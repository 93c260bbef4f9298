"""Deterministic packing and safe, single-pass reading of tar.gz package archives."""

from control_plane.archive.extract import ArchiveScan, MemberRecord, read_archive
from control_plane.archive.limits import ArchiveLimits
from control_plane.archive.pack import (
    PackEntry,
    PackResult,
    collect_sources,
    source_name,
    write_archive,
)
from control_plane.archive.sink import DirectorySink, MemberSink

__all__ = [
    "ArchiveLimits",
    "ArchiveScan",
    "DirectorySink",
    "MemberRecord",
    "MemberSink",
    "PackEntry",
    "PackResult",
    "collect_sources",
    "read_archive",
    "source_name",
    "write_archive",
]
