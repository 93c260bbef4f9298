"""cpctl plugin new / build / validate: policy and effects over ``plugins/KEY/``.

Writes (new, and build when something changes) go through one transaction and
one ledger entry (action ``update``, ``details.command`` plugin-new or
plugin-build); validate only reads and is not ledgered.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from control_plane import plugin_checks as checks
from control_plane import plugin_render as pr
from control_plane import plugin_spec as ps
from control_plane.errors import ConflictError, UsageError
from control_plane.findings import Finding
from control_plane.jsoncanon import utc_now
from control_plane.operations.results import FindingsResult, Result
from control_plane.operations.session import Session

MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PluginNewResult(Result):
    """``cpctl plugin new``: the files written for a new plugin."""

    SCHEMA: ClassVar[str] = "control-plane.plugin-new/1"
    key: str
    path: str
    operations: tuple[str, ...]
    created: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": self.path,
            "operations": list(self.operations),
            "created": list(self.created),
        }


@dataclass(frozen=True)
class PluginBuildResult(FindingsResult):
    """``cpctl plugin build``: ``status`` is written, unchanged or refused."""

    SCHEMA: ClassVar[str] = "control-plane.plugin-build/1"
    key: str
    path: str
    status: str
    changed: tuple[str, ...]
    findings: tuple[Finding, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": self.path,
            "status": self.status,
            "changed": list(self.changed),
            "findings": self.findings_json(),
        }


@dataclass(frozen=True)
class PluginValidateResult(FindingsResult):
    """``cpctl plugin validate``: every finding over the plugins checked."""

    SCHEMA: ClassVar[str] = "control-plane.plugin-validate/1"
    plugins: tuple[str, ...]
    findings: tuple[Finding, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "plugins": list(self.plugins),
            "findings": self.findings_json(),
        }


class PluginDir:
    """One plugin directory: bounded reads of regular files only (no symlinks)."""

    def __init__(self, root: Path, key: str) -> None:
        self.key = key
        self.rel = f"{ps.PLUGINS_DIR}/{key}"
        self.path = root / ps.PLUGINS_DIR / key
        self.root = root

    def read(self, rel: str) -> bytes | None:
        path = self.path / rel
        if not self._inside(path) or path.is_symlink() or not path.is_file():
            return None
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                return None
            return path.read_bytes()
        except OSError:
            return None

    def exists(self, rel: str) -> bool:
        path = self.path / rel
        return self._inside(path) and os.path.lexists(path)

    def _inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.path.resolve())
        except (ValueError, OSError):
            return False
        return True

    def src_files(self) -> tuple[dict[str, bytes], list[Finding]]:
        """Every regular file under ``src/`` (not ``__pycache__``); anything else a finding."""
        found: dict[str, bytes] = {}
        findings: list[Finding] = []
        top = self.path / ps.SRC_DIR
        if top.is_symlink():
            return {}, [Finding(f"{self.rel}/src", "src-file", "src/ is a symbolic link")]
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                rel = (Path(dirpath) / name).relative_to(self.path).as_posix()
                data = self.read(rel)
                if data is None:
                    why = "is not a readable regular file (or is too large)"
                    findings.append(Finding(f"{self.rel}/{rel}", "src-file", f"{rel} {why}"))
                else:
                    found[rel] = data
            for name in dirnames:
                if (Path(dirpath) / name).is_symlink():
                    rel = (Path(dirpath) / name).relative_to(self.path).as_posix()
                    findings.append(Finding(f"{self.rel}/{rel}", "src-file", "a symbolic link"))
        return found, findings

    def current(self) -> tuple[dict[str, bytes | None], list[Finding]]:
        src, findings = self.src_files()
        current: dict[str, bytes | None] = dict(src)
        for rel in (ps.POLICY_SNAPSHOT_FILE, ps.README_FILE, ps.HEALTHCHECK_FILE):
            current[rel] = self.read(rel)
        return current, findings


def policy_of(session: Session) -> dict[str, Any]:
    """The root's resolved ``[policy]`` (what ``policy_snapshot.json`` freezes)."""
    return dataclasses.asdict(session.config.policy)


def _plugin_dir(session: Session, key: str) -> PluginDir:
    ps.check_key(key)
    base = session.layout.root / ps.PLUGINS_DIR
    if base.is_symlink() or (base.exists() and not base.is_dir()):
        raise UsageError(f"{ps.PLUGINS_DIR} is not a real directory")
    return PluginDir(session.layout.root, key)


