"""Shared fixtures: a fresh root, a CLI runner, and snapshots that prove nothing was written."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from control_plane.cli.main import cli

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CONTROL_PLANE_"):
            monkeypatch.delenv(name)


CliFn = Callable[..., Outcome]


@pytest.fixture
def cpctl(tmp_path: Path) -> CliFn:
    """Run ``cpctl`` in-process; ``root`` defaults to the test's root directory."""

    def run(
        *args: str,
        root: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Outcome:
        runner = CliRunner()
        argv = ["--root", str(root)] if root is not None else []
        previous = Path.cwd()
        os.chdir(cwd or tmp_path)
        try:
            result = runner.invoke(cli, [*argv, *args], env=dict(env or {}), catch_exceptions=False)
        finally:
            os.chdir(previous)
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def root(tmp_path: Path, cpctl: CliFn) -> Path:
    """A freshly initialised root."""
    path = tmp_path / "root"
    outcome = cpctl("init", root=path)
    assert outcome.exit_code == 0, outcome.stderr
    return path


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def snapshot(root: Path, *, include_ledger: bool = True) -> dict[str, str]:
    """Every file under the root (but per-machine state) with its hash; symlinks by target."""
    result: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        if rel_dir == ".control_plane" or rel_dir.startswith(".control_plane/"):
            dirnames.clear()
            continue
        if not include_ledger and (rel_dir == "ledger" or rel_dir.startswith("ledger/")):
            dirnames.clear()
            continue
        for name in dirnames:
            result[(here / name).relative_to(root).as_posix() + "/"] = "dir"
        for name in filenames:
            path = here / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                result[rel] = "link:" + os.readlink(path)
            elif not path.is_file():
                result[rel] = "special"
            else:
                result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def run_module(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m control_plane`` in a real subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "control_plane", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def readme_block(heading: str) -> str:
    """The first bash block of the README section under ``heading``, as written."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(heading) :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"{heading} has a bash block"
    return match.group(1)


def shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``bash -euo pipefail``, this interpreter's bin first on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONTROL_PLANE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def packed(root: Path, cpctl: CliFn) -> Iterator[Path]:
    """A root with PKG-DOCS 1.0.0 packed (docs/guide.md, docs/sub/notes.txt) and its sources gone."""
    write(root / "docs" / "guide.md", "# Guide\n")
    write(root / "docs" / "sub" / "notes.txt", "notes\n")
    outcome = cpctl(
        "pack", "--src", "docs", "--id", "PKG-DOCS", "--version", "1.0.0", root=root, cwd=root
    )
    assert outcome.exit_code == 0, outcome.stderr
    shutil.rmtree(root / "docs")  # as on a fresh machine: only the archive remains
    yield root


def ledger_entries(root: Path) -> list[dict]:
    """The root's ledger entries, parsed."""
    path = root / "ledger" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


LEDGER_LOGS = ("ledger/ledger.jsonl", "ledger/checkpoints.jsonl")


def assert_rejection_ledgered(root: Path, before: dict[str, str]) -> dict:
    """Nothing under ``root`` changed since ``before`` but ONE appended ledger entry with
    result "rejected" and the ONE checkpoint signing it; returns that entry."""
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k not in LEDGER_LOGS} == {
        k: v for k, v in before.items() if k not in LEDGER_LOGS
    }
    for name in LEDGER_LOGS:
        lines = (root / name).read_bytes().splitlines(keepends=True)
        kept = hashlib.sha256(b"".join(lines[:-1])).hexdigest()
        assert kept == before[name], f"{name}: not exactly one line appended"
    entry = ledger_entries(root)[-1]
    assert entry["result"] == "rejected", entry
    return entry


def assert_refused(
    outcome: Outcome,
    code: int,
    before: dict[str, str],
    root: Path,
    *words: str,
    rejection: bool | None = None,
) -> None:
    """A refusal: exit ``code``, one ``cpctl: error:`` line naming ``words``, no traceback,
    and nothing under the root changed since ``before`` -- except, for refused content
    (``rejection``, by default when ``code`` is 5), the one "rejected" ledger entry."""
    assert outcome.exit_code == code, (outcome.stdout, outcome.stderr)
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("cpctl: error:")]
    assert len(errors) == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    for word in words:
        assert word in outcome.stderr, outcome.stderr
    ledgered = code == 5 if rejection is None else rejection
    if ledgered:
        assert_rejection_ledgered(root, before)
    else:
        assert snapshot(root) == before
