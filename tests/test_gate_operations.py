"""GateOperations is the only way in: the library path enforces exactly what the CLI does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, snapshot

from control_plane import GateOperations
from control_plane.auth import mint_hmac_token
from control_plane.errors import ConflictError, DeniedError, UsageError

SECRET = "library secret that is long enough"


@pytest.fixture
def hmac_env(packed: Path) -> dict[str, str]:
    config = packed / "control_plane.toml"
    config.write_text(
        config.read_text().replace(
            "[authz.users]\n", '[authz.users]\nalice = "admin"\nrita = "reader"\n'
        )
    )
    return {"CONTROL_PLANE_AUTH_PROVIDER": "hmac", "CONTROL_PLANE_SHARED_SECRET": SECRET}


def token(user: str) -> str:
    return mint_hmac_token(SECRET.encode(), user)


def test_library_install_with_a_token(packed: Path, hmac_env: dict[str, str]) -> None:
    gate = GateOperations(control_plane_root=packed, token=token("alice"), env=hmac_env)
    result = gate.install(package_id="PKG-DOCS")
    assert [change.status for change in result.packages] == ["installed"]
    assert gate.integrity_check().ok
    assert gate.whoami().to_json()["role"] == "admin"


@pytest.mark.parametrize(
    ("who", "call"),
    [
        (None, lambda gate: gate.install(package_id="PKG-DOCS")),
        ("rita", lambda gate: gate.install(package_id="PKG-DOCS")),
        ("rita", lambda gate: gate.pack([Path("docs")], "PKG-X")),
        ("rita", lambda gate: gate.hash_update("docs/guide.md")),
        ("mallory", lambda gate: gate.validate()),
    ],
    ids=[
        "no-token-install",
        "reader-install",
        "reader-pack",
        "reader-hash-update",
        "unknown-user-validate",
    ],
)
def test_library_denials_write_nothing_but_the_ledger(
    packed: Path, hmac_env: dict[str, str], who, call
) -> None:
    before = snapshot(packed, include_ledger=False)
    gate = GateOperations(packed, None if who is None else token(who), env=hmac_env)
    with pytest.raises(DeniedError) as raised:
        call(gate)
    assert raised.value.exit_code == 3
    assert snapshot(packed, include_ledger=False) == before
    last = json.loads((packed / "ledger/ledger.jsonl").read_text().splitlines()[-1])
    assert last["result"] == "denied"
    assert token(who or "x") not in json.dumps(last)


def test_library_errors_carry_exit_codes(packed: Path) -> None:
    gate = GateOperations(packed)
    with pytest.raises(UsageError):
        gate.install(package_id="PKG-MISSING")
    gate.install(package_id="PKG-DOCS")
    (packed / "docs/guide.md").write_text("edited\n")
    with pytest.raises(ConflictError):
        gate.remove("PKG-DOCS")


def test_seed_lib_modules_re_export_the_api(packed: Path) -> None:
    program = (
        "from pathlib import Path\n"
        "from lib.gate_operations import GateOperations\n"
        "from lib.authz import Role, Action, ROLE_ACTIONS\n"
        "from lib.auth import HmacProvider, PassthroughProvider\n"
        "from lib.packages import write_archive, read_archive\n"
        "gate = GateOperations(control_plane_root=Path('.'), token=None)\n"
        "print(gate.install(package_id='PKG-DOCS').packages[0].status)\n"
    )
    (packed / "lib").symlink_to(REPO / "lib")
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=packed,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "installed"
