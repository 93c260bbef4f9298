"""``MANIFEST.json``: the governed state as one deterministic, publishable document.

Built from the registries alone (what is recorded, not what is on disk:
``integrity-check`` proves the disk agrees), so it is cheap to compare and
regenerating it twice gives the same bytes.  No timestamps, keys sorted,
lists sorted, two-space indent, one trailing newline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from control_plane.merkle import state_root
from control_plane.registry import FileRow, PackageRow

SCHEMA = "control-plane.manifest/1"


@dataclass(frozen=True, order=True)
class ManifestFile:
    """One governed file with a recorded hash."""

    path: str
    sha256: str
    owner: str


@dataclass(frozen=True, order=True)
class ManifestPackage:
    """One registered package: its registered version and archive digest (``sha256:HEX``)."""

    id: str
    version: str
    digest: str


@dataclass(frozen=True)
class Manifest:
    """The manifest document: ``merkle_root`` is the installed-state root over ``files``."""

    merkle_root: str
    files: tuple[ManifestFile, ...]
    packages: tuple[ManifestPackage, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``MANIFEST.json``."""
        return {
            "schema": SCHEMA,
            "merkle_root": self.merkle_root,
            "files": [
                {"path": item.path, "sha256": item.sha256, "owner": item.owner}
                for item in self.files
            ],
            "packages": [
                {"id": item.id, "version": item.version, "digest": item.digest}
                for item in self.packages
            ],
        }


def _path_key(item: ManifestFile) -> bytes:
    # The same order as the Merkle leaves: bytewise UTF-8.
    return item.path.encode("utf-8", "surrogatepass")


def build_manifest(files: Iterable[FileRow], packages: Iterable[PackageRow]) -> Manifest:
    """The manifest of registry rows: every file row with a hash, every package row.

    Hashless rows (``REG-CP``, the control registry itself) are left out, as
    they are from the installed-state Merkle root.

    Raises:
        UsageError: a path repeats or a row's path or digest is malformed (see
            :func:`control_plane.merkle.state_root`).
    """
    hashed = sorted(
        (ManifestFile(row.path, row.sha256, row.owner) for row in files if row.sha256),
        key=_path_key,
    )
    listed = sorted(
        (ManifestPackage(row.id, str(row.version), row.digest) for row in packages),
        key=lambda item: item.id,
    )
    root = state_root((item.path, item.sha256) for item in hashed)
    return Manifest(merkle_root=root, files=tuple(hashed), packages=tuple(listed))


def serialise_manifest(manifest: Manifest) -> bytes:
    """Canonical bytes: sorted keys, two-space indent, UTF-8, trailing newline."""
    text = json.dumps(manifest.to_json(), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")
