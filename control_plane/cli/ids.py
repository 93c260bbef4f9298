"""ids mint, ids validate, ids build-registry: identity cards."""

from __future__ import annotations

import click

from control_plane.cli.context import command_runner, json_option
from control_plane.cli.render import text
from control_plane.identity_cards import KINDS, RULE_GROUPS
from control_plane.operations.ids import IdMintResult, IdsRegistryResult, IdsValidateResult


@click.group()
def ids() -> None:
    """Identity cards: one immutable ULID card per artifact, provable from .ledger/ids.jsonl.

    \b
    Example:
      cpctl ids mint --kind plugin --path plugins/demo
    """


@ids.command()
@click.option("--kind", required=True, type=click.Choice(KINDS), help="What the artifact is.")
@click.option(
    "--path",
    required=True,
    help="The artifact (file or directory) inside the root; relative to the current "
    "directory, else to the root.",
)
@json_option
@command_runner
def mint(kind: str, path: str, as_json: bool) -> object:
    """Mint ids/cards/ULID.yaml for one artifact and record it in .ledger/ids.jsonl.

    \b
    Example:
      cpctl ids mint --kind plugin --path plugins/demo
    """
    return lambda gate: gate.ids_mint(kind, path)


@ids.command()
@click.option(
    "--only",
    type=click.Choice(sorted(RULE_GROUPS)),
    help="Run one rule group (default: all of them).",
)
@json_option
@command_runner
def validate(only: str | None, as_json: bool) -> object:
    """Check every card against the identity ledger, its structure, and uniqueness.

    Exit 1 when anything is wrong; each finding names the file and the rule.

    \b
    Example:
      cpctl ids validate --json
    """
    return lambda gate: gate.ids_validate(only or "all")


@ids.command("build-registry")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when the file would change.")
@json_option
@command_runner
def build_registry(check: bool, as_json: bool) -> object:
    """Write ids/registry.yaml from the committed cards (sorted by id; deterministic).

    \b
    Example:
      cpctl ids build-registry --check
    """
    return lambda gate: gate.ids_build_registry(check=check)


@text.register
def _(result: IdMintResult) -> list[str]:
    return [
        f"minted {result.id} ({result.kind}) for {result.path}",
        f"card: {result.card} {result.digest}",
        f"recorded: .ledger/ids.jsonl entry {result.ledger_seq}",
    ]


@text.register
def _(result: IdsValidateResult) -> list[str]:
    scope = "" if result.rules == "all" else f" ({result.rules} rules)"
    if result.ok:
        return [f"ok: {result.cards} card(s), {result.recorded} committed{scope}"]
    return [str(finding) for finding in result.findings] + [
        f"{len(result.findings)} problem(s) found{scope}"
    ]


@text.register
def _(result: IdsRegistryResult) -> list[str]:
    lines = [str(finding) for finding in result.findings]
    if result.status == "refused":
        return [*lines, f"{result.path} not built: {len(result.findings)} problem(s) found"]
    if result.status == "drift":
        return [*lines, f"{result.path} is out of date"]
    verb = "up to date" if result.status == "unchanged" else "written"
    return [*lines, f"{result.path} {verb}: {result.count} id(s)"]


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(ids)
