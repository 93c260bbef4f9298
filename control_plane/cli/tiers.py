"""deprecate: trust metadata of a registered package."""

from __future__ import annotations

import click

from control_plane.cli.context import command_runner, json_option
from control_plane.cli.render import text
from control_plane.operations.deprecating import DeprecateResult


@click.command()
@click.option("--id", "package_id", required=True, help="The package to deprecate.")
@click.option("--replacement", metavar="ID", help="The registered package that replaces it.")
@click.option("--undo", is_flag=True, help="Clear the deprecation (and its replacement).")
@json_option
@command_runner
def deprecate(package_id: str, replacement: str | None, undo: bool, as_json: bool) -> object:
    """Mark a package deprecated, naming its replacement; install then refuses it (admin).

    \b
    Example:
      cpctl deprecate --id PKG-OLD-TOOL --replacement PKG-NEW-TOOL
      cpctl deprecate --id PKG-OLD-TOOL --undo
    """
    return lambda gate: gate.deprecate(package_id, replacement=replacement, undo=undo)


@text.register
def _(result: DeprecateResult) -> list[str]:
    if not result.deprecated:
        state = "is not deprecated"
    elif result.replacement:
        state = f"is deprecated; replacement {result.replacement}"
    else:
        state = "is deprecated (no replacement named)"
    return [f"{result.id} {state}" + ("" if result.changed else " (unchanged)")]


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(deprecate)
