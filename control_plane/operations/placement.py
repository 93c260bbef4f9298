"""Where a package's files go, and the checks every write into the tree passes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from control_plane.digests import sha256_file
from control_plane.errors import ConflictError, UnsafeArchiveError, UsageError
from control_plane.layout import is_reserved
from control_plane.operations.results import PackageChange
from control_plane.operations.session import Session
from control_plane.registry import OutputType, PackageRow


@dataclass
class Plan:
    """Everything one package's install, update or removal will do."""

    row: PackageRow
    base: Path
    external: bool
    status: str
    writes: list[tuple[Path, Path]] = field(default_factory=list)  # (target, staged)
    dirs: list[Path] = field(default_factory=list)
    owned: dict[str, str] = field(default_factory=dict)  # display path -> sha256 after install
    written: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    overwritten: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    signer: str | None = None

    def change(self, status: str | None = None) -> PackageChange:
        return PackageChange(
            id=self.row.id,
            version=str(self.row.version),
            digest=self.row.digest,
            output_type=self.row.output_type.value,
            destination=str(self.base),
            status=status or self.status,
            written=tuple(self.written),
            adopted=tuple(self.adopted),
            deleted=tuple(self.deleted),
            overwritten=tuple(self.overwritten),
            signer=self.signer,
        )


def destination(session: Session, row: PackageRow) -> tuple[Path, bool]:
    root = session.layout.root
    if row.output_type is OutputType.EXTERNAL:
        base = Path(os.path.expandvars(row.output_path)).expanduser()
        if not base.is_absolute():
            raise UsageError(f"{row.id}: external output_path must be absolute")
        resolved = base.resolve()
        if resolved == root or root in resolved.parents:
            raise UnsafeArchiveError(
                f"{row.id}: external output_path {row.output_path} is inside the root"
            )
        return resolved, True
    start = root if row.output_type is OutputType.EXTENSION else session.layout.modules
    return (start / row.output_path if row.output_path else start), False


class PathGuard:
    """Refuses to write through symbolic links or into the root's machinery."""

    def __init__(self, session: Session, base: Path, external: bool) -> None:
        self.root = session.layout.root
        self.base = base
        self.external = external
        self.checked: set[Path] = set()

    def display(self, target: Path) -> str:
        return str(target) if self.external else target.relative_to(self.root).as_posix()

    def check(self, target: Path) -> None:
        if not self.external:
            rel = target.relative_to(self.root).as_posix()
            if is_reserved(rel):
                raise UnsafeArchiveError(
                    f"archive member would write {rel}, which belongs to the root itself"
                )
        anchor = self.base if self.external else self.root
        for parent in reversed(target.parents):
            if parent in self.checked or not (parent == anchor or anchor in parent.parents):
                continue
            if parent.is_symlink():
                raise UnsafeArchiveError(
                    f"refusing to write through symbolic link {self.display(parent)}"
                )
            if parent.exists() and not parent.is_dir():
                raise ConflictError(
                    f"{self.display(parent)} is a file where the package needs a directory",
                    hint=f"move {self.display(parent)} away, then install again",
                )
            self.checked.add(parent)


def modified_targets(targets: dict[str, tuple[Path, str]]) -> list[str]:
    modified = []
    for shown, (target, digest) in sorted(targets.items()):
        if target.is_symlink() or (
            target.exists() and (not target.is_file() or sha256_file(target) != digest)
        ):
            modified.append(shown)
    return modified
