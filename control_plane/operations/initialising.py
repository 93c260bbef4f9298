"""init: lay out a new root, or complete an existing one, never clobbering a file."""

from __future__ import annotations

import os
from pathlib import Path

from control_plane.checkpoints import generate_key
from control_plane.config import default_config_text
from control_plane.layout import RootLayout
from control_plane.registry import FileRow, dump_files, dump_packages

REG_CP = FileRow(
    id="REG-CP",
    path="registries/control_plane_registry.csv",
    sha256="",
    owner="system",
    kind="registry",
    description="this registry itself (hashless by design)",
)


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file; False (and nothing written) when it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def initialise(layout: RootLayout) -> list[str]:
    """Create whatever of the root's skeleton is missing; return what was created."""
    created: list[str] = []
    layout.root.mkdir(parents=True, exist_ok=True)
    for directory in (layout.registries, layout.store, layout.ledger, layout.state):
        if not directory.exists():
            directory.mkdir(parents=True)
            created.append(layout.relative(directory) + "/")
    files = {
        layout.config: default_config_text().encode("utf-8"),
        layout.packages_registry: dump_packages(()),
        layout.control_registry: dump_files((REG_CP,)),
        layout.state / ".gitignore": b"# per-machine state: lock, journals, caches\n*\n",
        layout.store / ".gitkeep": b"",
        layout.ledger / ".gitkeep": b"",
    }
    for path, data in files.items():
        if _create_exclusive(path, data):
            created.append(layout.relative(path))
    return created


def create_ledger_key(layout: RootLayout) -> list[str]:
    """Create the ledger signing key pair when the root has neither half; return what was made.

    A root with only one half keeps it: a missing private key is restored by its
    operator (or named with ``CONTROL_PLANE_LEDGER_KEY``), never silently replaced.
    """
    if layout.ledger_key.exists() or layout.ledger_public_key.exists():
        return []
    generate_key(layout.ledger_key, layout.ledger_public_key)
    return [layout.relative(layout.ledger_key), layout.relative(layout.ledger_public_key)]
