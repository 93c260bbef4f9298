"""Shell completion: a script for each shell, and package ids completed from the root's registry."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CliFn, snapshot, write

from control_plane.cli.main import cli

Complete = Callable[..., list[str]]


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _cpctl_completion cpctl"),
        ("zsh", "#compdef cpctl"),
        ("fish", "complete --no-files --command cpctl"),
    ],
)
def test_completion_prints_the_script_for_each_shell(cpctl: CliFn, shell: str, marker: str) -> None:
    outcome = cpctl("completion", shell)
    assert outcome.exit_code == 0, outcome.stderr
    assert marker in outcome.stdout
    assert "_CPCTL_COMPLETE" in outcome.stdout


def test_an_unknown_shell_is_a_usage_error(cpctl: CliFn) -> None:
    outcome = cpctl("completion", "powershell")
    assert outcome.exit_code == 2
    assert "powershell" in outcome.stderr


@pytest.fixture
def complete(monkeypatch: pytest.MonkeyPatch) -> Complete:
    """Ask cpctl for completions the way the bash script does (COMP_WORDS, COMP_CWORD)."""

    def run(words: str, *, cwd: Path | None = None, shell: str = "bash") -> list[str]:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        env = {
            "_CPCTL_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        }
        result = CliRunner().invoke(cli, [], prog_name="cpctl", env=env, catch_exceptions=False)
        assert result.exit_code == 0
        assert result.stderr == ""
        # bash answers "type,value" lines.
        return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]

    return run


@pytest.fixture
def two_packages(root: Path, cpctl: CliFn) -> Path:
    for package_id, name in (("PKG-DOCS", "docs"), ("PKG-DATA", "data")):
        write(root / name / "a.txt", name)
        outcome = cpctl("pack", "--src", name, "--id", package_id, root=root, cwd=root)
        assert outcome.exit_code == 0, outcome.stderr
    return root


@pytest.mark.parametrize(
    "words",
    [
        "cpctl install --id ",
        "cpctl remove --id ",
        "cpctl update --id ",
        "cpctl verify --id ",
        "cpctl pack --src x --id ",
        "cpctl create --archive x --id ",
        "cpctl sign --key k --id ",
    ],
)
def test_every_id_option_completes_package_ids(
    two_packages: Path, complete: Complete, words: str
) -> None:
    assert complete(words, cwd=two_packages) == ["PKG-DATA", "PKG-DOCS"]


def test_ids_complete_by_prefix_from_the_root_named_on_the_line(
    two_packages: Path, complete: Complete, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = snapshot(two_packages)
    assert complete(f"cpctl --root {two_packages} install --id PKG-DO", cwd=elsewhere) == [
        "PKG-DOCS"
    ]
    assert complete(f"cpctl --root {two_packages} install --id pkg-da", cwd=elsewhere) == [
        "PKG-DATA"
    ]
    assert snapshot(two_packages) == before  # completion writes nothing, not even the ledger


def test_ids_come_from_control_plane_root_in_the_environment(
    two_packages: Path, complete: Complete, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTROL_PLANE_ROOT", os.fspath(two_packages))
    assert complete("cpctl install --id PKG-DA", cwd=tmp_path) == ["PKG-DATA"]


def test_zsh_gets_the_name_and_version_as_a_description(
    two_packages: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"_CPCTL_COMPLETE": "zsh_complete", "COMP_WORDS": "cpctl remove --id PKG-DOC"}
    env["COMP_CWORD"] = "3"
    monkeypatch.chdir(two_packages)
    result = CliRunner().invoke(cli, [], prog_name="cpctl", env=env, catch_exceptions=False)
    assert result.stdout.splitlines() == ["plain", "PKG-DOCS", "docs 0.1.0"]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda root: (root / "control_plane.toml").unlink(), id="not-a-root"),
        pytest.param(
            lambda root: write(root / "registries" / "packages_registry.csv", b"\xff\xfe garbage"),
            id="registry-not-utf8",
        ),
        pytest.param(
            lambda root: write(root / "registries" / "packages_registry.csv", "wrong,header\n"),
            id="registry-wrong-header",
        ),
        pytest.param(
            lambda root: (root / "registries" / "packages_registry.csv").unlink(),
            id="registry-missing",
        ),
    ],
)
def test_completion_stays_silent_when_it_cannot_read_the_registry(
    two_packages: Path, complete: Complete, damage: Callable[[Path], object]
) -> None:
    damage(two_packages)
    assert complete("cpctl install --id ", cwd=two_packages) == []


def test_completion_outside_any_root_offers_nothing(complete: Complete, tmp_path: Path) -> None:
    assert complete("cpctl --root /nonexistent/x install --id ", cwd=tmp_path) == []


def test_an_id_that_is_not_a_package_is_not_completed_as_one(
    two_packages: Path, complete: Complete
) -> None:
    assert complete("cpctl keys generate --id ", cwd=two_packages) == []


def test_id_options_still_take_any_string(packed: Path, cpctl: CliFn) -> None:
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    assert "--id ID" in cpctl("install", "--help").stdout


def test_the_shell_complete_api_offers_ids_with_descriptions(
    two_packages: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.shell_completion import ShellComplete

    monkeypatch.chdir(two_packages)
    completer = ShellComplete(cli, {}, "cpctl", "_CPCTL_COMPLETE")
    items = completer.get_completions(["update", "--id"], "PKG-D")
    assert [(item.value, item.help) for item in items] == [
        ("PKG-DATA", "data 0.1.0"),
        ("PKG-DOCS", "docs 0.1.0"),
    ]


def test_rows_without_a_valid_id_are_not_offered(two_packages: Path, complete: Complete) -> None:
    registry = two_packages / "registries" / "packages_registry.csv"
    with registry.open("a", encoding="utf-8") as handle:
        handle.write("PKG-bad id!,x,1.0.0,,,,,,,,,\n")  # not an id
        handle.write("PKG-RAGGED,x\n")  # too few cells
    assert complete("cpctl install --id PKG-", cwd=two_packages) == ["PKG-DATA", "PKG-DOCS"]


def test_root_completes_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"_CPCTL_COMPLETE": "bash_complete", "COMP_WORDS": "cpctl --root ro", "COMP_CWORD": "2"}
    result = CliRunner().invoke(cli, [], prog_name="cpctl", env=env, catch_exceptions=False)
    assert result.stdout.splitlines() == ["dir,ro"]  # bash then lists matching directories


def test_the_bash_script_completes_ids_in_a_real_bash(two_packages: Path) -> None:
    import shutil
    import subprocess
    import sys

    cpctl_bin = shutil.which("cpctl", path=str(Path(sys.executable).parent))
    bash = shutil.which("bash")
    if cpctl_bin is None or bash is None:
        pytest.skip("needs bash and an installed cpctl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
    env["PATH"] = f"{Path(cpctl_bin).parent}{os.pathsep}{env.get('PATH', '')}"
    script = (
        "source <(cpctl completion bash)\n"
        "COMP_WORDS=(cpctl remove --id PKG-DO); COMP_CWORD=3\n"
        '_cpctl_completion cpctl; echo "${COMPREPLY[*]}"\n'
    )
    result = subprocess.run(
        [bash, "-c", script],
        cwd=two_packages,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "PKG-DOCS"
