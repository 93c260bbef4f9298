"""Member sets of JSON documents and of JSON Schemas, in the form tests/contract pins them.

``keys`` is the sorted top-level member list (empty for a top-level array);
``nested`` maps a path to the sorted member list of the closed objects found
there: ``NAME`` (an object member), ``NAME[]`` (the objects of an array
member), ``NAME{}`` (the values of a map member) and ``[]`` (the objects of a
top-level array).  Only closed objects (a fixed set of members) are pinned;
open maps such as a ledger entry's ``details`` are not.
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


def _closed_members(schema: dict[str, Any], node: Any) -> list[str] | None:
    if not isinstance(node, dict):
        return None
    node = _resolve(schema, node)
    if node.get("type") == "object" and node.get("additionalProperties") is False:
        return sorted(node["properties"])
    return None


def schema_keys(schema: dict[str, Any]) -> dict[str, Any]:
    """The pinned form of a schema: its top-level properties and closed nested objects."""
    if schema.get("type") == "array":
        items = _closed_members(schema, schema.get("items"))
        return {"keys": [], "nested": {} if items is None else {"[]": items}}
    nested: dict[str, list[str]] = {}
    for key, node in schema["properties"].items():
        resolved = _resolve(schema, node)
        members = _closed_members(schema, node)
        if members is not None:
            nested[key] = members
        elif resolved.get("type") == "array":
            members = _closed_members(schema, resolved.get("items"))
            if members is not None:
                nested[f"{key}[]"] = members
        elif resolved.get("type") == "object":
            members = _closed_members(schema, resolved.get("additionalProperties"))
            if members is not None:
                nested[f"{key}{{}}"] = members
    return {"keys": sorted(schema["properties"]), "nested": dict(sorted(nested.items()))}


def top_keys(document: Any) -> list[str]:
    """The sorted top-level members of a document (none for a top-level array)."""
    return sorted(document) if isinstance(document, dict) else []


def nested_members(document: Any, path: str) -> list[list[str]]:
    """The sorted member list of every object at ``path`` in ``document`` (none when absent)."""
    if path == "[]":
        found = document if isinstance(document, list) else []
    elif path.endswith("[]"):
        value = document.get(path[:-2]) if isinstance(document, dict) else None
        found = value if isinstance(value, list) else []
    elif path.endswith("{}"):
        value = document.get(path[:-2]) if isinstance(document, dict) else None
        found = list(value.values()) if isinstance(value, dict) else []
    else:
        value = document.get(path) if isinstance(document, dict) else None
        found = [value] if isinstance(value, dict) else []
    return [sorted(item) for item in found if isinstance(item, dict)]
