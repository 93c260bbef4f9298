"""The component manifest (``plugins.json``): declarations found by reading source, never
by importing it.

A component is a module-level class or function decorated with a ``component(...)`` call
(``@component(...)`` or ``@anything.component(...)``) whose arguments are all keyword
literals::

    @component(type="tool", name="csv_reader", version="1.2.3",
               input="schemas/csv_reader.in.schema.json", output="schemas/csv_reader.out.schema.json",
               tags=["csv", "io"], description="Fast CSV parsing",
               deprecated={"since": "2.0.0", "replacement": "parquet_reader"})
    class CsvReader: ...

The module's source is parsed with ``ast``; nothing is executed, so a module that would
fail (or do harm) on import is still described.  Its import path is the file's
root-relative path in dotted form plus the attribute: ``plugins.csv.reader:CsvReader``.
The manifest lists components sorted by type, then name, in a canonical encoding
(sorted keys, two-space indent, UTF-8, one trailing newline) with no timestamps, so the
same declarations always give the same bytes.
"""

from __future__ import annotations

import ast
import json
import keyword
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from control_plane.errors import UsageError
from control_plane.findings import Finding
from control_plane.jsoncanon import strict_loads
from control_plane.plugin_spec import SPEC_FILE as PLUGIN_SPEC_FILE
from control_plane.plugin_spec import check_spec
from control_plane.versions import parse_version

SCHEMA = "control-plane.plugins/1"
MANIFEST_FILE = "plugins.json"
SOURCE_DIR = "plugins"
SPEC_FILE = PLUGIN_SPEC_FILE  # plugins/KEY/plugin.spec.json: one component per operation
MARKER = "component"
TYPES = ("agent", "tool", "workflow")
FIELDS = ("type", "name", "version", "input", "output", "tags", "description", "deprecated")
REQUIRED = ("type", "name", "version")
COMPONENT_KEYS = frozenset(
    {"type", "name", "import", "version", "schema", "tags", "description", "deprecated", "source"}
)
MAX_NAME_CHARS = 128


@dataclass(frozen=True)
class Deprecation:
    since: str
    replacement: str | None

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "replacement": self.replacement}


@dataclass(frozen=True)
class Component:
    """One declared component, as ``plugins.json`` lists it."""

    type: str
    name: str
    import_path: str
    version: str
    input_schema: str | None
    output_schema: str | None
    tags: tuple[str, ...]
    description: str
    deprecated: Deprecation | None
    source: str  # root-relative file that declares it

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.name)

    @property
    def label(self) -> str:
        return f"{self.type} {self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "import": self.import_path,
            "version": self.version,
            "schema": {"input": self.input_schema, "output": self.output_schema},
            "tags": list(self.tags),
            "description": self.description,
            "deprecated": None if self.deprecated is None else self.deprecated.to_json(),
            "source": self.source,
        }


def module_name(relative_path: str) -> str | None:
    """``plugins/a/b.py`` -> ``plugins.a.b`` (``__init__.py`` names its package); None when a
    part is not a Python identifier, so the module could not be imported by that name."""
    parts = relative_path.removesuffix(".py").split("/")
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(_identifier(part) for part in parts):
        return None
    return ".".join(parts)


def _identifier(text: str) -> bool:
    return text.isascii() and text.isidentifier() and not keyword.iskeyword(text)


def _marker_call(decorator: ast.expr) -> ast.Call | None:
    if not isinstance(decorator, ast.Call):
        return None
    func = decorator.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    return decorator if name == MARKER else None


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or "\n" in value:
        raise ValueError(f"{field} must be a non-empty one-line string")
    return value


def _optional_text(value: object, field: str) -> str | None:
    return None if value is None else _text(value, field)


