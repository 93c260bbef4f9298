"""``cpctl``: the command line.  Parse, call one operation, render, exit."""

from __future__ import annotations

import sys

import click

from control_plane import __version__
from control_plane.cli import (
    checks,
    completion,
    components,
    identity,
    ids,
    keys,
    ledger,
    lock,
    packages,
    plugin,
    registries,
    schemas,
    tiers,
    trust,
)
from control_plane.cli.context import CpctlGroup, Invocation, command_runner, json_option

WORKFLOW = """\
Control Plane: pack, install, audit. The seed workflow, from the directory to govern:
  cpctl init                                   # make this directory a root
  cpctl pack --src frameworks/FMWK-100_agent_development_standard.md --id PKG-FMWK-100 --version 1.0.0
  cpctl install --id PKG-FMWK-100              # verify, inspect, install atomically
  cpctl integrity-check                        # files vs registries, Merkle root
  cpctl ledger verify                          # every entry, link and signed checkpoint
Run 'cpctl --help' for every command, 'cpctl COMMAND --help' for one (each has an example)."""


@click.group(
    "cpctl",
    cls=CpctlGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--root",
    "root_flag",
    metavar="DIR",
    shell_complete=completion.complete_directories,
    help="The control plane root (else CONTROL_PLANE_ROOT, else the nearest ancestor with control_plane.toml).",
)
@click.option(
    "--token",
    envvar="CONTROL_PLANE_TOKEN",
    metavar="TOKEN",
    help="Auth token (else CONTROL_PLANE_TOKEN).",
)
@click.version_option(__version__, prog_name="cpctl")
@click.pass_context
def cli(context: click.Context, root_flag: str | None, token: str | None) -> None:
    """Govern a directory: verifiable archives, authenticated installs, an append-only ledger.

    \b
    Example:
      cpctl --root /srv/cp integrity-check --json
    """
    context.obj = Invocation(root_flag=root_flag, token=token)
    if context.invoked_subcommand is None:
        click.echo(WORKFLOW)


@cli.command()
@json_option
@command_runner
def init(as_json: bool) -> object:
    """Create a control plane root here (idempotent; never overwrites a file).

    \b
    Example:
      cpctl --root /srv/cp init
    """
    return lambda gate: gate.init()


for module in (
    packages,
    registries,
    checks,
    ledger,
    identity,
    keys,
    trust,
    ids,
    completion,
    lock,
    schemas,
    tiers,
    plugin,
    components,
):
    module.register(cli)
completion.complete_package_ids(cli)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="cpctl", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        click.echo("cpctl: interrupted", err=True)
        sys.exit(130)
