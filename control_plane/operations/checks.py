"""integrity-check, verify and hash-update: what is on disk against what is recorded."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from control_plane.digests import digests_equal, format_digest, parse_digest, parse_sidecar
from control_plane.errors import UsageError
from control_plane.findings import Finding
from control_plane.fsutil import atomic_write_bytes
from control_plane.hashing import hash_files
from control_plane.layout import is_reserved
from control_plane.merkle import state_root
from control_plane.operations import revoking
from control_plane.operations.hints import unknown_package
from control_plane.operations.manifesting import ManifestState, manifest_state
from control_plane.operations.results import HashUpdateResult, IntegrityResult
from control_plane.operations.session import Session
from control_plane.registry import FileRow, PackageRow, file_row_id
from control_plane.scope import DEFAULT_EXCLUDE, Scope, walk_scope
from control_plane.statcache import (
    CACHE_NAME,
    CacheEntry,
    StatCache,
    dump_statcache,
    parse_statcache,
    stat_regular_files,
)

REG_CP = "REG-CP"


def _hash(
    session: Session, paths: list[str], label: str
) -> tuple[dict[str, str], list[str], list[str]]:
    total = 0
    for rel in paths:
        try:
            total += (session.layout.root / rel).lstat().st_size
        except OSError:
            continue
    with session.progress(label, total) as advance:
        outcome = hash_files(session.layout.root, paths, progress=advance)
    return dict(outcome.digests), list(outcome.missing), list(outcome.unreadable)


@dataclass(frozen=True)
class _GovernedHashes:
    digests: dict[str, str]
    missing: list[str]
    unreadable: list[str]
    cached: int


def _load_cache(session: Session, *, announce_absent: bool) -> StatCache | None:
    path = session.layout.state / CACHE_NAME
    shown = session.layout.relative(path)
    try:
        return parse_statcache(path.read_bytes())
    except FileNotFoundError:
        if announce_absent:
            session.warnings.append(
                f"no stat cache ({shown}) yet: hashing every file; a full integrity-check writes it"
            )
    except OSError as error:
        session.warnings.append(
            f"ignoring the stat cache {shown}: {error.strerror}; hashing every file"
        )
    except UsageError as error:
        session.warnings.append(f"ignoring the stat cache {shown}: {error}; hashing every file")
    return None


def _save_cache(session: Session, cache: StatCache) -> None:
    path = session.layout.state / CACHE_NAME
    try:
        atomic_write_bytes(path, dump_statcache(cache), mode=0o600)
    except OSError as error:
        # The check itself stands; only the next --fast run loses its shortcut.
        session.warnings.append(
            f"could not write the stat cache {session.layout.relative(path)}: {error.strerror}"
        )


def _hash_governed(session: Session, paths: list[str], *, fast: bool) -> _GovernedHashes:
    """Digests of the governed files: hashed, or (``fast``) trusted from the stat cache.

    Every file is statted before it is hashed, so a change racing the hash makes
    the recorded stat stale rather than the recorded digest wrong.
    """
    taken_at_ns = time.time_ns()
    stats = stat_regular_files(session.layout.root, paths)
    previous = _load_cache(session, announce_absent=True) if fast else None
    trusted: dict[str, str] = {}
    if previous is not None:
        for path, current in stats.items():
            digest = previous.trusted_digest(path, current)
            if digest is not None:
                trusted[path] = digest
    to_hash = [path for path in paths if path not in trusted]
    total = sum(stats[path].size for path in to_hash if path in stats)
    with session.progress("checking files", total) as advance:
        outcome = hash_files(session.layout.root, to_hash, progress=advance)
    digests = {**trusted, **outcome.digests}
    rehashed = [path for path in outcome.digests if path in stats]
    # trusted is a subset of the old entries: equal sizes mean nothing to record.
    unchanged = previous is not None and not rehashed and len(trusted) == len(previous.entries)
    if not (fast and unchanged):
        entries = {path: CacheEntry.of(stats[path], digest) for path, digest in trusted.items()}
        entries.update(
            (path, CacheEntry.of(stats[path], outcome.digests[path])) for path in rehashed
        )
        _save_cache(session, StatCache(taken_at_ns, entries))
    return _GovernedHashes(
        digests, list(outcome.missing), list(outcome.unreadable), cached=len(trusted)
    )


def _store_findings(
    session: Session, packages: dict[str, PackageRow], digests: dict[str, str]
) -> tuple[list[str], list[str], list[Finding]]:
    """(mismatched, missing, findings) for every archive in the store and every package row."""
    mismatched: list[str] = []
    missing: list[str] = []
    findings: list[Finding] = []
    by_source = {row.source: row for row in packages.values()}
    for rel, actual in sorted(digests.items()):
        sidecar = session.layout.root / (rel + ".sha256")
        try:
            recorded, _ = parse_sidecar(sidecar.read_text(encoding="utf-8"))
        except FileNotFoundError:
            findings.append(Finding(rel, "sidecar-missing", f"{rel}.sha256 does not exist"))
            recorded = actual
        except (OSError, UnicodeDecodeError, UsageError) as exc:
            findings.append(Finding(rel, "sidecar-invalid", f"{rel}.sha256: {exc}"))
            recorded = actual
        row = by_source.get(rel)
        if not digests_equal(recorded, actual):
            mismatched.append(rel)
            findings.append(
                Finding(rel, "sidecar-mismatch", f"{rel} no longer matches its .sha256 sidecar")
            )
        if row is None:
            findings.append(
                Finding(rel, "archive-unregistered", f"{rel} has no row in packages_registry.csv")
            )
        elif not digests_equal(parse_digest(row.digest), actual):
            if rel not in mismatched:
                mismatched.append(rel)
            findings.append(
                Finding(
                    rel,
                    "digest-mismatch",
                    f"{rel} does not match the digest registered for {row.id}",
                )
            )
    for row in packages.values():
        if row.source not in digests:
            missing.append(row.source)
            findings.append(
                Finding(row.source, "archive-missing", f"archive of {row.id} is missing")
            )
    return mismatched, missing, findings


def integrity_check(session: Session, *, fast: bool = False) -> IntegrityResult:
    """See ``GateOperations.integrity_check``."""
    files = session.files()
    packages = session.packages()
    hashed = sorted(path for path, row in files.items() if row.sha256)
    governed = _hash_governed(session, hashed, fast=fast)
    digests, missing, unreadable = governed.digests, governed.missing, governed.unreadable
    mismatched = sorted(
        [path for path, digest in digests.items() if digest != files[path].sha256] + unreadable
    )
    store = session.layout.store
    archives = (
        sorted(
            session.layout.relative(path)
            for path in store.glob("*.tar.gz")
            if path.is_file() or path.is_symlink()
        )
        if store.is_dir()
        else []
    )
    archive_digests, _gone, archive_unreadable = _hash(session, archives, "checking archives")
    store_mismatched, store_missing, findings = _store_findings(session, packages, archive_digests)
    config = session.config.integrity
    scope = Scope(include=config.include, exclude=DEFAULT_EXCLUDE + config.exclude)
    walk = walk_scope(session.layout.root, scope)
    orphans = sorted(path for path in walk.files if path not in files)
    for path in (*walk.symlinks, *walk.special):
        if path not in files:
            findings.append(
                Finding(
                    path, "unexpected-entry", f"{path} is a symbolic link or special file in scope"
                )
            )
    findings.extend(revoking.revocation_findings(session, packages))
    manifest, why = manifest_state(session, files, packages)
    if manifest is ManifestState.STALE:
        findings.append(Finding("MANIFEST.json", "manifest-stale", why))
    root = state_root(sorted((path, digest) for path, digest in digests.items()))
    return IntegrityResult(
        merkle_root=root,
        checked=len(hashed) + len(archives),
        mismatched=tuple(sorted(mismatched + store_mismatched + archive_unreadable)),
        missing=tuple(sorted(missing + store_missing)),
        orphans=tuple(orphans),
        archives_checked=len(archives),
        findings=tuple(sorted(findings)),
        mode="fast" if fast else "full",
        cached=governed.cached,
        files_checked=len(hashed),
        manifest=manifest.value,
        warnings=tuple(session.warnings),
    )


def verify_packages(session: Session, package_id: str | None) -> IntegrityResult:
    """See ``GateOperations.verify``."""
    packages = session.packages()
    if package_id is not None and package_id not in packages:
        raise unknown_package(package_id, packages)
    chosen = {
        key: row
        for key, row in packages.items()
        if (package_id is None and row.installed_digest is not None) or key == package_id
    }
    files = {
        path: row for path, row in session.files().items() if row.owner in chosen and row.sha256
    }
    digests, missing, unreadable = _hash(session, sorted(files), "verifying files")
    mismatched = sorted(
        [path for path, digest in digests.items() if digest != files[path].sha256] + unreadable
    )
    sources = sorted(row.source for row in chosen.values())
    archive_digests, _gone, archive_unreadable = _hash(session, sources, "verifying archives")
    store_mismatched, store_missing, findings = _store_findings(session, chosen, archive_digests)
    findings = [finding for finding in findings if finding.rule != "archive-unregistered"]
    return IntegrityResult(
        merkle_root=state_root(sorted(digests.items())),
        checked=len(files) + len(sources),
        mismatched=tuple(sorted(mismatched + store_mismatched + archive_unreadable)),
        missing=tuple(sorted(missing + store_missing)),
        orphans=(),
        archives_checked=len(sources),
        findings=tuple(sorted(findings)),
        files_checked=len(files),
        warnings=tuple(session.warnings),
    )


def hash_update(session: Session, path_text: str) -> HashUpdateResult:
    """See ``GateOperations.hash_update``."""
    root = session.layout.root
    candidate = Path(path_text)
    absolute = candidate if candidate.is_absolute() else (Path.cwd() / candidate)
    if not absolute.exists() and not candidate.is_absolute():
        absolute = root / candidate
    try:
        rel = absolute.absolute().relative_to(root).as_posix()
    except ValueError:
        raise UsageError(f"{path_text} is not inside the root") from None
    if ".." in PurePosixPath(rel).parts:
        raise UsageError(f"{path_text} is not a normalised path inside the root")
    target = root / rel
    if target.is_symlink() or not target.is_file():
        raise UsageError(f"{rel} is not a regular file")
    files = session.files()
    previous = files.get(rel)
    if previous is not None and previous.id == REG_CP:
        raise UsageError("REG-CP (the control registry itself) is hashless by design")
    if is_reserved(rel) and previous is None:
        raise UsageError(f"{rel} is part of the root's machinery and is not governed by hash")
    digests, _missing, _unreadable = _hash(session, [rel], "hashing")
    if rel not in digests:
        raise UsageError(f"cannot read {rel}")
    new = digests[rel]
    if previous is not None:
        files[rel] = FileRow(
            id=previous.id,
            path=rel,
            sha256=new,
            owner=previous.owner,
            kind=previous.kind,
            description=previous.description,
        )
    else:
        files[rel] = FileRow(
            id=file_row_id(rel), path=rel, sha256=new, owner="manual", kind="file", description=""
        )
    old = None if previous is None else previous.sha256
    txn = session.begin()
    try:
        session.stage_registries(txn, files=files)
        digest_record = {"new": format_digest(new)}
        if old:
            digest_record["old"] = format_digest(old)
        session.commit(txn, session.record(rel, digests=digest_record, txn=txn))
    except BaseException:
        txn.abort()
        raise
    return HashUpdateResult(path=rel, old=old, new=new, warnings=tuple(session.warnings))