def new(session: Session, key: str, ops: list[str]) -> PluginNewResult:
    """See ``GateOperations.plugin_new``."""
    plugin = _plugin_dir(session, key)
    operations = ps.check_ops(ops)
    if os.path.lexists(plugin.path):
        raise ConflictError(
            f"{plugin.rel} already exists; nothing written",
            hint=f"cpctl plugin build {key}, or choose another key",
        )
    files = pr.scaffold(key, operations)
    spec, problems = ps.check_spec(files[ps.SPEC_FILE], plugin.rel, key)
    if spec is None:  # a fresh spec is valid by construction
        raise AssertionError(problems)
    current: dict[str, bytes | None] = {
        rel: data for rel, data in files.items() if rel.startswith("src/")
    }
    derived = pr.derive(
        spec,
        files[ps.SPEC_FILE],
        current=current,
        policy=policy_of(session),
        now=utc_now(),
        prefix=plugin.rel,
    )
    files.update(derived.files)
    txn = session.begin()
    try:
        for rel, data in sorted(files.items()):
            txn.put_bytes(plugin.path / rel, data)
        record = session.record(
            plugin.rel,
            details={"command": "plugin-new", "operations": list(operations), "files": len(files)},
            txn=txn,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return PluginNewResult(
        key=key,
        path=plugin.rel,
        operations=operations,
        created=tuple(f"{plugin.rel}/{rel}" for rel in sorted(files)),
        warnings=tuple(session.warnings),
    )


def existing(session: Session, key: str) -> PluginDir:
    plugin = _plugin_dir(session, key)
    if plugin.path.is_symlink() or not plugin.path.is_dir():
        raise UsageError(
            f"no plugin {key}: {plugin.rel} is not a directory", hint="cpctl plugin new"
        )
    return plugin


def _derive(session: Session, plugin: PluginDir) -> tuple[pr.Derived | None, list[Finding]]:
    subject = f"{plugin.rel}/{ps.SPEC_FILE}"
    spec_bytes = plugin.read(ps.SPEC_FILE)
    if spec_bytes is None:
        return None, [Finding(subject, "plugin-missing-baseline", f"{ps.SPEC_FILE} is missing")]
    spec, findings = ps.check_spec(spec_bytes, subject, plugin.key)
    if spec is None:
        return None, findings
    current, findings = plugin.current()
    derived = pr.derive(
        spec,
        spec_bytes,
        current=current,
        policy=policy_of(session),
        now=utc_now(),
        prefix=plugin.rel,
    )
    return derived, findings + list(derived.findings)


def build(session: Session, key: str) -> PluginBuildResult:
    """See ``GateOperations.plugin_build``."""
    plugin = existing(session, key)
    derived, findings = _derive(session, plugin)
    result = PluginBuildResult(
        key=key,
        path=plugin.rel,
        status="unchanged",
        changed=(),
        findings=(),
        warnings=tuple(session.warnings),
    )
    if derived is None or findings:
        return dataclasses.replace(result, status="refused", findings=tuple(sorted(findings)))
    changed = {rel: data for rel, data in derived.files.items() if plugin.read(rel) != data}
    if not changed:
        return result
    txn = session.begin()
    try:
        for rel, data in sorted(changed.items()):
            txn.put_bytes(plugin.path / rel, data)
        details = {"command": "plugin-build", "changed": sorted(changed)}
        session.commit(txn, session.record(plugin.rel, details=details, txn=txn))
    except BaseException:
        txn.abort()
        raise
    paths = tuple(f"{plugin.rel}/{rel}" for rel in sorted(changed))
    return dataclasses.replace(result, status="written", changed=paths)


def validate_one(session: Session, plugin: PluginDir) -> list[Finding]:
    """Every rule of ``cpctl plugin validate`` over one plugin."""
    findings: list[Finding] = []
    for rel in ps.BASELINE:
        path = plugin.path / rel.rstrip("/")
        is_dir = rel.endswith("/")
        if path.is_symlink() or not (path.is_dir() if is_dir else path.is_file()):
            what = "directory" if is_dir else "file"
            message = f"baseline {what} {rel} is missing"
            findings.append(Finding(f"{plugin.rel}/{rel}", "plugin-missing-baseline", message))
    derived, problems = _derive(session, plugin)
    findings += [f for f in problems if f.rule != "plugin-missing-baseline"]
    spec_bytes = plugin.read(ps.SPEC_FILE) or b""
    spec = ps.check_spec(spec_bytes, "", plugin.key)[0]
    for op in ps.declared_ops(spec_bytes):
        findings += checks.check_operation(op, plugin.read, plugin.rel)
    if spec is not None and derived is not None:
        findings += checks.check_derived(spec, derived, plugin.read, plugin.rel)
    src, _ = plugin.src_files()
    findings += checks.check_checksums(plugin.read, src, plugin.rel)
    findings += checks.check_readme(plugin.read, plugin.exists, plugin.key, plugin.rel)
    return sorted(set(findings))


def _has_baseline(plugin: PluginDir) -> bool:
    return any(os.path.lexists(plugin.path / rel.rstrip("/")) for rel in ps.BASELINE)


def validate(session: Session, key: str | None, every: bool) -> PluginValidateResult:
    """See ``GateOperations.plugin_validate``."""
    if (key is None) == (not every):
        raise UsageError("name one plugin KEY or pass --all (not both)")
    if key is not None:
        plugins = [existing(session, key)]
    else:
        base = session.layout.root / ps.PLUGINS_DIR
        names = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        plugins = [PluginDir(session.layout.root, name) for name in names]
        # A real directory holding none of the baseline artifacts is not a plugin: a package
        # of plain components (plugins/reading/tools.py), a __pycache__.  Symlinks are flagged.
        plugins = [p for p in plugins if p.path.is_symlink() or _has_baseline(p)]
    findings: list[Finding] = []
    for plugin in plugins:
        if ps.token_problem(plugin.key) is not None:
            message = f"{plugin.key[:60]!r} is not a valid plugin key"
            findings.append(Finding(plugin.rel, "plugin-key", message))
            continue
        if plugin.path.is_symlink():
            message = "a symbolic link: plugins must be real directories inside the root"
            findings.append(Finding(plugin.rel, "plugin-key", message))
            continue
        findings += validate_one(session, plugin)
    return PluginValidateResult(
        plugins=tuple(plugin.key for plugin in plugins),
        findings=tuple(findings),
        warnings=tuple(session.warnings),
    )
