"""Shared plumbing for click commands: the root, the token, and error mapping."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from control_plane.cli.render import emit, emit_error, progress_factory
from control_plane.errors import ControlPlaneError, UsageError
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


# Usage errors under --json -------------------------------------------------------------

JSON_FLAG = "--json"
_WANTS_JSON = "control_plane.wants_json"


def _value_count(command: click.Command | None, word: str) -> int:
    """How many following words option ``word`` of ``command`` consumes as its value."""
    if command is None or "=" in word:
        return 0
    for param in command.params:
        if isinstance(param, click.Option) and word in param.opts:
            return 0 if param.is_flag or param.count else param.nargs
    return 0


def wants_json(group: click.Group, args: Sequence[str]) -> bool:
    """Whether ``args`` hold ``--json`` as an option, walking commands as click would.

    A ``--json`` consumed as another option's value (``--reason --json``) or after ``--``
    does not count.  Any other ``--json`` does, also after an unknown command or option
    and for a command without ``--json`` (``cpctl --json``): the caller asked for JSON.
    """
    command: click.Command | None = group
    words = iter(args)
    for word in words:
        if word == "--":
            return False
        if word == JSON_FLAG:
            return True
        if word.startswith("-"):
            for _ in range(_value_count(command, word)):
                next(words, None)
        elif isinstance(command, click.Group):
            command = command.commands.get(word)
    return False


class JsonUsageError(click.UsageError):
    """A click usage error of an invocation that asked for ``--json``."""

    def show(self, file: Any = None) -> None:
        """The error document on stdout and one ``cpctl: error:`` line on stderr."""
        path = self.ctx.command_path if self.ctx is not None else "cpctl"
        message = " ".join(self.message.split())
        emit_error(UsageError(message, hint=f"{path} --help"), as_json=True)


def _as_json_usage_error(error: click.UsageError) -> JsonUsageError:
    return JsonUsageError(error.format_message(), error.ctx)


class CpctlGroup(click.Group):
    """The root group: click's usage errors print the error document under ``--json``."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """Remember whether the invocation asked for JSON before click parses ``args``."""
        as_json = parent is None and wants_json(self, args)
        try:
            context = super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            if as_json:
                raise _as_json_usage_error(error) from None
            raise
        context.meta[_WANTS_JSON] = as_json
        return context

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a usage error under ``--json`` becomes the error document."""
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            if ctx.meta.get(_WANTS_JSON) and not isinstance(error, JsonUsageError):
                raise _as_json_usage_error(error) from None
            raise