def _component(values: dict[str, object], attribute: str, module: str, source: str) -> Component:
    """Typed component from the decorator's literal keywords; ValueError names what is wrong."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    missing = [field for field in REQUIRED if field not in values]
    if missing:
        raise ValueError(f"missing required argument(s) {', '.join(missing)}")
    kind = values["type"]
    if kind not in TYPES:
        raise ValueError(f"type must be one of {', '.join(TYPES)}, not {kind!r}")
    name = _text(values["name"], "name")
    if len(name) > MAX_NAME_CHARS or not all(
        c.isascii() and (c.isalnum() or c in "._-") for c in name
    ):
        raise ValueError(f"name {name!r} must be letters, digits, '.', '_' or '-'")
    version = _text(values["version"], "version")
    try:
        parse_version(version)
    except UsageError as error:
        raise ValueError(str(error)) from None
    tags = values.get("tags", [])
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) and t for t in tags):
        raise ValueError("tags must be a list of non-empty strings")
    description = values.get("description", "")
    if not isinstance(description, str):
        raise ValueError("description must be a string")
    return Component(
        type=str(kind),
        name=name,
        import_path=f"{module}:{attribute}",
        version=version,
        input_schema=_optional_text(values.get("input"), "input"),
        output_schema=_optional_text(values.get("output"), "output"),
        tags=tuple(sorted(set(tags))),
        description=description,
        deprecated=_deprecation(values.get("deprecated")),
        source=source,
    )


def _deprecation(value: object) -> Deprecation | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= {"since", "replacement"}:
        raise ValueError("deprecated must be None or {'since': VERSION, 'replacement': NAME}")
    since = _text(value.get("since"), "deprecated.since")
    try:
        parse_version(since)
    except UsageError as error:
        raise ValueError(f"deprecated.since: {error}") from None
    return Deprecation(since, _optional_text(value.get("replacement"), "deprecated.replacement"))


def _literal(node: ast.expr, name: str) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"{name}: arguments must be literals (the module is never run)") from None


def scan_source(relative_path: str, source: bytes) -> tuple[list[Component], list[Finding]]:
    """The components one module declares, read with ``ast`` (never imported)."""
    try:
        tree = ast.parse(source, filename=relative_path)
    except (SyntaxError, ValueError) as error:
        return [], [Finding(relative_path, "component-source", f"cannot parse: {error}")]
    except (RecursionError, MemoryError):
        return [], [Finding(relative_path, "component-source", "cannot parse: nested too deeply")]
    declared = [
        (node, call)
        for node in tree.body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        for call in map(_marker_call, node.decorator_list)
        if call is not None
    ]
    if not declared:
        return [], []
    module = module_name(relative_path)
    if module is None:
        why = "its path is not a dotted Python module name (use identifiers for every part)"
        return [], [
            Finding(relative_path, "component-import-path", f"declares components but {why}")
        ]
    components: list[Component] = []
    findings: list[Finding] = []
    for node, call in declared:
        where = f"{relative_path}:{node.lineno}"
        try:
            if not _identifier(node.name):
                raise ValueError("the attribute name must be an ASCII Python identifier")
            if call.args or any(keyword.arg is None for keyword in call.keywords):
                raise ValueError("arguments must be keywords (no positional or ** arguments)")
            values = {kw.arg: _literal(kw.value, kw.arg) for kw in call.keywords if kw.arg}
            components.append(_component(values, node.name, module, relative_path))
        except ValueError as error:
            findings.append(Finding(where, "component-declaration", f"{node.name}: {error}"))
    return components, findings


PLUGIN_HANDLER = "src/handler.py"


def _top_level_names(source: bytes) -> set[str] | None:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    names = {
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    }
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def spec_components(
    key: str, spec: bytes, handler: bytes | None
) -> tuple[list[Component], list[Finding]]:
    """One ``tool`` component per operation of ``plugins/KEY/plugin.spec.json``: named
    ``KEY.OP``, imported from the plugin's handler (``plugins.KEY.src.handler:OP``, which
    must define it), with the operation's scaffolded schemas as its I/O references."""
    base = f"{SOURCE_DIR}/{key}"
    subject = f"{base}/{SPEC_FILE}"
    try:
        parsed, findings = check_spec(spec, subject, key)
    except (RecursionError, ValueError, MemoryError):
        return [], [Finding(subject, "component-source", "cannot parse the plugin spec")]
    if parsed is None:
        return [], findings
    handler_path = f"{base}/{PLUGIN_HANDLER}"
    module = module_name(handler_path)
    defined = None if handler is None else _top_level_names(handler)
    if module is None or defined is None:
        why = "is missing or cannot be parsed" if module else "is not a Python module name"
        return [], [Finding(handler_path, "component-import-path", f"the plugin handler {why}")]
    components: list[Component] = []
    for op in parsed.operations:
        if op.id not in defined:
            message = f"operation {op.id}: the handler defines no {op.id} (run cpctl plugin build)"
            findings.append(Finding(handler_path, "component-import-path", message))
            continue
        capabilities = {item for item in parsed.capabilities if isinstance(item, str) and item}
        components.append(
            Component(
                type="tool",
                name=f"{key}.{op.id}",
                import_path=f"{module}:{op.id}",
                version=parsed.version,
                input_schema=f"{base}/schemas/{op.id}.in.schema.json",
                output_schema=f"{base}/schemas/{op.id}.out.schema.json",
                tags=tuple(sorted({f"plugin:{key}", *capabilities})),
                description=op.description or parsed.description,
                deprecated=None,
                source=subject,
            )
        )
    return components, findings


