"""Package ids for shell completion: read the registry, never fail, never authenticate.

Completion runs on every Tab press, so it is read-only, writes nothing (no
ledger entry, no lock), and answers an empty list for anything it cannot read:
a shell must never see a traceback or an error line.
"""

from __future__ import annotations

from pathlib import Path

from control_plane.layout import RootLayout
from control_plane.registry import parse_packages

# A registry larger than this is not parsed on a key press.
MAX_REGISTRY_BYTES = 32 * 1024 * 1024


def package_id_candidates(root: Path, prefix: str) -> list[tuple[str, str]]:
    """``(id, "name version")`` for every valid package row whose id starts with ``prefix``.

    The prefix matches case-insensitively; ids come back sorted.  Any problem
    (not a root, unreadable or malformed registry) gives an empty list.  The
    config is not read: a broken one is for the command itself to report.
    """
    layout = RootLayout(root)
    path = layout.packages_registry
    try:
        if (
            not layout.config.is_file()
            or path.is_symlink()
            or path.stat().st_size > MAX_REGISTRY_BYTES
        ):
            return []
        rows = parse_packages(path.read_bytes()).rows
    except Exception:  # completion must stay silent whatever the registry holds
        return []
    wanted = prefix.casefold()
    return sorted(
        (row.id, f"{row.name} {row.version}")
        for row in rows
        if row.id.casefold().startswith(wanted)
    )
