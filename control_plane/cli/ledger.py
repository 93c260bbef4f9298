"""ledger show and ledger verify."""

from __future__ import annotations

import click

from control_plane.cli.context import command_runner, json_option


@click.group()
def ledger() -> None:
    """Read and verify the append-only ledger."""


@ledger.command()
@click.option(
    "--since", default=0, type=click.IntRange(min=0), help="First sequence number to show."
)
@json_option
@command_runner
def show(since: int, as_json: bool) -> object:
    """List ledger entries.

    Example: cpctl ledger show --since 10 --json
    """
    return lambda gate: gate.ledger_show(since)


@ledger.command("verify")
@json_option
@command_runner
def verify_ledger(as_json: bool) -> object:
    """Check every entry's hash, encoding and chain link (exit 1 naming the first bad entry).

    Example: cpctl ledger verify
    """
    return lambda gate: gate.ledger_verify()


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(ledger)
