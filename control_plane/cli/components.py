"""plugins export, plugins lint: the component manifest plugins.json."""

from __future__ import annotations

import click

from control_plane.cli.context import command_runner, json_option
from control_plane.cli.render import text
from control_plane.operations.components import PluginsExportResult, PluginsLintResult


@click.group()
def plugins() -> None:
    """The component manifest plugins.json: every @component(...) declared in plugins/**/*.py
    and every operation of plugins/*/plugin.spec.json, read without importing anything,
    sorted by type and name.

    \b
    Example:
      cpctl plugins export && cpctl plugins lint
    """


@plugins.command()
@click.option(
    "--out",
    metavar="FILE",
    help="Write this .json file inside the root instead of plugins.json "
    "(relative to the current directory).",
)
@json_option
@command_runner
def export(out: str | None, as_json: bool) -> object:
    """Write plugins.json from the declarations (deterministic; a no-op when unchanged).

    Exit 1, writing nothing, when a declaration is wrong; each finding names the file.

    \b
    Example:
      cpctl plugins export
    """
    return lambda gate: gate.plugins_export(out)


@plugins.command()
@click.option(
    "--file",
    "file",
    metavar="FILE",
    help="Check this .json file inside the root instead of plugins.json.",
)
@json_option
@command_runner
def lint(file: str | None, as_json: bool) -> object:
    """Exit 1 when plugins.json is missing, malformed, or differs from what export would write
    (names each missing, extra or changed component).

    \b
    Example:
      cpctl plugins lint --json
    """
    return lambda gate: gate.plugins_lint(file)


@text.register
def _(result: PluginsExportResult) -> list[str]:
    lines = [str(finding) for finding in result.findings]
    if result.status == "refused":
        return [*lines, f"{result.path} not written: {len(result.findings)} problem(s) found"]
    verb = "up to date" if result.status == "unchanged" else "written"
    return [*lines, f"{result.path} {verb}: {result.components} component(s)"]


@text.register
def _(result: PluginsLintResult) -> list[str]:
    if result.ok:
        return [f"ok: {result.path} lists all {result.components} declared component(s)"]
    return [str(finding) for finding in result.findings] + [
        f"{result.path}: {len(result.findings)} problem(s) found ({result.status})"
    ]


def register(group: click.Group) -> None:
    """Add this module's commands to ``cpctl``."""
    group.add_command(plugins)
