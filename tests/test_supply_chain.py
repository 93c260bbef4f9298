"""The README's supply-chain walkthrough, run as written, then attacked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import assert_rejection_ledgered, ledger_entries, readme_block, shell, snapshot

HEADING = "### Walkthrough: from a key to a locked, signed, verified install"


def test_the_walkthrough_runs_and_each_attack_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    ran = shell(readme_block(HEADING), root)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (root / "control_plane.lock").is_file()
    assert (root / "packages_store/docs.tar.gz.sig").is_file()

    # A drifted file: drift reports it, install refuses and writes nothing.
    (root / "docs/guide.md").write_text("# Guide, edited\n")
    drift = shell("cpctl drift", root)
    assert drift.returncode == 1 and "docs/guide.md" in drift.stdout
    before = snapshot(root)
    refused = shell("cpctl remove --id PKG-DOCS", root)
    assert refused.returncode == 4, refused.stderr
    assert snapshot(root) == before
    (root / "docs/guide.md").write_text("# Guide\n")

    # A replaced signature: install refuses (exit 5) and writes nothing.
    sig = root / "packages_store/docs.tar.gz.sig"
    good = sig.read_bytes()
    sig.write_bytes(b"AAAA" + good[4:])
    before = snapshot(root)
    refused = shell("cpctl install --id PKG-DOCS --force", root)
    assert refused.returncode == 5, refused.stderr
    assert_rejection_ledgered(root, before)  # the attempt is on record, nothing else
    sig.write_bytes(good)

    # A manifest edited after signing: verify and install --manifest refuse (exit 5).
    manifest = root / "registries/registry.manifest.v1.json"
    manifest.write_text(manifest.read_text().replace('"verified"', '"community"'))
    assert shell(f"cpctl registry verify {manifest}", root).returncode == 5
    before = snapshot(root)
    refused = shell(f"cpctl install --force --manifest {manifest} --id PKG-DOCS", root)
    assert refused.returncode == 5, refused.stderr
    assert_rejection_ledgered(root, before)

    # trust_state.json is unsigned: rolled back by hand, doctor catches it from the ledger.
    entries = ledger_entries(root)
    installs = [e for e in entries if e["action"] == "install" and e["result"] == "ok"]
    assert installs[-1]["details"]["manifest"]["version"] == 1
    state = root / "registries/trust_state.json"
    document = json.loads(state.read_text())
    document["manifest_version"] = 0
    state.write_text(json.dumps(document))
    doctor = shell("cpctl doctor --json", root)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
    assert checks["trust-state"]["status"] == "fail"
    assert "ledger records version 1" in checks["trust-state"]["summary"]
