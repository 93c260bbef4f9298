"""plugins export, plugins lint: the component manifest ``plugins.json``.

Declarations are read from ``plugins/**/*.py`` with ``ast`` and from each
``plugins/KEY/plugin.spec.json`` (one component per operation; ``control_plane.components``);
no component module is ever imported.  Export writes in a transaction and is ledgered;
lint only reads.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from control_plane import components as comp
from control_plane.components import Component
from control_plane.errors import UsageError
from control_plane.findings import Finding
from control_plane.fsutil import is_within
from control_plane.layout import is_reserved
from control_plane.operations.results import FindingsResult
from control_plane.operations.session import Session

EXPORT_ACTION = "plugins-export"
MAX_SOURCE_BYTES = 4 * 1024 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class PluginsExportResult(FindingsResult):
    """``cpctl plugins export``: ``status`` is written, unchanged or refused."""

    SCHEMA: ClassVar[str] = "control-plane.plugins-export/1"
    path: str
    status: str
    components: int
    sha256: str | None
    findings: tuple[Finding, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "changed": self.status == "written",
            "components": self.components,
            "sha256": self.sha256,
            "findings": self.findings_json(),
        }


@dataclass(frozen=True)
class PluginsLintResult(FindingsResult):
    """``cpctl plugins lint``: ``status`` is clean, drift, missing, malformed or invalid
    (the declarations themselves have findings)."""

    SCHEMA: ClassVar[str] = "control-plane.plugins-lint/1"
    path: str
    status: str
    components: int
    findings: tuple[Finding, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "components": self.components,
            "findings": self.findings_json(),
        }


@dataclass(frozen=True)
class Declarations:
    """What the source declares, and what is wrong with it."""

    components: tuple[Component, ...]
    findings: tuple[Finding, ...]


def _source_files(root: Path) -> tuple[list[Path], list[Finding]]:
    """Every ``*.py`` under ``plugins/``, sorted; links are not followed (a finding)."""
    base = root / comp.SOURCE_DIR
    if base.is_symlink():
        return [], [
            Finding(comp.SOURCE_DIR, "component-source", "is a symbolic link; not followed")
        ]
    if not base.is_dir():
        return [], []
    files: list[Path] = []
    findings: list[Finding] = []
    for directory, subdirs, names in os.walk(base, followlinks=False):
        here = Path(directory)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(names):
            path = here / name
            if not name.endswith(".py") or name.startswith("."):
                continue
            if path.is_symlink() or not path.is_file():
                rel = path.relative_to(root).as_posix()
                findings.append(Finding(rel, "component-source", "not a regular file; not read"))
                continue
            files.append(path)
    return sorted(files), findings


def _plugin_dirs(root: Path) -> list[Path]:
    """``plugins/KEY/`` directories holding a ``plugin.spec.json`` (links not followed)."""
    base = root / comp.SOURCE_DIR
    if base.is_symlink() or not base.is_dir():
        return []
    return sorted(
        path
        for path in base.iterdir()
        if path.is_dir() and not path.is_symlink() and os.path.lexists(path / comp.SPEC_FILE)
    )


def _small_file(path: Path, rel: str) -> tuple[bytes | None, Finding | None]:
    if path.is_symlink() or not path.is_file():
        exists = os.path.lexists(path)
        return None, Finding(
            rel, "component-source", "not a regular file; not read"
        ) if exists else None
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            return None, Finding(rel, "component-source", "larger than 4 MiB; not read")
        return path.read_bytes(), None
    except OSError as error:
        return None, Finding(rel, "component-source", f"cannot read: {error.strerror}")


def _plugin_spec(root: Path, directory: Path) -> tuple[list[Component], list[Finding]]:
    """The components a plugin's spec declares (one per operation)."""
    rel = directory.relative_to(root).as_posix()
    spec, problem = _small_file(directory / comp.SPEC_FILE, f"{rel}/{comp.SPEC_FILE}")
    if spec is None:
        return [], [problem] if problem else []
    handler, problem = _small_file(directory / comp.PLUGIN_HANDLER, f"{rel}/{comp.PLUGIN_HANDLER}")
    if problem is not None:
        return [], [problem]
    return comp.spec_components(directory.name, spec, handler)


