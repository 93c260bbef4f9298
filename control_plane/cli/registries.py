"""sync and validate."""

from __future__ import annotations

import click

from control_plane.cli.context import command_runner, json_option


@click.command()
@click.option("--dry-run", is_flag=True, help="Report whether the view is current; write nothing.")
@json_option
@command_runner
def sync(dry_run: bool, as_json: bool) -> object:
    """Compile the registries into registries/compiled/registry.json.

    \b
    Example:
      cpctl sync --dry-run --json
    """
    return lambda gate: gate.sync(dry_run=dry_run)


@click.command()
@json_option
@command_runner
def validate(as_json: bool) -> object:
    """Check registry schema, ids, digests, routing and dependencies (exit 1 on findings).

    \b
    Example:
      cpctl validate --json
    """
    return lambda gate: gate.validate()


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(sync)
    group.add_command(validate)
