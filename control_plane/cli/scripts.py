"""The seed's ``scripts/*.py`` entry points, as thin wrappers over ``cpctl``.

They accept the seed's flags (``--src --id --token``, ``--archive --id --token
--force``, ``--json``) in any order; ``--token`` and ``--root`` are moved in
front of the command, where ``cpctl`` expects global options.
"""

from __future__ import annotations

from collections.abc import Sequence

from control_plane.cli.main import cli

GLOBAL_OPTIONS = ("--token", "--root")


def split_globals(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(global options, the rest) from a script's argument list."""
    globals_: list[str] = []
    rest: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        name = item.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            if "=" in item:
                globals_.append(item)
            elif index + 1 < len(items):
                globals_ += [item, items[index + 1]]
                index += 1
            else:
                rest.append(item)  # let click report the missing value
        else:
            rest.append(item)
        index += 1
    return globals_, rest


def run_script(command: Sequence[str], argv: Sequence[str]) -> None:
    """Run ``cpctl [globals] COMMAND [rest]`` and exit with its code."""
    globals_, rest = split_globals(argv)
    cli.main(args=[*globals_, *command, *rest], prog_name="cpctl")