def declarations(root: Path) -> Declarations:
    """Scan the root's component declarations (never importing them)."""
    files, findings = _source_files(root)
    found: list[Component] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            if path.stat().st_size > MAX_SOURCE_BYTES:
                findings.append(Finding(rel, "component-source", "larger than 4 MiB; not read"))
                continue
            data = path.read_bytes()
        except OSError as error:
            findings.append(Finding(rel, "component-source", f"cannot read: {error.strerror}"))
            continue
        items, problems = comp.scan_source(rel, data)
        found.extend(items)
        findings.extend(problems)
    for directory in _plugin_dirs(root):
        items, problems = _plugin_spec(root, directory)
        found.extend(items)
        findings.extend(problems)
    ordered, duplicates = comp.collect(found)
    return Declarations(tuple(ordered), tuple(sorted([*findings, *duplicates])))


def _read_manifest(path: Path, rel: str) -> bytes | None:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(f"{rel} exists and is not a regular file; remove it first")
    try:
        if path.exists() and path.stat().st_size > MAX_MANIFEST_BYTES:
            raise UsageError(f"{rel} is larger than 16 MiB")
        return path.read_bytes() if path.exists() else None
    except OSError as error:
        raise UsageError(f"cannot read {rel}: {error.strerror}") from None


def manifest_path(root: Path, path_text: str | None) -> tuple[Path, str]:
    """The manifest file (default ``plugins.json``): a ``.json`` file inside the root, taken
    relative to the working directory, outside the root's machinery.

    Raises:
        UsageError: outside the root, a machinery path, or not a ``.json`` name.
    """
    if path_text is None:
        return root / comp.MANIFEST_FILE, comp.MANIFEST_FILE
    absolute = Path(os.path.normpath(Path.cwd() / path_text))
    try:
        rel = absolute.relative_to(root).as_posix()
    except ValueError:
        raise UsageError(f"{path_text} is outside the root {root}") from None
    if rel == "." or is_reserved(rel) or not rel.endswith(".json"):
        raise UsageError(
            f"{path_text} cannot hold the component manifest: "
            "give a .json file inside the root, outside its machinery (ledger, registries, ...)"
        )
    if not is_within(absolute.parent.resolve(), root.resolve()):
        raise UsageError(f"{rel} leads outside the root {root} (through a symbolic link)")
    return absolute, rel


def export(session: Session, out: str | None = None) -> PluginsExportResult:
    """See ``GateOperations.plugins_export``."""
    root = session.layout.root
    path, rel = manifest_path(root, out)
    declared = declarations(root)
    if declared.findings:
        return PluginsExportResult(
            path=rel,
            status="refused",
            components=len(declared.components),
            sha256=None,
            findings=declared.findings,
            warnings=(*session.warnings, "fix the component declarations before exporting"),
        )
    data = comp.render_manifest(declared.components)
    sha = hashlib.sha256(data).hexdigest()
    current = _read_manifest(path, rel)
    result = PluginsExportResult(
        path=rel,
        status="unchanged",
        components=len(declared.components),
        sha256=sha,
        findings=(),
        warnings=tuple(session.warnings),
    )
    if current == data:
        return result
    digests = {"new": f"sha256:{sha}"}
    if current is not None:
        digests["old"] = f"sha256:{hashlib.sha256(current).hexdigest()}"
    txn = session.begin()
    try:
        txn.put_bytes(path, data)
        record = replace(
            session.record(
                rel, digests=digests, details={"components": len(declared.components)}, txn=txn
            ),
            action=EXPORT_ACTION,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return replace(result, status="written")


def lint(session: Session, file: str | None = None) -> PluginsLintResult:
    """See ``GateOperations.plugins_lint``."""
    root = session.layout.root
    path, rel = manifest_path(root, file)
    declared = declarations(root)
    result = PluginsLintResult(
        path=rel,
        status="clean",
        components=len(declared.components),
        findings=(),
        warnings=tuple(session.warnings),
    )
    hint = "run cpctl plugins export"
    current = _read_manifest(path, rel)
    if declared.findings:
        return replace(result, status="invalid", findings=declared.findings)
    if current is None:
        missing = Finding(rel, "manifest-missing", f"does not exist ({hint})")
        return replace(result, status="missing", findings=(missing,))
    expected = comp.render_manifest(declared.components)
    if current == expected:
        return result
    try:
        listed = comp.parse_manifest(current)
    except ValueError as error:
        bad = Finding(rel, "manifest-malformed", f"{error} ({hint})")
        return replace(result, status="malformed", findings=(bad,))
    findings = comp.compare(declared.components, listed)
    if not findings:
        findings = [Finding(rel, "manifest-format", f"not in canonical form ({hint})")]
    return replace(result, status="drift", findings=tuple(findings))
