"""``cpctl completion SHELL`` and dynamic completion of package ids for every ``--id`` option."""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import CompletionItem, get_completion_class

from control_plane.layout import RootLayout, find_root
from control_plane.operations.completion import package_id_candidates

SHELLS = ("bash", "zsh", "fish")
PROG_NAME = "cpctl"
COMPLETE_VAR = "_CPCTL_COMPLETE"


class PackageIdType(click.types.StringParamType):
    """A package id: a plain string on the command line, completed from the root's registry."""

    name = "id"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        """Ids from ``packages_registry.csv`` of the root the command line names; [] on any problem."""
        try:
            flag = ctx.find_root().params.get("root_flag")
            root = find_root(flag, os.environ.get("CONTROL_PLANE_ROOT"), Path.cwd())
            candidates = package_id_candidates(RootLayout(root), incomplete)
        except Exception:  # a key press must never print an error
            return []
        return [CompletionItem(package_id, help=about) for package_id, about in candidates]


PACKAGE_ID = PackageIdType()


def complete_directories(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Let the shell complete directory names (for ``--root``)."""
    del ctx, param
    return [CompletionItem(incomplete, type="dir")]


def complete_package_ids(group: click.Group) -> None:
    """Give every ``--id`` option that names a package (parameter ``package_id``) under
    ``group``, recursively, package-id completion.

    Done once over the finished command tree, so commands that other modules
    add get it without declaring anything; ``--id`` options for other things
    (``keys generate --id NAME``) and options with their own type are left alone.
    """
    for command in group.commands.values():
        if isinstance(command, click.Group):
            complete_package_ids(command)
        for param in command.params:
            if (
                isinstance(param, click.Option)
                and "--id" in param.opts
                and param.name == "package_id"
                and isinstance(param.type, click.types.StringParamType)
            ):
                param.type = PACKAGE_ID


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(context: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    Package ids after --id complete from the root's registry.

    \b
    Example:
      cpctl completion bash > ~/.local/share/bash-completion/completions/cpctl
    """
    script_class = get_completion_class(shell)
    if script_class is None:  # pragma: no cover - click.Choice admits only known shells
        raise click.BadParameter(f"unsupported shell {shell}")
    script = script_class(context.find_root().command, {}, PROG_NAME, COMPLETE_VAR)
    click.echo(script.source())


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(completion)
