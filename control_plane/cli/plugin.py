"""plugin new, build, validate, pack: one plugin directory under plugins/."""

from __future__ import annotations

from pathlib import Path

import click

from control_plane.cli.context import command_runner, json_option, passphrase_option
from control_plane.cli.packages import sign_option, tier_option
from control_plane.cli.render import text
from control_plane.operations.plugins import (
    PluginBuildResult,
    PluginNewResult,
    PluginValidateResult,
)


@click.group()
def plugin() -> None:
    """Plugins: scaffold plugins/KEY/, derive its generated files from plugin.spec.json,
    validate, pack as a module package.

    \b
    Example:
      cpctl plugin new demo --op mint && cpctl plugin build demo && cpctl plugin validate demo
    """


@plugin.command()
@click.argument("key")
@click.option(
    "--op",
    "ops",
    multiple=True,
    metavar="NAME",
    help="An operation the plugin exposes (repeatable): adds its schemas, examples and test.",
)
@json_option
@command_runner
def new(key: str, ops: tuple[str, ...], as_json: bool) -> object:
    """Scaffold plugins/KEY/ with the nine baseline artifacts (exit 4 if it exists).

    \b
    Example:
      cpctl plugin new demo --op mint
    """
    return lambda gate: gate.plugin_new(key, list(ops))


@plugin.command()
@click.argument("key")
@json_option
@command_runner
def build(key: str, as_json: bool) -> object:
    """Regenerate manifest.json, ledger_contract.json, policy_snapshot.json, README_PLUGIN.md,
    healthcheck.md and the AUTO regions of src/ from plugin.spec.json (deterministic).

    Manual-notes sections and everything outside AUTO fences are kept.

    \b
    Example:
      cpctl plugin build demo
    """
    return lambda gate: gate.plugin_build(key)


@plugin.command()
@click.argument("key", required=False)
@click.option("--all", "every", is_flag=True, help="Validate every plugin under plugins/.")
@json_option
@command_runner
def validate(key: str | None, every: bool, as_json: bool) -> object:
    """Check a plugin: baseline, spec schema, operations, generated files, checksums,
    AUTO regions, README links and commands.  Exit 1 with every finding listed.

    \b
    Example:
      cpctl plugin validate demo --json
    """
    return lambda gate: gate.plugin_validate(key, every=every)


@plugin.command()
@click.argument("key")
@click.option("--id", "package_id", help="Package id (default: PKG-PLUGIN-KEY upper-cased).")
@click.option("--depends", multiple=True, metavar="ID>=X.Y", help="A dependency (repeatable).")
@click.option("--force", is_flag=True, help="Overwrite an archive registered to another package.")
@tier_option
@sign_option
@passphrase_option
@json_option
@command_runner
def pack(
    key: str,
    package_id: str | None,
    depends: tuple[str, ...],
    force: bool,
    tier: str | None,
    sign_key: Path | None,
    passphrase_file: Path | None,
    as_json: bool,
) -> object:
    """Pack plugins/KEY as a module package at its spec's version, recording its identity
    card in the registry row.  Refused while plugin validate has findings (exit 1) or the
    plugin has no card (exit 2); install puts it at modules/plugins/KEY/.

    \b
    Example:
      cpctl plugin pack demo && cpctl install --id PKG-PLUGIN-DEMO
    """
    return lambda gate: gate.plugin_pack(
        key,
        package_id=package_id,
        depends=depends,
        force=force,
        tier=tier,
        sign=sign_key,
        passphrase_file=passphrase_file,
    )


@text.register
def _(result: PluginNewResult) -> list[str]:
    ops = ", ".join(result.operations) or "no operations"
    return [
        f"created {result.path} ({ops}): {len(result.created)} file(s)",
        f"next: edit {result.path}/plugin.spec.json, then cpctl plugin build {result.key}",
    ]


@text.register
def _(result: PluginBuildResult) -> list[str]:
    lines = [str(finding) for finding in result.findings]
    if result.status == "refused":
        return [*lines, f"{result.path} not built: {len(result.findings)} problem(s) found"]
    if result.status == "unchanged":
        return [f"{result.path} up to date"]
    return [f"written: {path}" for path in result.changed] + [
        f"{result.path} built: {len(result.changed)} file(s) changed"
    ]


@text.register
def _(result: PluginValidateResult) -> list[str]:
    if result.ok:
        return [f"ok: {len(result.plugins)} plugin(s) valid"]
    return [str(finding) for finding in result.findings] + [
        f"{len(result.findings)} problem(s) found in {len(result.plugins)} plugin(s)"
    ]


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(plugin)
