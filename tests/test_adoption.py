"""Adoption recipes: the CI audit script, the GitHub action and workflow, the GitLab job, pre-commit.

The script runs for real (a subprocess with this environment's ``cpctl`` on PATH) against a good
root and against roots broken in each way a check must catch.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, CliFn, snapshot, write

CI = REPO / "ci"
AUDIT = CI / "cpctl-audit.sh"
CHECKS = ("validate", "integrity-check", "ledger verify")
REPORTS = ("validate.json", "integrity-check.json", "ledger-verify.json")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _bin_dir() -> Path:
    found = shutil.which("cpctl", path=str(Path(sys.executable).parent))
    assert found, "cpctl is not installed beside this Python (pip install -e '.[test]')"
    return Path(found).parent


def _audit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROL_PLANE_", "CPCTL"))}
    full["PATH"] = f"{_bin_dir()}{os.pathsep}{full.get('PATH', '')}"
    full.update(env or {})
    return subprocess.run(
        ["bash", str(AUDIT), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- the script ------------------------------------------------------------------------------


def test_the_script_runs_the_three_checks_with_json() -> None:
    calls = re.findall(r"^audit (\S+) (.+)$", AUDIT.read_text(encoding="utf-8"), flags=re.M)
    assert [command for _name, command in calls] == list(CHECKS)
    assert "--json" in AUDIT.read_text(encoding="utf-8")


@pytest.fixture
def good_root(packed: Path, cpctl: CliFn) -> Path:
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    return packed


def test_a_good_root_passes_and_every_report_is_one_json_document(
    good_root: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    result = _audit(str(good_root), str(reports))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    for name in REPORTS:
        document = json.loads((reports / name).read_text(encoding="utf-8"))
        assert document["ok"] is True
        assert document["schema"].startswith("control-plane.")


def test_root_and_report_directory_come_from_the_environment_too(
    good_root: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "from-env"
    result = _audit(env={"CONTROL_PLANE_ROOT": str(good_root), "CPCTL_AUDIT_REPORTS": str(reports)})
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in reports.glob("*.json")) == sorted(REPORTS)


def test_a_report_directory_inside_the_root_does_not_disturb_the_checks(
    good_root: Path,
) -> None:
    # The default integrity scope is "**": reports written during the run would be orphans.
    result = _audit(str(good_root), str(good_root / "cpctl-reports"))
    assert result.returncode == 0, result.stdout + result.stderr


def _break_registry(root: Path) -> None:
    registry = root / "registries" / "packages_registry.csv"
    text = registry.read_text(encoding="utf-8")
    registry.write_text(text.replace(",1.0.0,packages_store/", ",1.0,packages_store/"))


def _drift_file(root: Path) -> None:
    write(root / "docs" / "guide.md", "# Guide, edited without hash-update\n")


def _orphan(root: Path) -> None:
    write(root / "docs" / "stray.md", "nobody registered me\n")


def _rewrite_ledger(root: Path) -> None:
    ledger = root / "ledger" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    lines[0] = re.sub(rb'"actor":"[^"]*"', b'"actor":"mallory"', lines[0])
    ledger.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    ("damage", "failed", "passed"),
    [
        pytest.param(_break_registry, ["validate"], ["ledger-verify"], id="broken-registry"),
        pytest.param(_drift_file, ["integrity-check"], ["validate", "ledger-verify"], id="drift"),
        pytest.param(_orphan, ["integrity-check"], ["validate", "ledger-verify"], id="orphan"),
        pytest.param(
            _rewrite_ledger, ["ledger-verify"], ["validate", "integrity-check"], id="ledger-edit"
        ),
    ],
)
def test_a_broken_root_fails_naming_the_check(
    good_root: Path,
    tmp_path: Path,
    damage: Callable[[Path], None],
    failed: list[str],
    passed: list[str],
) -> None:
    damage(good_root)
    before = snapshot(good_root)
    reports = tmp_path / "reports"
    result = _audit(str(good_root), str(reports))
    assert result.returncode == 1, result.stdout + result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("cpctl-audit: failed:")
    for name in failed:
        assert f"{name} (exit" in summary
        assert json.loads((reports / f"{name}.json").read_text(encoding="utf-8"))["ok"] is False
    for name in passed:
        assert f"{name} (exit" not in summary
        assert json.loads((reports / f"{name}.json").read_text(encoding="utf-8"))["ok"] is True
    assert snapshot(good_root) == before  # an audit writes nothing into the root


@pytest.fixture
def locked_root(good_root: Path, cpctl: CliFn) -> Path:
    outcome = cpctl("lock", root=good_root)
    assert outcome.exit_code == 0, outcome.stderr
    return good_root


def test_a_locked_root_is_also_checked_for_drift(locked_root: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = _audit(str(locked_root), str(reports))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok      cpctl drift" in result.stdout
    assert json.loads((reports / "drift.json").read_text(encoding="utf-8"))["ok"] is True


def test_drift_from_the_lock_fails_the_audit(
    locked_root: Path, tmp_path: Path, cpctl: CliFn
) -> None:
    # The registry moves on (a new version registered) while the lock still pins the old one.
    write(locked_root / "docs" / "new.md", "new\n")
    packed = cpctl(
        "pack", "--src", "docs", "--id", "PKG-DOCS", "--version", "2.0.0", root=locked_root,
        cwd=locked_root,
    )  # fmt: skip
    assert packed.exit_code == 0, packed.stderr
    (locked_root / "docs" / "new.md").unlink()
    result = _audit(str(locked_root), str(tmp_path / "reports"))
    assert result.returncode == 1, result.stdout + result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary == "cpctl-audit: failed: drift (exit 1)"
    assert "[registry-changed]" in result.stderr


def test_stale_reports_of_an_earlier_run_are_removed(
    locked_root: Path, good_root: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    assert _audit(str(locked_root), str(reports)).returncode == 0
    (locked_root / "control_plane.lock").unlink()
    assert _audit(str(good_root), str(reports)).returncode == 0
    assert not (reports / "drift.json").exists()


def test_the_failure_log_names_the_findings(good_root: Path, tmp_path: Path) -> None:
    _drift_file(good_root)
    _orphan(good_root)
    result = _audit(str(good_root), str(tmp_path / "reports"))
    assert "mismatched: docs/guide.md" in result.stderr
    assert "orphans: docs/stray.md" in result.stderr


def test_not_a_root_is_a_usage_error(tmp_path: Path) -> None:
    result = _audit(str(tmp_path), str(tmp_path / "reports"))
    assert result.returncode == 2
    assert "not a control plane root" in result.stderr


def test_a_missing_cpctl_is_a_usage_error(good_root: Path, tmp_path: Path) -> None:
    result = _audit(str(good_root), str(tmp_path / "r"), env={"CPCTL": "no-such-cpctl"})
    assert result.returncode == 2
    assert "no-such-cpctl" in result.stderr


def test_this_repository_audits_itself_through_the_script() -> None:
    run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash ci/cpctl-audit.sh ." in run
    assert "cpctl validate" not in run  # no second, diverging copy of the recipe


# --- GitHub ----------------------------------------------------------------------------------


def test_the_github_action_installs_audits_and_uploads_even_on_failure() -> None:
    action = _load(CI / "github" / "action.yml")
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) >= {"root", "python-version", "package", "token"}
    steps = action["runs"]["steps"]
    uses = [step.get("uses", "") for step in steps]
    assert uses[0].startswith("actions/setup-python@")
    audit = next(step for step in steps if step.get("id") == "audit")
    assert all(f"cpctl {check}" in audit["name"] for check in CHECKS)
    assert "cpctl-audit.sh" in audit["run"]
    assert audit["shell"] == "bash"
    # Inputs reach the shell through env, never pasted into the script (no injection).
    assert all("${{" not in step.get("run", "") for step in steps)
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-"))
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert "always()" in upload["if"]
    assert upload["with"]["path"] == "${{ runner.temp }}/cpctl-reports"
    assert audit["env"]["CPCTL_AUDIT_REPORTS"] == upload["with"]["path"]
    install = next(step for step in steps if "pip install" in step.get("run", ""))
    assert steps.index(install) < steps.index(audit)


def _expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda match: values[match[1]], text)


@pytest.mark.parametrize("broken", [False, True], ids=["good-root", "broken-registry"])
def test_the_action_audit_step_runs_as_written(
    good_root: Path, tmp_path: Path, broken: bool
) -> None:
    """The step's own bash and env, as a runner would give them (setup and upload are GitHub's)."""
    action = _load(CI / "github" / "action.yml")
    step = next(step for step in action["runs"]["steps"] if step.get("id") == "audit")
    runner_temp, output = tmp_path / "runner-temp", tmp_path / "github-output"
    runner_temp.mkdir()
    values = {"inputs.root": ".", "inputs.token": "", "runner.temp": str(runner_temp)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROL_PLANE_", "CPCTL"))}
    env.update({name: _expand(str(value), values) for name, value in step["env"].items()})
    env["GITHUB_ACTION_PATH"] = str(CI / "github")
    env["GITHUB_OUTPUT"] = str(output)
    env["PATH"] = f"{_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    if broken:
        _break_registry(good_root)
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=good_root,  # the workspace: root "." is the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == (1 if broken else 0), result.stdout + result.stderr
    reports = runner_temp / "cpctl-reports"
    assert output.read_text(encoding="utf-8") == f"reports={reports}\n"
    assert sorted(path.name for path in reports.glob("*.json")) == sorted(REPORTS)


def test_the_example_workflow_checks_out_and_uses_the_action() -> None:
    workflow = _load(CI / "github" / "example-workflow.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    steps = workflow["jobs"]["audit"]["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    assert steps[1]["uses"].split("@")[0].endswith("/ci/github")
    assert workflow["permissions"] == {"contents": "read"}


# --- GitLab ----------------------------------------------------------------------------------


def test_the_gitlab_job_keeps_reports_always_and_runs_the_script() -> None:
    job = _load(CI / "gitlab" / "control-plane.gitlab-ci.yml")["control-plane-audit"]
    assert job["artifacts"]["when"] == "always"
    reports = job["variables"]["CPCTL_AUDIT_REPORTS"]
    assert reports == "$CI_PROJECT_DIR/cpctl-reports"
    assert job["artifacts"]["paths"] == ["cpctl-reports/"]
    script = "\n".join(job["script"])
    assert "pip install" in script
    clone = re.search(r'git clone .*"\$CPCTL_REPO" (\S+)', script)
    assert clone, script
    assert f"bash {clone[1]}/ci/cpctl-audit.sh" in script  # the script of the tool just cloned


# --- pre-commit ------------------------------------------------------------------------------


# pre-commit's manifest keys that these hooks use (a typo would be silently ignored).
KNOWN_HOOK_KEYS = {"id", "name", "entry", "language", "description", "files", "always_run"}
KNOWN_HOOK_KEYS |= {"pass_filenames", "require_serial"}


def _hooks() -> dict[str, dict[str, Any]]:
    hooks = _load(REPO / ".pre-commit-hooks.yaml")
    assert isinstance(hooks, list)
    return {hook["id"]: hook for hook in hooks}


def test_pre_commit_hooks_are_valid() -> None:
    hooks = _hooks()
    assert set(hooks) == {
        "cpctl-validate", "cpctl-integrity-check", "cpctl-drift", "cpctl-plugins-lint"
    }  # fmt: skip
    for hook_id, hook in hooks.items():
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["language"] == "python"  # pre-commit pip-installs this repository
        assert hook["pass_filenames"] is False
        assert hook["entry"].replace(" ", "-") == hook_id  # cpctl plugins lint: cpctl-plugins-lint
        assert set(hook) <= KNOWN_HOOK_KEYS
    validate = re.compile(hooks["cpctl-validate"]["files"])
    for path in (
        "registries/packages_registry.csv",
        "packages_store/a.tar.gz",
        "control_plane.toml",
    ):
        assert validate.search(path), path
    assert not validate.search("README.md")
    assert hooks["cpctl-integrity-check"]["always_run"] is True
    assert hooks["cpctl-drift"]["always_run"] is True
    plugins_lint = re.compile(hooks["cpctl-plugins-lint"]["files"])
    assert plugins_lint.search("plugins/demo/src/tool.py")
    assert plugins_lint.search("plugins.json")
    assert not plugins_lint.search("registries/plugins.json")


def test_the_drift_hook_stops_a_root_that_left_its_lock(locked_root: Path) -> None:
    argv = shlex.split(_hooks()["cpctl-drift"]["entry"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
    env["PATH"] = f"{_bin_dir()}{os.pathsep}{env.get('PATH', '')}"

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=locked_root, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    assert run().returncode == 0
    write(locked_root / "docs" / "guide.md", "# edited after locking\n")
    assert run().returncode == 1


@pytest.mark.parametrize("hook_id", ["cpctl-validate", "cpctl-integrity-check"])
def test_hook_entries_pass_a_good_root_and_stop_a_broken_registry(
    good_root: Path, hook_id: str
) -> None:
    # pre-commit runs the entry from the repository root, with no file names.
    argv = shlex.split(_hooks()[hook_id]["entry"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
    env["PATH"] = f"{_bin_dir()}{os.pathsep}{env.get('PATH', '')}"

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=good_root, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    write(good_root / ".pre-commit-config.yaml", "repos: []\n")  # adopting it is no orphan
    good = run()
    assert good.returncode == 0, good.stdout + good.stderr
    _break_registry(good_root)
    broken = run()
    assert broken.returncode != 0
    assert "version" in broken.stdout + broken.stderr
