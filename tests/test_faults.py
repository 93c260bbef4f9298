"""Faults: SIGKILL at many moments of a large install, and eight writers at once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_module, snapshot

pytestmark = pytest.mark.slow


def module_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "control_plane", *args]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def without_ledger(state: dict[str, str]) -> dict[str, str]:
    return {path: digest for path, digest in state.items() if not path.startswith("ledger/")}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with PKG-BIG (1,500 files of 4 KiB) packed and its sources gone."""
    root = tmp_path_factory.mktemp("pristine") / "root"
    assert run_module("--root", str(root), "init", cwd=root.parent).returncode == 0
    for index in range(1500):
        folder = root / "big" / f"d{index % 30:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:04d}.txt").write_bytes(os.urandom(2048).hex().encode())
    packed = run_module(
        "--root", str(root), "pack", "--src", str(root / "big"), "--id", "PKG-BIG", cwd=root
    )
    assert packed.returncode == 0, packed.stderr
    shutil.rmtree(root / "big")
    return root


def test_sigkill_at_any_moment_leaves_before_or_after(pristine: Path, tmp_path: Path) -> None:
    before = without_ledger(snapshot(pristine))
    reference = tmp_path / "reference"
    shutil.copytree(pristine, reference)
    started = time.monotonic()
    done = run_module("--root", str(reference), "install", "--id", "PKG-BIG", cwd=tmp_path)
    duration = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    after = without_ledger(snapshot(reference))
    seen = {"before": 0, "after": 0}
    steps = 16
    for step in range(steps):
        root = tmp_path / f"kill{step}"
        shutil.copytree(pristine, root)
        process = subprocess.Popen(
            module_command("--root", str(root), "install", "--id", "PKG-BIG"),
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if step < steps - 1:
            time.sleep(duration * 1.5 * step / steps)
            process.send_signal(signal.SIGKILL)
        # The last run completes even on a loaded machine, so "after" is always reached once.
        process.wait()
        recovered = run_module("--root", str(root), "validate", cwd=tmp_path)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        state = without_ledger(snapshot(root))
        assert state in (before, after), f"step {step}: root is neither before nor after"
        seen["before" if state == before else "after"] += 1
        assert run_module("--root", str(root), "ledger", "verify", cwd=tmp_path).returncode == 0
        shown = run_module("--root", str(root), "ledger", "show", "--json", cwd=tmp_path)
        installs = [line for line in shown.stdout.splitlines() if '"action": "install"' in line]
        assert len(installs) == (1 if state == after else 0), (
            f"step {step}: ledger disagrees with files"
        )
        check = run_module("--root", str(root), "integrity-check", cwd=tmp_path)
        assert check.returncode == 0, f"step {step}: {check.stdout}"
        shutil.rmtree(root)
    assert seen["before"] and seen["after"], seen


def test_eight_writers_at_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert run_module("--root", str(root), "init", cwd=tmp_path).returncode == 0
    for index in range(8):
        for name in range(20):
            path = root / f"pkg{index}" / f"file{name}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{index}-{name}\n")
    script = (
        "set -e; r=$1; i=$2; "
        f'"{sys.executable}" -m control_plane --root "$r" pack --src "$r/pkg$i" --id PKG-$i --version 1.0.$i; '
        f'rm -r "$r/pkg$i"; "{sys.executable}" -m control_plane --root "$r" install --id PKG-$i'
    )
    processes = [
        subprocess.Popen(
            ["bash", "-c", script, "writer", str(root), str(index)],
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(8)
    ]
    for process in processes:
        _out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    validate = run_module("--root", str(root), "validate", "--json", cwd=tmp_path)
    assert validate.returncode == 0, validate.stdout
    assert '"packages": 8' in validate.stdout
    check = run_module("--root", str(root), "integrity-check", "--json", cwd=tmp_path)
    assert check.returncode == 0, check.stdout
    assert '"checked": 168' in check.stdout  # 160 files + 8 archives
    verify = run_module("--root", str(root), "ledger", "verify", "--json", cwd=tmp_path)
    assert (
        verify.returncode == 0 and '"entries": 17' in verify.stdout
    )  # init + 8 packs + 8 installs
