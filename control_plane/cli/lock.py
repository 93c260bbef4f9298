"""lock and drift."""

from __future__ import annotations

import click

from control_plane.cli.context import command_runner, json_option
from control_plane.cli.render import text
from control_plane.operations.locking import DriftResult, LockResult


@click.command()
@json_option
@command_runner
def lock(as_json: bool) -> object:
    """Pin every installed package (version, digest, archive, file hashes) in control_plane.lock.

    Deterministic and ledgered; a no-op when nothing changed. Refuses (exit 4) to
    pin a state that does not match its own records. While the lock exists,
    install/update/remove refuse a drifted root (exit 4) unless --force, and
    rewrite the lock in the same transaction.

    \b
    Example:
      cpctl lock && git add control_plane.lock
    """
    return lambda gate: gate.lock()


@click.command()
@click.option(
    "--require-lock",
    is_flag=True,
    help="Exit 1 when the root has no control_plane.lock (default: exit 0 with a note).",
)
@json_option
@command_runner
def drift(require_lock: bool, as_json: bool) -> object:
    """Report how the root differs from control_plane.lock; exit 1 when it does.

    Finds installed files changed or missing, registry rows whose version or
    digest moved, archives changed or missing in the store, packages installed
    but not locked, and packages locked but not installed.

    \b
    Example:
      cpctl drift --json --require-lock
    """
    return lambda gate: gate.drift(require_lock=require_lock)


@text.register
def _(result: LockResult) -> list[str]:
    if not result.changed:
        return [f"{result.path} is current ({result.packages} packages, {result.files} files)"]
    return [f"wrote {result.path}: {result.packages} packages, {result.files} files"]


@text.register
def _(result: DriftResult) -> list[str]:
    if not result.lock_present:
        return [f"no {result.path}" + (": a lock is required" if result.lock_required else "")]
    if not result.drift:
        return [
            f"no drift: {result.packages} locked packages, {result.files_checked} files match {result.path}"
        ]
    return [
        f"{len(result.drift)} drift finding(s) against {result.path}:",
        *(f"  {item.kind.value}: {item.message}" for item in result.drift),
    ]


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(lock)
    group.add_command(drift)
