"""Help that teaches: every command shows one real example; no arguments shows the workflow."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import CliFn

from control_plane.cli.main import cli

_SUBSTITUTION = re.compile(r"\$\((cpctl\b[^)]*)\)")
_OPERATOR = set("|&;<>()")


def _invocation(example: str) -> list[str] | None:
    """The arguments after "cpctl" in an example, up to a shell operator; inside $( ) if used."""
    inner = _SUBSTITUTION.search(example)
    lexer = shlex.shlex(inner.group(1) if inner else example, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    if "cpctl" not in tokens:
        return None
    argv = []
    for token in tokens[tokens.index("cpctl") + 1 :]:
        if set(token) <= _OPERATOR:
            break
        argv.append(token)
    return argv


def _walk(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _walk(command, (*path, name))
        else:
            yield (*path, name)


COMMANDS = list(_walk(cli))


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="cpctl", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _example(help_text: str) -> str:
    lines = help_text.splitlines()
    starts = [index for index, line in enumerate(lines) if line.strip() == "Example:"]
    assert len(starts) == 1, f"want exactly one 'Example:' block in:\n{help_text}"
    example = lines[starts[0] + 1].strip()
    assert example, "the example line is empty"
    return example


def test_the_walk_finds_every_command_group() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {"", "init", "pack", "install", "ledger", "ledger verify", "token mint"} <= names
    assert "completion" in names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "cpctl")
def test_every_command_has_one_example_that_parses(path: tuple[str, ...]) -> None:
    example = _example(_help(path))
    argv = _invocation(example)
    assert argv is not None, f"the example does not run cpctl: {example}"
    # Click accepts the example's options ("--help" last: the parser still rejects unknown
    # flags) and it runs this very command, whatever global options come first.
    result = CliRunner().invoke(cli, [*argv, "--help"], prog_name="cpctl", catch_exceptions=False)
    assert result.exit_code == 0, f"{example}\n{result.output}"
    usage = result.output.splitlines()[0]
    # A group's example runs one of its subcommands; a command's example runs the command.
    leaf = not isinstance(_command(path), click.Group)
    expected = " ".join(("Usage: cpctl", *path, "[OPTIONS]" if leaf else ""))
    assert usage.startswith(expected), (example, usage)


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.commands.get(name)
        assert found is not None
        command = found
    return command


def test_examples_keep_their_line_breaks() -> None:
    long_example = _example(_help(("pack",)))
    assert long_example.startswith("cpctl pack --src ")
    assert long_example.endswith("--version 1.0.0")


def test_no_arguments_prints_the_seed_workflow_in_five_lines(cpctl: CliFn, tmp_path: Path) -> None:
    outcome = cpctl(cwd=tmp_path)
    assert outcome.exit_code == 0
    commands = [line.split("#")[0].strip() for line in outcome.stdout.splitlines()]
    steps = [line for line in commands if line.startswith("cpctl ")]
    assert len(steps) == 5
    assert [step.split()[1] for step in steps] == [
        "init",
        "pack",
        "install",
        "integrity-check",
        "ledger",
    ]
    assert steps[-1] == "cpctl ledger verify"
    assert "cpctl --help" in outcome.stdout
    assert outcome.stderr == ""
    assert list(tmp_path.iterdir()) == []  # it only prints


def test_version(cpctl: CliFn) -> None:
    from importlib.metadata import version

    outcome = cpctl("--version")
    assert outcome.exit_code == 0
    assert outcome.stdout.strip() == f"cpctl, version {version('control-plane')}"
