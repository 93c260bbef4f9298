"""Shared plumbing for click commands: the root, the token, and error mapping."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from control_plane.cli.render import emit, emit_error, progress_factory
from control_plane.errors import ControlPlaneError
from control_plane.layout import find_root
from control_plane.operations import GateOperations
from control_plane.operations.results import Result

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Invocation:
    """Global options every command shares."""

    root_flag: str | None
    token: str | None

    def gate(self, *, as_json: bool) -> GateOperations:
        """The operations object for this invocation's root and token."""
        root = find_root(self.root_flag, os.environ.get("CONTROL_PLANE_ROOT"), Path.cwd())
        return GateOperations(root, self.token, progress=progress_factory(not as_json))


def json_option(function: F) -> F:
    """``--json``: print exactly one JSON document on stdout."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on stdout."
    )(function)


def passphrase_option(function: F) -> F:
    """``--passphrase-file F``: the private key's passphrase is F's first line."""
    return click.option(
        "--passphrase-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="File whose first line is the private key's passphrase "
        "(else CONTROL_PLANE_KEY_PASSPHRASE; none: an unencrypted key).",
    )(function)


def run(operation: Callable[[GateOperations], Result]) -> Callable[..., None]:
    """Call ``operation`` with this invocation's gate, render, and exit with the right code."""
    context = click.get_current_context()
    invocation: Invocation = context.obj
    as_json = bool(context.params.get("as_json"))
    try:
        result = operation(invocation.gate(as_json=as_json))
    except ControlPlaneError as error:
        context.exit(emit_error(error, as_json))
    context.exit(emit(result, as_json))


def command_runner(function: F) -> F:
    """Decorator: the wrapped command returns an operation, which ``run`` executes."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        run(function(*args, **kwargs))

    return wrapper  # type: ignore[return-value]
