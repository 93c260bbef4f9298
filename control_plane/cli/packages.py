"""pack, create, install, update, remove."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from control_plane.cli.context import command_runner, json_option, passphrase_option
from control_plane.trust_policy import Allowances

OUTPUT_TYPES = click.Choice(["extension", "module", "external"])
TIERS = click.Choice(["verified", "community", "experimental", "untrusted"])
tier_option = click.option(
    "--tier",
    type=TIERS,
    help="Trust tier (default: the registered one, else community; verified/community need admin).",
)

sign_option = click.option(
    "--sign",
    "sign_key",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="KEYFILE",
    help="Also write NAME.tar.gz.sig, signed with this PEM private key.",
)


def allow_options(command: Callable[..., object]) -> Callable[..., object]:
    """``--allow-experimental``, ``--allow-deprecated``, ``--allow-downgrade`` (admin only)."""
    for flag, what in (
        ("--allow-downgrade", "a version lower than the installed one"),
        ("--allow-deprecated", "deprecated packages"),
        ("--allow-experimental", "experimental packages"),
    ):
        command = click.option(flag, is_flag=True, help=f"Admin: allow {what}.")(command)
    return command


def _allowances(experimental: bool, deprecated: bool, downgrade: bool) -> Allowances:
    return Allowances(experimental=experimental, deprecated=deprecated, downgrade=downgrade)


@click.command()
@click.option(
    "--src",
    "sources",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="File or directory under the root (repeatable).",
)
@click.option("--id", "package_id", required=True, help="Package id, e.g. PKG-FMWK-100.")
@click.option("--version", help="Semantic version (default: the registered one, else 0.1.0).")
@click.option(
    "--output-type",
    default="extension",
    type=OUTPUT_TYPES,
    show_default=True,
    help="Where install puts the files.",
)
@click.option(
    "--output-path",
    default="",
    help="Base below the output type's location; absolute for external.",
)
@click.option("--depends", multiple=True, metavar="ID>=X.Y", help="A dependency (repeatable).")
@click.option("--name", help="Archive name without .tar.gz (default: from the first --src).")
@click.option("--force", is_flag=True, help="Overwrite an archive registered to another package.")
@tier_option
@sign_option
@passphrase_option
@click.option(
    "--card",
    metavar="ULID",
    help="The identity card the package carries (default: the card of a --src, if any).",
)
@json_option
@command_runner
def pack(
    sources: tuple[Path, ...],
    package_id: str,
    version: str | None,
    output_type: str,
    output_path: str,
    depends: tuple[str, ...],
    name: str | None,
    force: bool,
    tier: str | None,
    sign_key: Path | None,
    passphrase_file: Path | None,
    card: str | None,
    as_json: bool,
) -> object:
    """Pack files into a deterministic packages_store/NAME.tar.gz and register it.

    \b
    Example:
      cpctl pack --src frameworks/FMWK-100_agent_development_standard.md --id PKG-FMWK-100 --version 1.0.0
    """
    return lambda gate: gate.pack(
        sources,
        package_id,
        version=version,
        output_type=output_type,
        output_path=output_path,
        depends=depends,
        name=name,
        force=force,
        tier=tier,
        sign=sign_key,
        passphrase_file=passphrase_file,
        card=card,
    )


@click.command()
@click.option(
    "--archive",
    required=True,
    type=click.Path(path_type=Path),
    help="An archive in packages_store/.",
)
@click.option("--id", "package_id", required=True, help="Package id to register it as.")
@click.option("--version", default="0.1.0", show_default=True, help="Semantic version.")
@click.option("--output-type", default="extension", type=OUTPUT_TYPES, show_default=True)
@click.option("--output-path", default="")
@click.option("--depends", multiple=True, metavar="ID>=X.Y")
@click.option("--force", is_flag=True, help="Replace an existing row for this id.")
@tier_option
@json_option
@command_runner
def create(
    archive: Path,
    package_id: str,
    version: str,
    output_type: str,
    output_path: str,
    depends: tuple[str, ...],
    force: bool,
    tier: str | None,
    as_json: bool,
) -> object:
    """Admit an archive someone dropped into packages_store/ as a registry row (admin).

    \b
    Example:
      cpctl create --archive packages_store/vendor_tool.tar.gz --id PKG-VENDOR-TOOL --version 2.1.0
    """
    return lambda gate: gate.create(
        archive,
        package_id,
        version=version,
        output_type=output_type,
        output_path=output_path,
        depends=depends,
        force=force,
        tier=tier,
    )


@click.command()
@click.option(
    "--archive", type=click.Path(path_type=Path), help="A registered archive in packages_store/."
)
@click.option("--id", "package_id", help="The package id.")
@click.option("--force", is_flag=True, help="Overwrite files the package does not own.")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    help="Install only as this signed registry manifest lists it (needs --id).",
)
@click.option(
    "--locked",
    is_flag=True,
    help="Install exactly what control_plane.lock pins (no --id/--archive).",
)
@allow_options
@json_option
@command_runner
def install(
    archive: Path | None,
    package_id: str | None,
    force: bool,
    dry_run: bool,
    allow_experimental: bool,
    allow_deprecated: bool,
    allow_downgrade: bool,
    manifest: Path | None,
    locked: bool,
    as_json: bool,
) -> object:
    """Verify, inspect and install a registered package atomically.

    \b
    Example:
      cpctl install --id PKG-FMWK-100
      cpctl install --locked          # exactly what control_plane.lock pins
    """
    allow = _allowances(allow_experimental, allow_deprecated, allow_downgrade)
    if locked:
        if package_id is not None or archive is not None or manifest is not None:
            raise click.UsageError(
                "--locked installs the lock's pins; drop --id, --archive and --manifest"
            )
        if allow.flags():
            raise click.UsageError("--locked installs the lock's pins; drop the --allow-* flags")
        return lambda gate: gate.install_locked(force=force, dry_run=dry_run)
    return lambda gate: gate.install(
        package_id=package_id,
        archive=archive,
        force=force,
        dry_run=dry_run,
        manifest=manifest,
        allow=allow,
    )


@click.command()
@click.option("--id", "package_id", required=True)
@click.option("--force", is_flag=True, help="Replace files modified since install.")
@click.option("--dry-run", is_flag=True)
@allow_options
@json_option
@command_runner
def update(
    package_id: str,
    force: bool,
    dry_run: bool,
    allow_experimental: bool,
    allow_deprecated: bool,
    allow_downgrade: bool,
    as_json: bool,
) -> object:
    """Install the registered newer version of an installed package.

    \b
    Example:
      cpctl update --id PKG-FMWK-100
    """
    allow = _allowances(allow_experimental, allow_deprecated, allow_downgrade)
    return lambda gate: gate.update(package_id, force=force, dry_run=dry_run, allow=allow)


@click.command()
@click.option("--id", "package_id", required=True)
@click.option("--force", is_flag=True, help="Also delete files modified since install.")
@click.option("--dry-run", is_flag=True)
@json_option
@command_runner
def remove(package_id: str, force: bool, dry_run: bool, as_json: bool) -> object:
    """Delete an installed package's files and drop its rows.

    \b
    Example:
      cpctl remove --id PKG-FMWK-100
    """
    return lambda gate: gate.remove(package_id, force=force, dry_run=dry_run)


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    for command in (pack, create, install, update, remove):
        group.add_command(command)