def collect(found: Iterable[Component]) -> tuple[list[Component], list[Finding]]:
    """Sorted by (type, name); a (type, name) declared twice is a finding."""
    by_key: dict[tuple[str, str], Component] = {}
    findings: list[Finding] = []
    for item in sorted(found, key=lambda c: (c.key, c.source, c.import_path)):
        first = by_key.setdefault(item.key, item)
        if first is not item:
            findings.append(
                Finding(
                    item.source,
                    "component-duplicate",
                    f"{item.label} is also declared by {first.import_path}",
                )
            )
    return [by_key[key] for key in sorted(by_key)], findings


def render_manifest(components: Sequence[Component]) -> bytes:
    """Canonical bytes of ``plugins.json`` (no timestamps: same declarations, same bytes)."""
    document = {
        "schema": SCHEMA,
        "components": [item.to_json() for item in sorted(components, key=lambda c: c.key)],
    }
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def parse_manifest(data: bytes) -> dict[tuple[str, str], dict[str, Any]]:
    """The components a ``plugins.json`` lists, keyed by (type, name).

    Raises:
        ValueError: not JSON, another schema, or not shaped like a component manifest.
    """
    try:
        document = strict_loads(data)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} document")
    if set(document) != {"schema", "components"} or not isinstance(document["components"], list):
        raise ValueError("expected exactly the members schema and components (a list)")
    listed: dict[tuple[str, str], dict[str, Any]] = {}
    for index, item in enumerate(document["components"]):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise ValueError(f"components[{index}] is not a component object with a type")
        if not isinstance(item.get("name"), str):
            raise ValueError(f"components[{index}] has no name")
        key = (item["type"], item["name"])
        if key in listed:
            raise ValueError(f"{key[0]} {key[1]} is listed twice")
        listed[key] = item
    return listed


def compare(
    expected: Sequence[Component], listed: dict[tuple[str, str], dict[str, Any]]
) -> list[Finding]:
    """Every difference between the declarations and a parsed ``plugins.json``."""
    findings: list[Finding] = []
    wanted = {item.key: item for item in expected}
    for key, item in sorted(wanted.items()):
        if key not in listed:
            findings.append(
                Finding(
                    MANIFEST_FILE,
                    "component-missing",
                    f"{item.label} ({item.import_path}) is declared but not listed",
                )
            )
            continue
        actual = listed[key]
        shown = item.to_json()
        for field in sorted(set(shown) | set(actual)):
            if shown.get(field, None) != actual.get(field, None) or (field in shown) != (
                field in actual
            ):
                findings.append(
                    Finding(
                        MANIFEST_FILE,
                        "component-changed",
                        f"{item.label}: {field} is {json.dumps(actual.get(field))}, "
                        f"the declaration says {json.dumps(shown.get(field))}",
                    )
                )
    for key in sorted(set(listed) - set(wanted)):
        findings.append(
            Finding(
                MANIFEST_FILE, "component-extra", f"{key[0]} {key[1]} is listed but not declared"
            )
        )
    return findings
