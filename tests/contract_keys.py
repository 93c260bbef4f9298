"""Key sets of JSON documents and of JSON Schemas, in the form tests/contract pins them.

``keys`` is the sorted top-level member list; ``nested`` maps ``NAME`` (an
object member) or ``NAME[]`` (the objects of an array member) to its sorted
member list.  Only closed objects (a fixed set of members) are pinned; open
maps such as a ledger entry's ``details`` are not.
"""

from __future__ import annotations

from typing import Any


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` and take the non-null branch of a nullable ``anyOf``."""
    if "$ref" in node:
        return _resolve(schema, schema["$defs"][node["$ref"].removeprefix("#/$defs/")])
    if "anyOf" in node:
        branches = [branch for branch in node["anyOf"] if branch.get("type") != "null"]
        if len(branches) == 1:
            return _resolve(schema, branches[0])
    return node


def _closed_members(schema: dict[str, Any], node: dict[str, Any]) -> list[str] | None:
    node = _resolve(schema, node)
    if node.get("type") == "object" and node.get("additionalProperties") is False:
        return sorted(node["properties"])
    return None


def schema_keys(schema: dict[str, Any]) -> dict[str, Any]:
    """The pinned form of a schema: its top-level properties and closed nested objects."""
    nested: dict[str, list[str]] = {}
    for key, node in schema["properties"].items():
        members = _closed_members(schema, node)
        if members is not None:
            nested[key] = members
            continue
        resolved = _resolve(schema, node)
        if resolved.get("type") == "array" and isinstance(resolved.get("items"), dict):
            members = _closed_members(schema, resolved["items"])
            if members is not None:
                nested[f"{key}[]"] = members
    return {"keys": sorted(schema["properties"]), "nested": dict(sorted(nested.items()))}


def document_keys(document: dict[str, Any]) -> dict[str, Any]:
    """The same form for a real document; nested entries only where the document shows them."""
    nested: dict[str, list[str]] = {}
    for key, value in document.items():
        if isinstance(value, dict) and value:
            nested[key] = sorted(value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            nested[f"{key}[]"] = sorted(value[0])
    return {"keys": sorted(document), "nested": dict(sorted(nested.items()))}
