"""pack and create: put an archive into ``packages_store/`` and register it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath

from control_plane.archive import collect_sources, read_archive, source_name, write_archive
from control_plane.digests import digests_equal, format_digest, parse_sidecar, sidecar_text
from control_plane.errors import ConflictError, DigestMismatchError, UsageError
from control_plane.operations import signatures
from control_plane.operations.package_cards import packed_card
from control_plane.operations.results import CreateResult, PackResult
from control_plane.operations.session import Session
from control_plane.registry import (
    OutputType,
    PackageRow,
    SourceType,
    Tier,
    parse_dependency,
    validate_package_id,
)
from control_plane.signing import PrivateKey
from control_plane.transaction import Transaction
from control_plane.trust_policy import DEFAULT_TIER
from control_plane.versions import parse_version

ARCHIVE_SUFFIX = ".tar.gz"


def _output_type(text: str) -> OutputType:
    try:
        return OutputType(text)
    except ValueError:
        choices = ", ".join(kind.value for kind in OutputType)
        raise UsageError(f"--output-type must be one of {choices}, not {text!r}") from None


def _check_routing(session: Session, output_type: OutputType, output_path: str) -> None:
    if output_type is OutputType.EXTERNAL:
        expanded = str(Path(os.path.expandvars(output_path)).expanduser()) if output_path else ""
        if not expanded or not Path(expanded).is_absolute():
            raise UsageError(
                "--output-type external needs an absolute --output-path outside the root"
            )
        resolved = Path(expanded).resolve()
        if resolved == session.layout.root or session.layout.root in resolved.parents:
            raise UsageError(
                f"external --output-path {output_path} is inside the root; use extension or module"
            )
    elif output_path:
        pure = PurePosixPath(output_path)
        if pure.is_absolute() or ".." in pure.parts:
            raise UsageError(
                f"--output-path for {output_type.value} must be relative to its base, without '..'"
            )


def _archive_name(sources: Sequence[Path], package_id: str, name: str | None) -> str:
    if name is None:
        first = sources[0]
        name = first.stem if first.is_file() and len(sources) == 1 else first.name
        if len(sources) > 1:
            name = package_id
    if not name or "/" in name or name.startswith(".") or any(ord(ch) < 0x20 for ch in name):
        raise UsageError(f"invalid archive name {name!r}")
    return name


def _tier(chosen: Tier | None, previous: PackageRow | None) -> Tier:
    """The chosen tier, else the registered row's (re-packing keeps it), else the default."""
    if chosen is not None:
        return chosen
    return previous.tier if previous is not None else DEFAULT_TIER


def _drop_stale_archive(
    txn: Transaction,
    session: Session,
    previous: PackageRow | None,
    new_source: str,
    packages: dict[str, PackageRow],
) -> None:
    """When a package's archive name changes, its old archive leaves the store with it."""
    if previous is None or previous.source == new_source:
        return
    if any(row.source == previous.source for row in packages.values() if row.id != previous.id):
        return
    for rel in (previous.source, previous.source + ".sha256", previous.source + ".sig"):
        path = session.layout.root / rel
        if path.is_file():
            txn.delete(path)


