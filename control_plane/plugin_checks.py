"""The rules ``cpctl plugin validate`` adds to the spec's: baseline, operations, derived files,
checksums, AUTO regions, README links and commands.

Pure: files are read through the ``read`` callable the caller passes
(plugin-relative path -> bytes, or None when missing or not a regular file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from control_plane import plugin_render as pr
from control_plane import plugin_spec as ps
from control_plane.findings import Finding
from control_plane.plugin_render import Derived
from control_plane.plugin_spec import PluginSpec

Reader = Callable[[str], bytes | None]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`\n]+)`")
_PATHLIKE = re.compile(
    r"^[\w.\-/]+\.(?:json|py|md|yaml|yml|toml|txt|feature)$|^[\w.\-]+/[\w.\-/]*$"
)


def _json(read: Reader, rel: str, subject: str, rule: str) -> tuple[Any, list[Finding]]:
    data = read(rel)
    if data is None:
        return None, [Finding(subject, f"{rule}-missing", f"{rel} is missing")]
    try:
        return json.loads(data.decode("utf-8")), []
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return None, [Finding(subject, f"{rule}-json", f"not valid JSON: {error}")]


def check_operation(op: str, read: Reader, prefix: str) -> list[Finding]:
    """Both schemas valid, both examples present and valid against them, the test present."""
    names = pr.op_files(op)
    findings: list[Finding] = []
    schemas: dict[str, Any] = {}
    for side in ("input", "output"):
        subject = f"{prefix}/{names[side]}"
        schema, problems = _json(read, names[side], subject, "op-schema")
        findings += problems
        if problems:
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            message = f"not a valid JSON Schema: {error.message}"[:300]
            findings.append(Finding(subject, "op-schema-invalid", message))
            continue
        schemas[side] = schema
    for side, example in (("input", "request"), ("output", "response")):
        subject = f"{prefix}/{names[example]}"
        document, problems = _json(read, names[example], subject, "op-example")
        findings += problems
        if problems or side not in schemas:
            continue
        for problem in Draft202012Validator(schemas[side]).iter_errors(document):
            where = "/" + "/".join(str(part) for part in problem.absolute_path)
            message = f"violates {names[side]} at {where}: {problem.message}"[:300]
            findings.append(Finding(subject, "op-example-invalid", message))
    if read(names["test"]) is None:
        message = f"{names['test']} is missing"
        findings.append(Finding(f"{prefix}/{names['test']}", "op-test-missing", message))
    return findings


def check_derived(spec: PluginSpec, derived: Derived, read: Reader, prefix: str) -> list[Finding]:
    """Generated files equal what build would write; AUTO regions unmodified."""
    findings: list[Finding] = []
    for rel, data in sorted(derived.files.items()):
        subject = f"{prefix}/{rel}"
        if rel.startswith("src/"):
            found = derived.regions.get(rel, {})
            for name in pr.REGIONS:
                if name in found and found[name] != pr.region_body(name, spec):
                    message = f"AUTO region {name!r} was edited (cpctl plugin build restores it)"
                    findings.append(Finding(subject, "auto-region-modified", message))
        elif read(rel) != data:
            what = "is missing" if read(rel) is None else "differs from what build derives"
            message = (
                f"{what} from plugin.spec.json (generated: never hand-edit; cpctl plugin build)"
            )
            findings.append(Finding(subject, "generated-drift", message))
    return findings


def check_checksums(read: Reader, src: dict[str, bytes], prefix: str) -> list[Finding]:
    """The manifest's recorded checksums of ``src/`` against the files there now."""
    subject = f"{prefix}/{ps.MANIFEST_FILE}"
    data = read(ps.MANIFEST_FILE)
    if data is None:
        return []
    try:
        recorded = json.loads(data.decode("utf-8")).get("checksums")
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return [Finding(subject, "manifest-json", "not a JSON object")]
    if not isinstance(recorded, dict):
        return [Finding(subject, "manifest-checksum", "no checksums object")]
    findings: list[Finding] = []
    for rel in sorted(set(recorded) | set(src)):
        if rel not in src:
            findings.append(Finding(subject, "manifest-checksum", f"{rel} is recorded but gone"))
        elif rel not in recorded:
            findings.append(Finding(subject, "manifest-checksum", f"{rel} is not recorded"))
        elif recorded[rel] != pr.sha256(src[rel]):
            findings.append(Finding(subject, "manifest-checksum", f"{rel} changed since build"))
    return findings


def check_readme(
    read: Reader, exists: Callable[[str], bool], key: str, prefix: str
) -> list[Finding]:
    """Links in README_PLUGIN.md and healthcheck.md resolve; paths in commands exist."""
    findings: list[Finding] = []
    for rel in (ps.README_FILE, ps.HEALTHCHECK_FILE):
        data = read(rel)
        if data is None:
            continue
        text = data.decode("utf-8", "replace")
        subject = f"{prefix}/{rel}"
        for target in _LINK.findall(text):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            path = target.split("#", 1)[0]
            if path and not exists(path):
                findings.append(Finding(subject, "readme-link", f"link target {path} not found"))
        for command in _commands(text):
            for word in command.split()[1:]:
                inside = _root_rel(word, key)
                if _PATHLIKE.match(word) and not (exists(word) or (inside and exists(inside))):
                    message = f"command `{command}` names {word}, which does not exist"
                    findings.append(Finding(subject, "readme-command", message))
    return findings


def _root_rel(word: str, key: str) -> str | None:
    """A root-relative path under this plugin as a plugin-relative one."""
    head = f"{ps.PLUGINS_DIR}/{key}/"
    return word[len(head) :] if word.startswith(head) else None


def _commands(text: str) -> Iterable[str]:
    """Command lines: lines of fenced code blocks and inline code starting with a command."""
    inside = False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside and line.strip().startswith(("cpctl ", "python ")):
            yield line.strip()
    for code in _CODE.findall(text):
        if code.startswith(("cpctl ", "python ")):
            yield code
