"""Bounds that keep reading an untrusted archive cheap in time, memory and disk."""

from __future__ import annotations

from dataclasses import dataclass

RATIO_GRACE_BYTES = 1 << 20
"""The compression ratio is only judged once this much has been decompressed,
so a tiny archive of highly compressible text is not refused."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Upper bounds ``read_archive`` enforces while streaming; exceeding one refuses the archive."""

    max_entries: int = 100_000
    max_total_bytes: int = 8 * 1024**3
    max_file_bytes: int = 4 * 1024**3
    max_ratio: float = 200.0
    max_name_bytes: int = 1024
    max_component_bytes: int = 255