def pack(
    session: Session,
    sources: Sequence[Path],
    package_id: str,
    *,
    version: str | None,
    output_type: str,
    output_path: str,
    depends: Sequence[str],
    name: str | None,
    force: bool,
    tier: Tier | None = None,
    signing_key: PrivateKey | None = None,
    card: str | None = None,
    card_required: str | None = None,
    skip_dirs: frozenset[str] = frozenset(),
) -> PackResult:
    """See ``GateOperations.pack``; walks leave out directories named in ``skip_dirs``, and
    ``card_required`` (a card kind) refuses sources without an identity card."""
    validate_package_id(package_id)
    if not sources:
        raise UsageError("pack needs at least one --src")
    kind = _output_type(output_type)
    _check_routing(session, kind, output_path)
    dependencies = tuple(parse_dependency(text) for text in depends)
    if any(dep.package_id == package_id for dep in dependencies):
        raise UsageError(f"{package_id} cannot depend on itself")
    packages = session.packages()
    previous = packages.get(package_id)
    if version is not None:
        semver = parse_version(version)
    elif previous is not None:
        semver = previous.version
    else:
        semver = parse_version("0.1.0")
    entries = collect_sources(session.layout.root, sources, skip_dirs=skip_dirs)
    names = [source_name(session.layout.root, source) for source in sources]
    card_id = packed_card(session, names, card, required=card_required)
    archive_name = _archive_name(sources, package_id, name) + ARCHIVE_SUFFIX
    source = f"packages_store/{archive_name}"
    for row in packages.values():
        if row.source == source and row.id != package_id and not force:
            raise ConflictError(
                f"{source} belongs to {row.id}; refusing to overwrite it",
                hint="choose another --name, or pass --force",
            )
    total = sum(entry.path.stat().st_size for entry in entries if not entry.is_dir)
    signer = None if signing_key is None else signatures.refuse_revoked_signer(session, signing_key)
    txn = session.begin()
    try:
        staged = txn.stage / archive_name
        with staged.open("wb") as out, session.progress("packing", total) as advance:
            packed = write_archive(
                entries, out, gzip_level=session.config.pack.gzip_level, progress=advance
            )
        store = session.layout.store
        txn.put(store / archive_name, staged)
        txn.put_bytes(
            store / (archive_name + ".sha256"), sidecar_text(packed.sha256, archive_name).encode()
        )
        digest = format_digest(packed.sha256)
        _stage_signature(
            txn,
            session,
            archive=store / archive_name,
            hex_sha256=packed.sha256,
            signing_key=signing_key,
            previous=previous,
        )
        row = PackageRow(
            id=package_id,
            name=archive_name.removesuffix(ARCHIVE_SUFFIX),
            version=semver,
            source=source,
            source_type=SourceType.TAR,
            digest=digest,
            output_type=kind,
            output_path=output_path,
            dependencies=dependencies,
            tier=_tier(tier, previous),
            deprecated=previous.deprecated if previous else False,
            replacement=previous.replacement if previous else "",
            card_id=card_id,
            installed_version=previous.installed_version if previous else None,
            installed_digest=previous.installed_digest if previous else None,
        )
        _drop_stale_archive(txn, session, previous, source, packages)
        packages[package_id] = row
        session.stage_registries(txn, packages=packages)
        record = session.record(
            package_id,
            digests={"archive": digest},
            details={
                "version": str(semver),
                "archive": source,
                "files": packed.files,
                "tier": row.tier.value,
                "signer": signer,
                **({"card": card_id} if card_id else {}),
            },
            txn=txn,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return PackResult(
        id=package_id,
        version=str(semver),
        archive=source,
        digest=digest,
        files=packed.files,
        content_bytes=packed.content_bytes,
        dependencies=tuple(str(dep) for dep in dependencies),
        signer=signer,
        card_id=card_id or None,
        warnings=tuple(session.warnings),
    )


def _stage_signature(
    txn: Transaction,
    session: Session,
    *,
    archive: Path,
    hex_sha256: str,
    signing_key: PrivateKey | None,
    previous: PackageRow | None,
) -> None:
    """Write ``NAME.tar.gz.sig`` when signing; drop one that no longer covers the archive."""
    sig_path = signatures.signature_path(archive)
    if signing_key is not None:
        txn.put_bytes(sig_path, signatures.signature_bytes(signing_key, hex_sha256))
        return
    unchanged = previous is not None and digests_equal(
        previous.digest.removeprefix("sha256:"), hex_sha256
    )
    if sig_path.is_file() and not unchanged:
        txn.delete(sig_path)
        session.warnings.append(
            f"removed {session.layout.relative(sig_path)}: it signed the previous archive"
        )


def store_archive_path(session: Session, archive: Path) -> Path:
    """Resolve ``archive`` to a regular ``*.tar.gz`` file directly inside ``packages_store/``.

    Raises:
        UsageError: missing, not a regular file, or outside the store (the only ingress).
    """
    candidate = archive if archive.is_absolute() else Path.cwd() / archive
    if not candidate.exists() and not archive.is_absolute():
        candidate = session.layout.root / archive
    if candidate.is_symlink():
        raise UsageError(
            f"archive {archive} is a symbolic link; the store holds regular files only"
        )
    if not candidate.exists():
        raise UsageError(f"archive {archive} does not exist")
    resolved = candidate.resolve()
    if resolved.parent != session.layout.store.resolve():
        raise UsageError(
            f"archive {archive} is not in packages_store/ (the only ingress)",
            hint="copy it into packages_store/ and run cpctl create",
        )
    if not resolved.is_file() or not resolved.name.endswith(ARCHIVE_SUFFIX):
        raise UsageError(f"archive {archive} is not a regular .tar.gz file")
    return session.layout.store / resolved.name


def check_sidecar(path: Path, hex_digest: str) -> bool:
    """Compare an archive's ``.sha256`` sidecar, when present, with its digest; True if present.

    Raises:
        DigestMismatchError: the sidecar records another digest or another file name.
        UsageError: the sidecar is unreadable or malformed.
    """
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.exists():
        return False
    try:
        recorded, file_name = parse_sidecar(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {sidecar.name}: {exc}") from exc
    if file_name.lstrip("*") != path.name or not digests_equal(recorded, hex_digest):
        raise DigestMismatchError(
            f"{sidecar.name} does not match {path.name} (sha256:{hex_digest})"
        )
    return True


def create(
    session: Session,
    archive: Path,
    package_id: str,
    *,
    version: str,
    output_type: str,
    output_path: str,
    depends: Sequence[str],
    force: bool,
    tier: Tier | None = None,
) -> CreateResult:
    """See ``GateOperations.create``."""
    validate_package_id(package_id)
    semver = parse_version(version)
    kind = _output_type(output_type)
    _check_routing(session, kind, output_path)
    dependencies = tuple(parse_dependency(text) for text in depends)
    path = store_archive_path(session, archive)
    source = session.layout.relative(path)
    packages = session.packages()
    previous = packages.get(package_id)
    if previous is not None and not force:
        raise ConflictError(
            f"{package_id} is already registered (source {previous.source})",
            hint="pass --force to replace its row",
        )
    for row in packages.values():
        if row.source == source and row.id != package_id:
            raise ConflictError(
                f"{source} is already registered as {row.id}",
                hint=f"cpctl install --id {row.id} installs it; a new package needs its own archive",
            )
    with path.open("rb") as handle, session.progress("inspecting", path.stat().st_size) as advance:
        scan = read_archive(handle, limits=session.archive_limits, progress=advance)
    sidecar_present = check_sidecar(path, scan.sha256)
    digest = format_digest(scan.sha256)
    row = PackageRow(
        id=package_id,
        name=path.name.removesuffix(ARCHIVE_SUFFIX),
        version=semver,
        source=source,
        source_type=SourceType.TAR,
        digest=digest,
        output_type=kind,
        output_path=output_path,
        dependencies=dependencies,
        tier=_tier(tier, previous),
    )
    if previous is not None:
        row = replace(
            row,
            deprecated=previous.deprecated,
            replacement=previous.replacement,
            installed_version=previous.installed_version,
            installed_digest=previous.installed_digest,
        )
    packages[package_id] = row
    txn = session.begin()
    try:
        if not sidecar_present:
            txn.put_bytes(
                path.with_name(path.name + ".sha256"), sidecar_text(scan.sha256, path.name).encode()
            )
        session.stage_registries(txn, packages=packages)
        record = session.record(
            package_id,
            digests={"archive": digest},
            details={"version": version, "archive": source, "tier": row.tier.value},
            txn=txn,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return CreateResult(
        id=package_id,
        version=str(semver),
        archive=source,
        digest=digest,
        sidecar_written=not sidecar_present,
        warnings=tuple(session.warnings),
    )
