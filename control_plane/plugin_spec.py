"""The plugin spec (``plugins/KEY/plugin.spec.json``): its model, JSON Schema and rules.

Pure: no environment, no printing.  ``check_spec`` turns any document into
``(PluginSpec | None, findings)``; it never raises on bad content.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from control_plane import __version__
from control_plane.errors import UsageError
from control_plane.findings import Finding
from control_plane.schemas import load_schema
from control_plane.versions import parse_constraint, parse_version

SPEC_SCHEMA = "control-plane.plugin-spec/1"
PLUGINS_DIR = "plugins"
SPEC_FILE = "plugin.spec.json"
MANIFEST_FILE = "manifest.json"
LEDGER_CONTRACT_FILE = "ledger_contract.json"
POLICY_SNAPSHOT_FILE = "policy_snapshot.json"
README_FILE = "README_PLUGIN.md"
HEALTHCHECK_FILE = "healthcheck.md"
SRC_DIR = "src"
TESTS_DIR = "tests"
CONFORMANCE_DIR = "conformance"
# The nine baseline artifacts every plugin holds (directories end with '/').
BASELINE = (
    SPEC_FILE,
    MANIFEST_FILE,
    LEDGER_CONTRACT_FILE,
    POLICY_SNAPSHOT_FILE,
    README_FILE,
    HEALTHCHECK_FILE,
    SRC_DIR + "/",
    TESTS_DIR + "/",
    CONFORMANCE_DIR + "/",
)
_TOKEN = re.compile(r"[a-z][a-z0-9_]{0,39}")


def token_problem(text: str) -> str | None:
    """Why ``text`` is not a plugin key or operation token, else None."""
    if _TOKEN.fullmatch(text) is None:
        return "use 1-40 of a-z, 0-9 and _, starting with a letter (it names a Python module)"
    return None


def check_key(key: str) -> str:
    """``key`` when it is a valid plugin key.

    Raises:
        UsageError: not a valid key.
    """
    problem = token_problem(key)
    if problem is not None:
        raise UsageError(f"invalid plugin key {key[:60]!r}: {problem}")
    return key


def check_ops(ops: list[str]) -> tuple[str, ...]:
    """The operation tokens, validated and unique (order kept).

    Raises:
        UsageError: an invalid or repeated token.
    """
    for op in ops:
        problem = token_problem(op)
        if problem is not None:
            raise UsageError(f"invalid operation {op[:60]!r}: {problem}")
    repeated = sorted(op for op, count in Counter(ops).items() if count > 1)
    if repeated:
        raise UsageError(f"operation given twice: {', '.join(repeated)}")
    return tuple(ops)


@dataclass(frozen=True)
class Operation:
    """One operation the plugin exposes."""

    id: str
    description: str
    events: tuple[str, ...]


@dataclass(frozen=True)
class PluginSpec:
    """A valid ``plugin.spec.json``."""

    key: str
    name: str
    version: str
    description: str
    compatibility: dict[str, str]
    capabilities: tuple[str, ...]
    allowed_actions: tuple[str, ...]
    config_schema: dict[str, Any]
    operations: tuple[Operation, ...]

    @property
    def op_ids(self) -> tuple[str, ...]:
        return tuple(op.id for op in self.operations)


def new_spec_document(key: str, ops: tuple[str, ...]) -> dict[str, Any]:
    """The spec a fresh ``cpctl plugin new`` writes."""
    return {
        "schema": SPEC_SCHEMA,
        "key": key,
        "name": key,
        "version": "0.1.0",
        "description": f"The {key} plugin.",
        "compatibility": {"control_plane": ">=0.1.0", "python": ">=3.11"},
        "capabilities": [],
        "allowed_actions": ["read"],
        "config_schema": {"type": "object", "properties": {}, "additionalProperties": False},
        "operations": [
            {"id": op, "description": f"The {op} operation.", "events": [f"{key}.{op}"]}
            for op in ops
        ],
    }


def dump_json(document: Any) -> bytes:
    """The one JSON text form of every file the plugin tools write."""
    return (json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


def check_spec(data: bytes, subject: str, key: str) -> tuple[PluginSpec | None, list[Finding]]:
    """Parse and check a spec file's bytes; ``key`` is the plugin directory's name."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return None, [Finding(subject, "spec-json", f"not valid JSON: {error}")]
    validator = Draft202012Validator(load_schema(SPEC_SCHEMA))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        return None, [
            Finding(subject, "spec-schema", f"{_where(e.absolute_path)}: {e.message}"[:300])
            for e in errors
        ]
    findings: list[Finding] = []
    if document["key"] != key:
        message = f"key {document['key']!r} differs from the directory name {key!r}"
        findings.append(Finding(subject, "spec-key", message))
    try:
        parse_version(document["version"])
    except UsageError as error:
        findings.append(Finding(subject, "spec-semver", str(error)))
    findings += compatibility_findings(document["compatibility"], subject)
    op_ids = [op["id"] for op in document["operations"]]
    for op, count in sorted(Counter(op_ids).items()):
        if count > 1:
            findings.append(Finding(subject, "spec-duplicate-op", f"operation id {op!r} x{count}"))
    events = [event for op in document["operations"] for event in op.get("events", [])]
    for event, count in sorted(Counter(events).items()):
        if count > 1:
            findings.append(Finding(subject, "spec-duplicate-event", f"event {event!r} x{count}"))
    if findings:
        return None, findings
    spec = PluginSpec(
        key=document["key"],
        name=document["name"],
        version=document["version"],
        description=document["description"],
        compatibility=dict(document["compatibility"]),
        capabilities=tuple(document["capabilities"]),
        allowed_actions=tuple(document["allowed_actions"]),
        config_schema=dict(document["config_schema"]),
        operations=tuple(
            Operation(op["id"], op.get("description", ""), tuple(op.get("events", [])))
            for op in document["operations"]
        ),
    )
    return spec, []


def compatibility_findings(ranges: dict[str, str], subject: str) -> list[Finding]:
    """Every range must parse (``>=1.2,<2``); the ``control_plane`` range must admit this
    version of cpctl, else the plugin cannot be loaded here."""
    findings: list[Finding] = []
    for name, text in sorted(ranges.items()):
        try:
            constraint = parse_constraint(text)
        except UsageError as error:
            findings.append(Finding(subject, "spec-compatibility", f"{name}: {error}"))
            continue
        if name == "control_plane" and not constraint.allows(parse_version(__version__)):
            message = f"control_plane {text} does not admit this cpctl ({__version__})"
            findings.append(Finding(subject, "spec-compatibility", message))
    return findings


def declared_ops(data: bytes) -> tuple[str, ...]:
    """The valid, distinct operation ids a spec declares, even when the spec has other
    problems (so ``validate`` still checks each operation's files)."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ()
    operations = document.get("operations") if isinstance(document, dict) else None
    if not isinstance(operations, list):
        return ()
    ids = [op.get("id") for op in operations if isinstance(op, dict)]
    valid = [op for op in ids if isinstance(op, str) and token_problem(op) is None]
    return tuple(dict.fromkeys(valid))


def _where(path: Any) -> str:
    parts = [str(part) for part in path]
    return "/" + "/".join(parts) if parts else "(document)"
