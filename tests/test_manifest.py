"""MANIFEST.json as a document: deterministic bytes, the same Merkle root as integrity-check."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from control_plane.manifest import SCHEMA, build_manifest, serialise_manifest
from control_plane.merkle import state_root
from control_plane.registry import FileRow, OutputType, PackageRow, SourceType
from control_plane.versions import parse_version

REG_CP = FileRow("REG-CP", "registries/control_plane_registry.csv", "", "system", "registry")


def file_row(path: str, digest: str, owner: str = "PKG-A") -> FileRow:
    row_id = "FILE-" + hashlib.sha256(path.encode()).hexdigest()[:16].upper()
    return FileRow(row_id, path, digest, owner, "file")


def package_row(package_id: str, version: str = "1.0.0") -> PackageRow:
    return PackageRow(
        id=package_id,
        name=package_id.lower(),
        version=parse_version(version),
        source=f"packages_store/{package_id.lower()}.tar.gz",
        source_type=SourceType.TAR,
        digest="sha256:" + "cd" * 32,
        output_type=OutputType.EXTENSION,
        output_path="",
        dependencies=(),
    )


def test_the_document_lists_hashed_files_and_packages_sorted() -> None:
    files = [file_row("b/z.md", "22" * 32), REG_CP, file_row("a.md", "11" * 32, owner="manual")]
    packages = [package_row("PKG-B", "2.0.0-rc.1"), package_row("PKG-A")]
    data = serialise_manifest(build_manifest(files, packages))
    assert data.endswith(b"\n") and not data.endswith(b"\n\n")
    document = json.loads(data)
    assert list(document) == sorted(document)
    assert document == {
        "schema": SCHEMA,
        "merkle_root": state_root([("a.md", "11" * 32), ("b/z.md", "22" * 32)]),
        "files": [
            {"owner": "manual", "path": "a.md", "sha256": "11" * 32},
            {"owner": "PKG-A", "path": "b/z.md", "sha256": "22" * 32},
        ],
        "packages": [
            {"digest": "sha256:" + "cd" * 32, "id": "PKG-A", "version": "1.0.0"},
            {"digest": "sha256:" + "cd" * 32, "id": "PKG-B", "version": "2.0.0-rc.1"},
        ],
    }


def test_an_empty_root_has_the_empty_tree_root() -> None:
    document = json.loads(serialise_manifest(build_manifest([REG_CP], [])))
    assert document["files"] == [] and document["packages"] == []
    assert document["merkle_root"] == state_root([])


def test_files_sort_by_utf8_bytes_like_the_merkle_leaves() -> None:
    # "é" (U+00E9) sorts after "z" bytewise; "Z" before "a".
    rows = [file_row(path, "33" * 32) for path in ("é.md", "z.md", "Z.md", "a.md")]
    document = json.loads(serialise_manifest(build_manifest(rows, [])))
    assert [item["path"] for item in document["files"]] == ["Z.md", "a.md", "z.md", "é.md"]


@given(st.permutations(range(6)))
def test_row_order_never_changes_the_bytes(order: list[int]) -> None:
    files = [file_row(f"dir{i % 2}/f{i}.txt", f"{i:02d}" * 32) for i in range(6)]
    packages = [package_row(f"PKG-{chr(65 + i)}") for i in range(6)]
    reference = serialise_manifest(build_manifest(files, packages))
    shuffled = serialise_manifest(
        build_manifest([files[i] for i in order], [packages[i] for i in order])
    )
    assert shuffled == reference
