"""The JSON Schemas (draft 2020-12) of every document cpctl prints or writes, as package data.

A schema is named like the documents it describes: ``control-plane.NAME/N``
(the ``schema`` member of every ``--json`` output, MANIFEST.json, the compiled
view, checkpoints and proofs).  Formats without a ``schema`` member get a
name of the same form: ``control-plane.ledger-entry/1``,
``control-plane.package-row/2``, ``control-plane.file-row/1``.  The file of
``control-plane.NAME/N`` is ``control-plane.NAME-N.schema.json`` in this
package.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from control_plane.errors import UsageError

SUFFIX = ".schema.json"
_NAME = re.compile(r"control-plane\.([a-z0-9]+(?:-[a-z0-9]+)*)/([1-9][0-9]*)")
_FILE = re.compile(r"control-plane\.([a-z0-9]+(?:-[a-z0-9]+)*)-([1-9][0-9]*)\.schema\.json")


@dataclass(frozen=True, order=True)
class SchemaInfo:
    """One shipped schema: its name, file name, title and one-paragraph description."""

    name: str
    file: str
    title: str
    description: str


def file_name(name: str) -> str:
    """The file name of schema ``control-plane.NAME/N``: ``control-plane.NAME-N.schema.json``.

    Raises:
        UsageError: ``name`` is not of the form ``control-plane.NAME/N``.
    """
    if _NAME.fullmatch(name) is None:
        raise UsageError(f"{name!r} is not a schema name (control-plane.NAME/N)")
    return name.replace("/", "-") + SUFFIX


def _name_of(file: str) -> str | None:
    match = _FILE.fullmatch(file)
    return None if match is None else f"control-plane.{match[1]}/{match[2]}"


def schema_names() -> tuple[str, ...]:
    """Every shipped schema's name, sorted."""
    files = (entry.name for entry in resources.files(__name__).iterdir())
    return tuple(sorted(name for name in map(_name_of, files) if name is not None))


def schema_text(name: str) -> str:
    """The shipped file of schema ``name`` (exact text).

    Raises:
        UsageError: no such schema.
    """
    resource = resources.files(__name__).joinpath(file_name(name))
    if not resource.is_file():
        raise UsageError(f"no schema {name!r}", hint="cpctl schema --list")
    return resource.read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """Schema ``name`` as a JSON object.

    Raises:
        UsageError: no such schema.
    """
    document: dict[str, Any] = json.loads(schema_text(name))
    return document


def schema_info(name: str) -> SchemaInfo:
    """Name, file, title and description of schema ``name``.

    Raises:
        UsageError: no such schema.
    """
    document = load_schema(name)
    return SchemaInfo(name, file_name(name), document["title"], document["description"])


def resolve(text: str) -> str:
    """The schema a user means: a full name (``control-plane.pack/1``), a file name or stem
    (``control-plane.pack-1``), or a short name (``pack``: its newest version).

    Raises:
        UsageError: nothing shipped matches (the message lists near names).
    """
    names = schema_names()
    stem = text.removesuffix(SUFFIX)
    candidates = [text, _name_of(stem + SUFFIX) or "", f"control-plane.{text}"]
    for candidate in candidates:
        if candidate in names:
            return candidate
    short = text.removeprefix("control-plane.")
    versions = [name for name in names if name.rsplit("/", 1)[0] == f"control-plane.{short}"]
    if versions:
        return max(versions, key=lambda name: int(name.rsplit("/", 1)[1]))
    near = [name for name in names if short and short in name]
    hint = f"did you mean {', '.join(near[:5])}?" if near else "cpctl schema --list"
    raise UsageError(f"no schema named {text!r}", hint=hint)
