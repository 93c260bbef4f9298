"""ledger show, verify, prove, verify-proof and checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from control_plane.cli.context import command_runner, json_option


@click.group()
def ledger() -> None:
    """Read and verify the append-only ledger; prove entries to an auditor.

    \b
    Example:
      cpctl ledger verify
    """


@ledger.command()
@click.option(
    "--since", default=0, type=click.IntRange(min=0), help="First sequence number to show."
)
@json_option
@command_runner
def show(since: int, as_json: bool) -> object:
    """List ledger entries.

    \b
    Example:
      cpctl ledger show --since 10 --json
    """
    return lambda gate: gate.ledger_show(since)


@ledger.command("verify")
@click.option(
    "--against",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint saved earlier: prove the ledger still extends it.",
)
@json_option
@command_runner
def verify_ledger(against: Path | None, as_json: bool) -> object:
    """Check every entry, link, Merkle root and checkpoint signature (exit 1 names the first
    bad entry).

    \b
    Example:
      cpctl ledger verify --against saved-checkpoint.json
    """
    return lambda gate: gate.ledger_verify(against)


@ledger.command()
@click.option("--seq", type=click.IntRange(min=0), help="Inclusion proof of this entry.")
@click.option(
    "--from-size", type=click.IntRange(min=1), help="Consistency proof from this tree size."
)
@click.option(
    "--to-size",
    type=click.IntRange(min=1),
    help="Tree size to prove against (default: the newest checkpoint's).",
)
@json_option
@command_runner
def prove(seq: int | None, from_size: int | None, to_size: int | None, as_json: bool) -> object:
    """Print an RFC 9162 inclusion or consistency proof as JSON.

    \b
    Example:
      cpctl ledger prove --seq 0 > proof.json
    """
    return lambda gate: gate.ledger_prove(seq=seq, from_size=from_size, to_size=to_size)


@ledger.command()
@json_option
@command_runner
def checkpoint(as_json: bool) -> object:
    """Print the newest signed checkpoint (keep it to run verify --against later).

    \b
    Example:
      cpctl ledger checkpoint > saved-checkpoint.json
    """
    return lambda gate: gate.ledger_checkpoint()


@ledger.command("verify-proof")
@click.argument("proof", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("checkpoint_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The ledger public key (default: ledger/ledger.pub of the root).",
)
@json_option
@command_runner
def verify_proof(proof: Path, checkpoint_file: Path, key: Path | None, as_json: bool) -> object:
    """Check a saved proof against a saved signed checkpoint, offline.

    \b
    Example:
      cpctl ledger verify-proof proof.json saved-checkpoint.json --key ledger.pub
    """
    return lambda gate: gate.ledger_verify_proof(proof, checkpoint_file, key=key)


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(ledger)
