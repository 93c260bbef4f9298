"""``cpctl schema``: the shipped JSON Schemas, listed or printed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from control_plane.operations.results import DocumentResult, Result
from control_plane.schemas import (
    SchemaInfo,
    load_schema,
    resolve,
    schema_info,
    schema_names,
    schema_text,
)


@dataclass(frozen=True)
class SchemaListResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.schema-list/1"
    schemas: tuple[SchemaInfo, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "schemas": [
                {
                    "name": info.name,
                    "file": info.file,
                    "title": info.title,
                    "description": info.description,
                }
                for info in self.schemas
            ]
        }


@dataclass(frozen=True)
class SchemaDocumentResult(DocumentResult):
    """One schema, printed exactly as shipped (``source``) in either mode."""

    name: str = ""
    source: str = ""


def list_schemas() -> SchemaListResult:
    """Every shipped schema, sorted by name."""
    return SchemaListResult(schemas=tuple(schema_info(name) for name in schema_names()))


def show_schema(text: str) -> SchemaDocumentResult:
    """The schema ``text`` names (full name, file name, or short name for the newest version).

    Raises:
        UsageError: no such schema.
    """
    name = resolve(text)
    return SchemaDocumentResult(document=load_schema(name), name=name, source=schema_text(name))
