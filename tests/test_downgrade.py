"""Downgrade protection: a lower version than the installed one is exit 4 unless an admin
passes --allow-downgrade; through the CLI and through GateOperations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import CliFn, Outcome, snapshot, write

from control_plane.auth import mint_hmac_token
from control_plane.errors import ConflictError, DeniedError
from control_plane.operations.gate import GateOperations
from control_plane.registry import Version, parse_packages
from control_plane.trust_policy import Allowances

SECRET = "correct horse battery staple 0123456789"


def row(root: Path):
    data = (root / "registries/packages_registry.csv").read_bytes()
    return {r.id: r for r in parse_packages(data).require_clean()}["PKG-TOOL"]


def pack(root: Path, cpctl: CliFn, version: str) -> None:
    write(root / "tool" / "tool.txt", f"tool {version}\n")
    if version.startswith("2"):
        write(root / "tool" / "only-in-2.txt", "new\n")
    outcome = cpctl(
        "pack", "--src", "tool", "--id", "PKG-TOOL", "--version", version, "--tier", "verified",
        "--output-path", "opt", root=root, cwd=root,
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.stderr
    shutil.rmtree(root / "tool")


@pytest.fixture
def rolled_back(root: Path, cpctl: CliFn) -> Path:
    """PKG-TOOL 2.0.0 installed (under opt/), then the registry row re-packed at 1.0.0."""
    pack(root, cpctl, "2.0.0")
    assert cpctl("install", "--id", "PKG-TOOL", root=root).exit_code == 0
    pack(root, cpctl, "1.0.0")
    assert row(root).installed_version == Version(2, 0, 0)
    assert row(root).version == Version(1, 0, 0)
    return root


def run_as(cpctl: CliFn, root: Path, user: str, *args: str) -> Outcome:
    config = root / "control_plane.toml"
    text = config.read_text()
    if 'provider = "hmac"' not in text:
        text = text.replace('provider = "passthrough"', 'provider = "hmac"')
        text = text.replace(
            "[authz.users]\n", '[authz.users]\nalice = "admin"\nmona = "maintainer"\n'
        )
        config.write_text(text)
    token = mint_hmac_token(SECRET.encode(), user)
    return cpctl("--token", token, *args, root=root, env={"CONTROL_PLANE_SHARED_SECRET": SECRET})


@pytest.mark.parametrize(
    "command",
    [("update", "--id", "PKG-TOOL"), ("install", "--id", "PKG-TOOL", "--force")],
    ids=["update", "install-force"],
)
def test_downgrade_is_refused_and_nothing_is_written(
    rolled_back: Path, cpctl: CliFn, command: tuple[str, ...]
) -> None:
    before = snapshot(rolled_back)
    for extra in ((), ("--dry-run",)):
        outcome = cpctl(*command, *extra, root=rolled_back)
        assert outcome.exit_code == 4, outcome.stderr
        assert "older than installed 2.0.0; refusing to downgrade" in outcome.stderr
        assert "--allow-downgrade" in outcome.stderr
        assert snapshot(rolled_back) == before


def test_plain_install_of_an_installed_package_still_points_to_update(
    rolled_back: Path, cpctl: CliFn
) -> None:
    before = snapshot(rolled_back)
    outcome = cpctl("install", "--id", "PKG-TOOL", root=rolled_back)
    assert outcome.exit_code == 4 and "cpctl update --id PKG-TOOL" in outcome.stderr
    assert snapshot(rolled_back) == before


def test_admin_may_downgrade(rolled_back: Path, cpctl: CliFn) -> None:
    outcome = run_as(cpctl, rolled_back, "alice", "update", "--id", "PKG-TOOL", "--allow-downgrade")
    assert outcome.exit_code == 0, outcome.stderr
    assert "downgraded from 2.0.0 to 1.0.0" in outcome.stderr
    assert row(rolled_back).installed_version == Version(1, 0, 0)
    assert (rolled_back / "opt/tool/tool.txt").read_text() == "tool 1.0.0\n"
    assert not (rolled_back / "opt/tool/only-in-2.txt").exists()
    entry = json.loads((rolled_back / "ledger/ledger.jsonl").read_text().splitlines()[-1])
    assert entry["action"] == "update" and entry["actor"] == "alice"


def test_maintainer_may_not_downgrade(rolled_back: Path, cpctl: CliFn) -> None:
    run_as(cpctl, rolled_back, "alice", "validate")  # switch to hmac before the snapshot
    before = snapshot(rolled_back, include_ledger=False)
    outcome = run_as(cpctl, rolled_back, "mona", "update", "--id", "PKG-TOOL", "--allow-downgrade")
    assert outcome.exit_code == 3, outcome.stderr
    assert "--allow-downgrade needs the admin role" in outcome.stderr
    assert snapshot(rolled_back, include_ledger=False) == before
    entry = json.loads((rolled_back / "ledger/ledger.jsonl").read_text().splitlines()[-1])
    assert entry["result"] == "denied" and entry["action"] == "override"


def test_upgrade_needs_no_flag(root: Path, cpctl: CliFn) -> None:
    pack(root, cpctl, "1.0.0")
    assert cpctl("install", "--id", "PKG-TOOL", root=root).exit_code == 0
    pack(root, cpctl, "2.0.0")
    outcome = cpctl("update", "--id", "PKG-TOOL", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    assert "downgrade" not in outcome.stderr


def test_through_gate_operations(rolled_back: Path) -> None:
    gate = GateOperations(rolled_back, env={})
    before = snapshot(rolled_back)
    with pytest.raises(ConflictError, match="refusing to downgrade"):
        gate.update("PKG-TOOL")
    assert snapshot(rolled_back) == before
    result = gate.update("PKG-TOOL", allow=Allowances(downgrade=True))
    assert [change.status for change in result.packages] == ["updated"]
    assert row(rolled_back).installed_version == Version(1, 0, 0)


def test_gate_operations_denies_a_maintainer_override(rolled_back: Path, cpctl: CliFn) -> None:
    run_as(cpctl, rolled_back, "alice", "validate")  # switch to hmac
    token = mint_hmac_token(SECRET.encode(), "mona")
    gate = GateOperations(rolled_back, token, env={"CONTROL_PLANE_SHARED_SECRET": SECRET})
    with pytest.raises(DeniedError):
        gate.update("PKG-TOOL", allow=Allowances(downgrade=True))
    with pytest.raises(ConflictError):
        gate.update("PKG-TOOL")
