"""integrity-check, verify, hash-update."""

from __future__ import annotations

import click

from control_plane.cli.context import command_runner, json_option


@click.command("integrity-check")
@json_option
@command_runner
def integrity_check(as_json: bool) -> object:
    """Hash every governed file and archive; report mismatched, missing and orphaned files.

    Example: cpctl integrity-check --json
    """
    return lambda gate: gate.integrity_check()


@click.command()
@click.option("--id", "package_id", help="One package (default: every installed package).")
@json_option
@command_runner
def verify(package_id: str | None, as_json: bool) -> object:
    """Check installed packages against their archives and recorded hashes.

    Example: cpctl verify --id PKG-FMWK-100
    """
    return lambda gate: gate.verify(package_id)


@click.command("hash-update")
@click.option("--path", required=True, help="Root-relative path of the changed file.")
@json_option
@command_runner
def hash_update(path: str, as_json: bool) -> object:
    """Re-record a governed file's hash after an intentional change (admin).

    Example: cpctl hash-update --path frameworks/FMWK-100_agent_development_standard.md
    """
    return lambda gate: gate.hash_update(path)


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    for command in (integrity_check, verify, hash_update):
        group.add_command(command)
