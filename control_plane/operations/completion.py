"""Package ids for shell completion: read the registry, never fail, never authenticate.

Completion runs on every Tab press, so it is read-only, writes nothing (no
ledger entry, no lock), and answers an empty list for anything it cannot read:
a shell must never see a traceback or an error line.  It reads only the id,
name and version columns (the full row validation of ``parse_packages`` costs
a third of a second on 10,000 rows); an id that is not in the id form is not
offered, and a broken registry is for the command itself to report.
"""

from __future__ import annotations

import csv
import io

from control_plane.layout import RootLayout
from control_plane.registry import PACKAGE_COLUMNS, is_valid_id

# A registry larger than this is not read on a key press.
MAX_REGISTRY_BYTES = 32 * 1024 * 1024
# More candidates than this help nobody at a prompt.
MAX_CANDIDATES = 1000

_ID, _NAME, _VERSION = (PACKAGE_COLUMNS.index(name) for name in ("id", "name", "version"))


def package_id_candidates(root: RootLayout, prefix: str) -> list[tuple[str, str]]:
    """``(id, "name version")`` for every registered id that starts with ``prefix``.

    The prefix matches case-insensitively; ids come back sorted.  Any problem
    (not a root, unreadable or malformed registry) gives an empty list.
    """
    path = root.packages_registry
    try:
        if not root.config.is_file() or path.is_symlink():
            return []
        with path.open("rb") as handle:
            data = handle.read(MAX_REGISTRY_BYTES + 1)
        if len(data) > MAX_REGISTRY_BYTES:
            return []
        rows = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
        if tuple(next(rows, ())) != PACKAGE_COLUMNS:
            return []
        wanted = prefix.casefold()
        found = {
            row[_ID]: f"{row[_NAME]} {row[_VERSION]}"
            for row in rows
            if len(row) == len(PACKAGE_COLUMNS)
            and row[_ID].casefold().startswith(wanted)
            and is_valid_id(row[_ID])
        }
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return sorted(found.items())[:MAX_CANDIDATES]
