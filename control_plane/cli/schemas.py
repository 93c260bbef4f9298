"""schema: print a shipped JSON Schema, or list them."""

from __future__ import annotations

import click

from control_plane.cli.context import command_runner, json_option
from control_plane.cli.render import text
from control_plane.errors import UsageError
from control_plane.operations.results import Result
from control_plane.operations.schema_catalog import (
    SchemaDocumentResult,
    SchemaListResult,
    list_schemas,
    show_schema,
)


@click.command()
@click.argument("name", required=False)
@click.option("--list", "list_all", is_flag=True, help="List every shipped schema.")
@json_option
@command_runner
def schema(name: str | None, list_all: bool, as_json: bool) -> object:
    """Print the JSON Schema (draft 2020-12) NAME, e.g. pack, control-plane.integrity/1.

    NAME is a schema name (control-plane.NAME/N, as in the "schema" member of
    every --json output), a file name, or a short name for its newest version.

    \b
    Example:
      cpctl schema integrity > integrity.schema.json
    """

    def operation(_gate: object) -> Result:
        if list_all == (name is not None):
            raise UsageError("give either a schema NAME or --list", hint="cpctl schema --list")
        return list_schemas() if name is None else show_schema(name)

    return operation


@text.register
def _(result: SchemaListResult) -> list[str]:
    width = max((len(info.name) for info in result.schemas), default=0)
    return [f"{info.name:<{width}}  {info.title}" for info in result.schemas]


@text.register
def _(result: SchemaDocumentResult) -> list[str]:
    # The shipped file itself, so that `> file` saves exactly what the package holds.
    return [result.source.removesuffix("\n")]


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(schema)
