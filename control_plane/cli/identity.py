"""whoami and token mint."""

from __future__ import annotations

import os

import click

from control_plane.cli.context import command_runner, json_option
from control_plane.operations import tokens


@click.command()
@json_option
@command_runner
def whoami(as_json: bool) -> object:
    """Show who the token identifies, the provider, the roles and the allowed actions.

    \b
    Example:
      CONTROL_PLANE_TOKEN=alice:... cpctl whoami --json
    """
    return lambda gate: gate.whoami()


@click.group()
def token() -> None:
    """Issue HMAC tokens (needs CONTROL_PLANE_SHARED_SECRET).

    \b
    Example:
      export CONTROL_PLANE_TOKEN="$(cpctl token mint alice --ttl 8h)"
    """


@token.command()
@click.argument("user")
@click.option(
    "--ttl", help="Lifetime such as 90s, 15m, 8h, 7d (default: a non-expiring classic token)."
)
@json_option
@command_runner
def mint(user: str, ttl: str | None, as_json: bool) -> object:
    """Mint a token for USER.

    \b
    Example:
      CONTROL_PLANE_SHARED_SECRET=... cpctl token mint alice --ttl 8h
    """
    return lambda _gate: tokens.mint(os.environ, user, ttl)


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(whoami)
    group.add_command(token)
