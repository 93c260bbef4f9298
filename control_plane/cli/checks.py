"""integrity-check, verify, hash-update."""

from __future__ import annotations

import click

from control_plane.cli.context import command_runner, json_option


@click.command("integrity-check")
@click.option(
    "--fast",
    is_flag=True,
    help="Trust the stat cache of the last full check for files whose size, mtime, "
    "inode and ctime are unchanged (archives are always hashed).",
)
@json_option
@command_runner
def integrity_check(fast: bool, as_json: bool) -> object:
    """Hash every governed file and archive; report mismatched, missing and orphaned files.

    Also reports whether MANIFEST.json is fresh, stale (a finding) or absent.

    \b
    Example:
      cpctl integrity-check --json
    """
    return lambda gate: gate.integrity_check(fast=fast)


@click.command()
@json_option
@command_runner
def manifest(as_json: bool) -> object:
    """Regenerate MANIFEST.json from the registries (deterministic; no-op when unchanged).

    \b
    Example:
      cpctl manifest && git diff MANIFEST.json
    """
    return lambda gate: gate.manifest()


@click.command()
@click.option("--id", "package_id", help="One package (default: every installed package).")
@json_option
@command_runner
def verify(package_id: str | None, as_json: bool) -> object:
    """Check installed packages against their archives and recorded hashes.

    \b
    Example:
      cpctl verify --id PKG-FMWK-100
    """
    return lambda gate: gate.verify(package_id)


@click.command()
@json_option
@command_runner
def doctor(as_json: bool) -> object:
    """Check config, auth, keys, ledger, registries, store and files; say what to fix.

    Exit 1 when any check fails; warnings alone exit 0.

    \b
    Example:
      cpctl doctor
    """
    return lambda gate: gate.doctor()


@click.command("hash-update")
@click.option("--path", required=True, help="Root-relative path of the changed file.")
@json_option
@command_runner
def hash_update(path: str, as_json: bool) -> object:
    """Re-record a governed file's hash after an intentional change (admin).

    \b
    Example:
      cpctl hash-update --path frameworks/FMWK-100_agent_development_standard.md
    """
    return lambda gate: gate.hash_update(path)


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    for command in (integrity_check, verify, hash_update, manifest, doctor):
        group.add_command(command)
