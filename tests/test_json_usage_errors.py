"""Click's usage errors under ``--json``: one ``control-plane.error/1`` document, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, CliFn, Outcome, assert_refused, run_module, snapshot
from jsonschema import Draft202012Validator

from control_plane.cli.context import wants_json
from control_plane.cli.main import cli
from control_plane.schemas import load_schema

ERROR_SCHEMA = Draft202012Validator(load_schema("control-plane.error/1"))

# (argv without --json, words of click's message, the command whose --help the hint names)
MISTAKES = {
    "unknown-option": (("install", "--bogus"), "No such option '--bogus'", "cpctl install"),
    "missing-option": (("pack",), "Missing option '--src'", "cpctl pack"),
    "bad-choice": (
        ("pack", "--src", "a.md", "--id", "PKG-A", "--output-type", "nope"),
        "'nope' is not one of",
        "cpctl pack",
    ),
    "bad-int": (
        ("ledger", "show", "--since", "ten"),
        "'ten' is not a valid integer",
        "cpctl ledger show",
    ),
    "int-out-of-range": (("ledger", "show", "--since", "-1"), "--since", "cpctl ledger show"),
    "missing-path": (
        ("ledger", "verify", "--against", "no-such-checkpoint.json"),
        "does not exist",
        "cpctl ledger verify",
    ),
    "missing-argument": (("keys", "trust"), "Missing argument 'FILE'", "cpctl keys trust"),
    "extra-argument": (
        ("install", "--id", "PKG-A", "surplus"),
        "unexpected extra argument (surplus)",
        "cpctl install",
    ),
    "unknown-subcommand": (("ledger", "nosuch"), "No such command 'nosuch'", "cpctl ledger"),
    "unknown-command": (("nosuch",), "No such command 'nosuch'", "cpctl"),
    "raised-by-command": (
        ("install", "--locked", "--id", "PKG-A"),
        "--locked installs the lock's pins",
        "cpctl install",
    ),
}


def error_document(outcome: Outcome) -> dict:
    """The one JSON document on stdout, checked against the shipped error schema."""
    document = json.loads(outcome.stdout)  # exactly one document, nothing around it
    ERROR_SCHEMA.validate(document)
    return document


def json_variants() -> list[tuple[str, tuple[str, ...]]]:
    """Each mistake with ``--json`` last, and (for known commands) right after the command."""
    variants = []
    for mistake, (argv, _words, command) in sorted(MISTAKES.items()):
        variants.append((mistake, (*argv, "--json")))
        depth = len(command.split()) - 1
        if not mistake.startswith("unknown-") and len(argv) > depth:
            variants.append((mistake, (*argv[:depth], "--json", *argv[depth:])))
    return variants


@pytest.mark.parametrize(
    ("mistake", "argv"), json_variants(), ids=lambda v: "-".join(v) if isinstance(v, tuple) else v
)
def test_usage_error_under_json_prints_the_error_document(
    root: Path, cpctl: CliFn, mistake: str, argv: tuple[str, ...]
) -> None:
    _argv, words, command = MISTAKES[mistake]
    before = snapshot(root)
    outcome = cpctl(*argv, root=root, cwd=root)
    assert_refused(outcome, 2, before, root, words)
    error = error_document(outcome)["error"]
    assert error["exit_code"] == 2 and error["kind"] == "UsageError"
    assert words in error["message"] and "\n" not in error["message"]
    assert error["message"].endswith(f"(next: {command} --help)")
    assert f"cpctl: error: {error['message']}" in outcome.stderr.splitlines()
    assert "Usage:" not in outcome.stderr


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_without_json_click_reports_as_usual(root: Path, cpctl: CliFn, mistake: str) -> None:
    argv, words, _command = MISTAKES[mistake]
    before = snapshot(root)
    outcome = cpctl(*argv, root=root, cwd=root)
    assert outcome.exit_code == 2
    assert outcome.stdout == ""
    assert "Usage: cpctl" in outcome.stderr and "Error:" in outcome.stderr
    assert words in outcome.stderr and "cpctl: error:" not in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "argv",
    [("--json",), ("--json", "install"), ("completion", "--json")],
    ids=["group-level", "group-level-before-command", "command-without-json"],
)
def test_json_where_no_command_takes_it_still_gets_the_document(
    tmp_path: Path, cpctl: CliFn, argv: tuple[str, ...]
) -> None:
    outcome = cpctl(*argv)
    assert outcome.exit_code == 2
    assert "No such option '--json'" in error_document(outcome)["error"]["message"]
    assert len([line for line in outcome.stderr.splitlines() if "cpctl: error:" in line]) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ("revoke", "--reason", "--json", "--bogus"),
        ("--token", "--json", "install", "--bogus"),
        ("install", "--bogus", "--", "--json"),
    ],
    ids=["value-of-option", "value-of-global-option", "after-double-dash"],
)
def test_json_that_click_does_not_read_as_the_flag_is_not_a_request(
    root: Path, cpctl: CliFn, argv: tuple[str, ...]
) -> None:
    outcome = cpctl(*argv, root=root, cwd=root)
    assert outcome.exit_code == 2
    assert outcome.stdout == ""
    assert "No such option '--bogus'" in outcome.stderr and "Usage:" in outcome.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["install", "--json"], True),
        (["--root", "r", "ledger", "show", "--json"], True),
        (["--root=r", "--json"], True),
        (["nosuch", "--x", "--json"], True),
        (["revoke", "--reason", "--json"], False),
        (["pack", "--src", "--json"], False),
        (["--token", "--json", "whoami"], False),
        (["install", "--", "--json"], False),
        (["install", "--json=1"], False),
        (["install"], False),
    ],
)
def test_wants_json_reads_argv_as_click_does(argv: list[str], expected: bool) -> None:
    assert wants_json(cli, argv) is expected


def test_a_real_process_prints_the_document(tmp_path: Path) -> None:
    result = run_module("install", "--bogus", "--json", cwd=tmp_path)
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    ERROR_SCHEMA.validate(json.loads(result.stdout))
    assert error["message"] == "No such option '--bogus'. (next: cpctl install --help)"
    assert result.stderr == f"cpctl: error: {error['message']}\n"
    plain = run_module("install", "--bogus", cwd=tmp_path)
    assert plain.returncode == 2 and plain.stdout == ""
    assert "Try 'cpctl install --help' for help." in plain.stderr


def test_the_seed_scripts_print_the_document_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "package_pack.py"), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["message"] == "Missing option '--src'. (next: cpctl pack --help)"
    assert result.stderr.count("cpctl: error:") == 1
