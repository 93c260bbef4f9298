"""Identity cards: mint, validate and build-registry through the CLI, scripts and GateOperations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, CliFn, snapshot, write
from ulid import ULID

from control_plane.auth import mint_hmac_token
from control_plane.identity_cards import IdCard, card_digest
from control_plane.operations import GateOperations

SECRET = "correct horse battery staple 0123456789"


@pytest.fixture
def artifacts(root: Path) -> Path:
    """A root holding two artifacts: a plugin directory and a schema file."""
    write(root / "plugins" / "demo" / "plugin.spec.json", "{}\n")
    write(root / "schemas" / "mint.in.schema.json", "{}\n")
    return root


def mint(cpctl: CliFn, root: Path, path: str, kind: str = "plugin") -> dict:
    outcome = cpctl("ids", "mint", "--kind", kind, "--path", path, "--json", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    return outcome.json()


def validate(cpctl: CliFn, root: Path, *extra: str) -> tuple[int, list[dict]]:
    outcome = cpctl("ids", "validate", "--json", *extra, root=root)
    assert "Traceback" not in outcome.stderr
    document = outcome.json()
    assert document["schema"] == "control-plane.ids-validate/1"
    assert document["ok"] is (outcome.exit_code == 0)
    return outcome.exit_code, document["findings"]


def rules(findings: list[dict]) -> set[tuple[str, str]]:
    return {(finding["subject"], finding["rule"]) for finding in findings}


def ids_ledger(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / ".ledger/ids.jsonl").read_text().splitlines()]


def main_ledger(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "ledger/ledger.jsonl").read_text().splitlines()]


# -- the round trip -----------------------------------------------------------------


def test_mint_validate_build_round_trip(artifacts: Path, cpctl: CliFn) -> None:
    first = mint(cpctl, artifacts, "plugins/demo")
    second = mint(cpctl, artifacts, "schemas/mint.in.schema.json", kind="schema")
    assert first["schema"] == "control-plane.ids-mint/1"
    assert str(ULID.from_str(first["id"])) == first["id"]
    assert first["card"] == f"ids/cards/{first['id']}.yaml"
    assert (first["ledger_seq"], second["ledger_seq"]) == (0, 1)

    card_bytes = (artifacts / first["card"]).read_bytes()
    card = yaml.safe_load(card_bytes)
    assert list(card) == ["schema", "id", "kind", "path", "created", "minted_by"]
    assert card["id"] == first["id"] and card["kind"] == "plugin"
    assert card["path"] == "plugins/demo"
    assert card_digest(card_bytes) == first["digest"]

    entries = ids_ledger(artifacts)
    assert [entry["details"]["id"] for entry in entries] == [first["id"], second["id"]]
    assert entries[1]["prev"] == entries[0]["hash"]
    assert entries[0]["digests"] == {"card": first["digest"]}
    mints = [entry for entry in main_ledger(artifacts) if entry["action"] == "ids-mint"]
    assert [entry["txn"] for entry in mints] == [entry["txn"] for entry in entries]

    assert validate(cpctl, artifacts) == (0, [])
    assert cpctl("ids", "build-registry", "--check", root=artifacts).exit_code == 1
    built = cpctl("ids", "build-registry", "--json", root=artifacts)
    assert built.exit_code == 0, built.stderr
    assert built.json()["status"] == "written"
    registry = yaml.safe_load((artifacts / "ids/registry.yaml").read_text())
    assert registry["schema"] == "control-plane.id-registry/1"
    assert [row["id"] for row in registry["ids"]] == sorted([first["id"], second["id"]])
    by_id = {row["id"]: row for row in registry["ids"]}
    assert by_id[second["id"]]["path"] == "schemas/mint.in.schema.json"
    assert by_id[first["id"]]["digest"] == first["digest"]
    checked = cpctl("ids", "build-registry", "--check", "--json", root=artifacts)
    assert checked.exit_code == 0 and checked.json()["status"] == "unchanged"
    # Identity stores are the root's machinery, not orphans of the integrity scope.
    assert cpctl("ledger", "verify", root=artifacts).exit_code == 0


def test_build_registry_is_deterministic(artifacts: Path, cpctl: CliFn) -> None:
    for index in range(5):
        write(artifacts / "docs" / f"doc{index}.md", f"doc {index}\n")
        mint(cpctl, artifacts, f"docs/doc{index}.md", kind="document")
    assert cpctl("ids", "build-registry", root=artifacts).exit_code == 0
    registry = artifacts / "ids/registry.yaml"
    first = registry.read_bytes()
    again = cpctl("ids", "build-registry", "--json", root=artifacts)
    assert again.json()["status"] == "unchanged"
    registry.unlink()
    assert cpctl("ids", "build-registry", root=artifacts).exit_code == 0
    assert registry.read_bytes() == first
    ids = [row["id"] for row in yaml.safe_load(first)["ids"]]
    assert ids == sorted(ids) and len(ids) == 5


def test_build_registry_check_reports_drift_and_writes_nothing(
    artifacts: Path, cpctl: CliFn
) -> None:
    mint(cpctl, artifacts, "plugins/demo")
    assert cpctl("ids", "build-registry", root=artifacts).exit_code == 0
    registry = artifacts / "ids/registry.yaml"
    registry.write_text(registry.read_text() + "# hand edit\n")
    before = snapshot(artifacts)
    outcome = cpctl("ids", "build-registry", "--check", "--json", root=artifacts)
    assert outcome.exit_code == 1
    assert rules(outcome.json()["findings"]) == {("ids/registry.yaml", "registry-drift")}
    assert snapshot(artifacts) == before


def test_build_registry_refuses_a_store_with_findings(artifacts: Path, cpctl: CliFn) -> None:
    minted = mint(cpctl, artifacts, "plugins/demo")
    (artifacts / minted["card"]).unlink()
    before = snapshot(artifacts)
    outcome = cpctl("ids", "build-registry", "--json", root=artifacts)
    assert outcome.exit_code == 1
    assert outcome.json()["status"] == "refused"
    assert (minted["card"], "card-missing") in rules(outcome.json()["findings"])
    assert snapshot(artifacts) == before


# -- immutability -------------------------------------------------------------------


def test_an_edited_card_is_a_finding(artifacts: Path, cpctl: CliFn) -> None:
    minted = mint(cpctl, artifacts, "plugins/demo")
    card = artifacts / minted["card"]
    card.write_text(card.read_text().replace("kind: plugin", "kind: module"))
    code, findings = validate(cpctl, artifacts)
    assert code == 1
    assert rules(findings) == {(minted["card"], "card-modified")}
    # Still well formed: only the immutability rules catch it.
    assert validate(cpctl, artifacts, "--only", "structure") == (0, [])
    assert validate(cpctl, artifacts, "--only", "immutability")[0] == 1
    text = cpctl("ids", "validate", root=artifacts)
    assert f"{minted['card']}:" in text.stdout and "[card-modified]" in text.stdout


def test_a_deleted_card_is_a_finding(artifacts: Path, cpctl: CliFn) -> None:
    minted = mint(cpctl, artifacts, "plugins/demo")
    (artifacts / minted["card"]).unlink()
    code, findings = validate(cpctl, artifacts)
    assert code == 1
    assert rules(findings) == {(minted["card"], "card-missing")}
    assert "plugins/demo" in findings[0]["message"]


def test_a_card_outliving_its_artifact_is_a_warning(artifacts: Path, cpctl: CliFn) -> None:
    minted = mint(cpctl, artifacts, "plugins/demo")
    shutil.rmtree(artifacts / "plugins/demo")
    outcome = cpctl("ids", "validate", "--json", root=artifacts)
    assert outcome.exit_code == 0, outcome.stderr  # ids are permanent: not a finding
    warning = f"{minted['card']}: its artifact plugins/demo no longer exists"
    assert warning in outcome.json()["warnings"]
    assert warning in outcome.stderr


def test_a_card_not_in_the_ledger_is_a_finding(artifacts: Path, cpctl: CliFn) -> None:
    mint(cpctl, artifacts, "plugins/demo")
    forged = IdCard(
        str(ULID()), "schema", "schemas/mint.in.schema.json", "2026-01-01T00:00:00Z", "x"
    )
    write(artifacts / forged.file, forged.render())
    code, findings = validate(cpctl, artifacts)
    assert code == 1
    assert rules(findings) == {(forged.file, "card-unrecorded")}


def test_two_cards_for_one_artifact(artifacts: Path, cpctl: CliFn) -> None:
    minted = mint(cpctl, artifacts, "plugins/demo")
    copy = IdCard(str(ULID()), "plugin", "plugins/demo", "2026-01-01T00:00:00Z", "mallory")
    write(artifacts / copy.file, copy.render())
    code, findings = validate(cpctl, artifacts)
    assert code == 1
    assert rules(findings) == {(copy.file, "card-unrecorded"), (copy.file, "duplicate-path")}
    duplicate = next(f for f in findings if f["rule"] == "duplicate-path")
    assert minted["card"] in duplicate["message"] and "plugins/demo" in duplicate["message"]


def test_mint_refuses_an_artifact_that_has_a_card(artifacts: Path, cpctl: CliFn) -> None:
    minted = mint(cpctl, artifacts, "plugins/demo")
    before = snapshot(artifacts)
    outcome = cpctl("ids", "mint", "--kind", "plugin", "--path", "plugins/demo/", root=artifacts)
    assert outcome.exit_code == 4
    assert minted["card"] in outcome.stderr and "one artifact per id" in outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1
    assert snapshot(artifacts) == before


def test_a_tampered_ids_ledger_is_a_finding_and_blocks_mint(artifacts: Path, cpctl: CliFn) -> None:
    mint(cpctl, artifacts, "plugins/demo")
    ledger = artifacts / ".ledger/ids.jsonl"
    ledger.write_text(ledger.read_text().replace('"kind":"plugin"', '"kind":"module"'))
    code, findings = validate(cpctl, artifacts)
    assert code == 1
    assert (".ledger/ids.jsonl", "ids-ledger-chain") in rules(findings)
    before = snapshot(artifacts)
    outcome = cpctl(
        "ids", "mint", "--kind", "schema", "--path", "schemas/mint.in.schema.json", root=artifacts
    )
    assert outcome.exit_code == 1
    assert "refusing to mint" in outcome.stderr and ".ledger/ids.jsonl" in outcome.stderr
    assert snapshot(artifacts) == before


def test_a_truncated_ids_ledger_is_caught_by_the_main_ledger(artifacts: Path, cpctl: CliFn) -> None:
    minted = mint(cpctl, artifacts, "plugins/demo")
    (artifacts / ".ledger/ids.jsonl").unlink()
    (artifacts / minted["card"]).unlink()
    code, findings = validate(cpctl, artifacts)
    assert code == 1
    assert rules(findings) == {(".ledger/ids.jsonl", "ids-ledger-truncated")}
    assert minted["id"] in findings[0]["message"]


# -- structure ----------------------------------------------------------------------

GOOD_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
GOOD = {
    "schema": "control-plane.id-card/1",
    "id": GOOD_ID,
    "kind": "plugin",
    "path": "plugins/demo",
    "created": "2026-01-01T00:00:00Z",
    "minted_by": "alice",
}


def _card(**changes: object) -> bytes:
    document = {**GOOD, **changes}
    document = {key: value for key, value in document.items() if value is not None}
    return yaml.safe_dump(document, sort_keys=False).encode()


STRUCTURE_CASES = {
    "malformed-yaml": (f"{GOOD_ID}.yaml", b"id: [unclosed\n  kind: {", "card-yaml"),
    "not-utf8": (f"{GOOD_ID}.yaml", b"\xff\xfe\x00id", "card-yaml"),
    "duplicate-key": (
        f"{GOOD_ID}.yaml",
        _card() + b"kind: module\n",  # a second kind: YAML keys are unique
        "card-yaml",
    ),
    "deep-flow-nesting": (f"{GOOD_ID}.yaml", b"[" * 30000, "card-yaml"),
    "deep-block-nesting": (
        f"{GOOD_ID}.yaml",
        b"a:\n" + b"".join(b" " * depth + b"b:\n" for depth in range(1, 300)),
        "card-yaml",
    ),
    "not-a-mapping": (f"{GOOD_ID}.yaml", b"- just\n- a list\n", "card-schema"),
    "missing-key": (f"{GOOD_ID}.yaml", _card(minted_by=None), "card-schema"),
    "unknown-key": (f"{GOOD_ID}.yaml", _card(extra="x"), "card-schema"),
    "bad-ulid": ("NOTAULID.yaml", _card(id="NOTAULID"), "card-id-format"),
    "lowercase-ulid": (f"{GOOD_ID}.yaml", _card(id=GOOD_ID.lower()), "card-id-format"),
    "unknown-kind": (f"{GOOD_ID}.yaml", _card(kind="plugn"), "card-kind"),
    "absolute-path": (f"{GOOD_ID}.yaml", _card(path="/etc/passwd"), "card-path"),
    "dotdot-path": (f"{GOOD_ID}.yaml", _card(path="plugins/../x"), "card-path"),
    "path-into-ids": (f"{GOOD_ID}.yaml", _card(path="ids/registry.yaml"), "card-path"),
    "unquoted-created": (
        f"{GOOD_ID}.yaml",
        _card().replace(b"'2026-01-01T00:00:00Z'", b"2026-01-01T00:00:00Z"),
        "card-schema",
    ),
    "name-not-id": ("01BX5ZZKBKACTAV9WEVGEMMVRZ.yaml", _card(), "card-filename"),
    "not-yaml-name": ("notes.txt", _card(), "card-filename"),
}


@pytest.mark.parametrize("case", list(STRUCTURE_CASES))
def test_structure_rules(root: Path, cpctl: CliFn, case: str) -> None:
    name, data, rule = STRUCTURE_CASES[case]
    write(root / "plugins" / "demo" / "x", "x\n")
    write(root / "ids" / "cards" / name, data)
    code, findings = validate(cpctl, root, "--only", "structure")
    assert code == 1
    assert (f"ids/cards/{name}", rule) in rules(findings)
    code, findings = validate(cpctl, root)
    assert (f"ids/cards/{name}", "card-unrecorded") in rules(findings)


def test_a_malformed_committed_card_is_a_finding_not_a_traceback(
    artifacts: Path, cpctl: CliFn
) -> None:
    minted = mint(cpctl, artifacts, "plugins/demo")
    (artifacts / minted["card"]).write_bytes(b"id: [\n")
    code, findings = validate(cpctl, artifacts)
    assert code == 1
    assert rules(findings) == {(minted["card"], "card-modified"), (minted["card"], "card-yaml")}
    assert cpctl("ids", "build-registry", root=artifacts).exit_code == 1


def test_a_directory_among_the_cards_is_a_finding(root: Path, cpctl: CliFn) -> None:
    (root / "ids" / "cards" / "sub").mkdir(parents=True)
    code, findings = validate(cpctl, root)
    assert code == 1
    assert rules(findings) == {("ids/cards/sub", "card-not-regular")}


# -- mint refusals ------------------------------------------------------------------


def _refusal_cases(root: Path, outside: Path) -> dict[str, tuple[str, ...]]:
    return {
        "nonexistent": ("--kind", "plugin", "--path", "plugins/nothere"),
        "absolute-outside": ("--kind", "file", "--path", str(outside)),
        "dotdot-outside": ("--kind", "file", "--path", "../outside.txt"),
        "symlink-escape": ("--kind", "file", "--path", "escape"),
        "root-itself": ("--kind", "file", "--path", str(root)),
        "into-ids": ("--kind", "file", "--path", "ids/cards"),
        "unknown-kind": ("--kind", "plugn", "--path", "plugins/demo"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "nonexistent",
        "absolute-outside",
        "dotdot-outside",
        "symlink-escape",
        "root-itself",
        "into-ids",
        "unknown-kind",
    ],
)
def test_mint_refusals_write_nothing(artifacts: Path, cpctl: CliFn, case: str) -> None:
    outside = write(artifacts.parent / "outside.txt", "outside\n")
    (artifacts / "escape").symlink_to(outside)
    (artifacts / "ids" / "cards").mkdir(parents=True)
    before = snapshot(artifacts)
    args = _refusal_cases(artifacts, outside)[case]
    outcome = cpctl("ids", "mint", *args, root=artifacts, cwd=artifacts)
    assert outcome.exit_code == 2, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert snapshot(artifacts) == before


def test_mint_needs_maintainer_or_admin(artifacts: Path, cpctl: CliFn) -> None:
    config = artifacts / "control_plane.toml"
    text = config.read_text().replace('provider = "passthrough"', 'provider = "hmac"')
    users = 'mona = "maintainer"\nrita = "reader"\naudrey = "auditor"\n'
    config.write_text(text.replace("[authz.users]\n", "[authz.users]\n" + users))
    env = {"CONTROL_PLANE_SHARED_SECRET": SECRET}
    args = ("ids", "mint", "--kind", "plugin", "--path", "plugins/demo")
    for user in ("rita", "audrey"):
        before = snapshot(artifacts, include_ledger=False)
        tok = mint_hmac_token(SECRET.encode(), user)
        outcome = cpctl("--token", tok, *args, root=artifacts, env=env)
        assert outcome.exit_code == 3, outcome.stderr
        assert snapshot(artifacts, include_ledger=False) == before
        assert not (artifacts / ".ledger").exists()
        # Readers may still validate.
        assert cpctl("--token", tok, "ids", "validate", root=artifacts, env=env).exit_code == 0
    tok = mint_hmac_token(SECRET.encode(), "mona")
    outcome = cpctl("--token", tok, *args, "--json", root=artifacts, env=env)
    assert outcome.exit_code == 0, outcome.stderr
    card = yaml.safe_load((artifacts / outcome.json()["card"]).read_text())
    assert card["minted_by"] == "mona"


# -- other interfaces ---------------------------------------------------------------


def test_gate_operations_api(artifacts: Path) -> None:
    gate = GateOperations(artifacts, env={})
    minted = gate.ids_mint("plugin", str(artifacts / "plugins" / "demo"))
    assert minted.path == "plugins/demo"
    result = gate.ids_validate()
    assert result.ok and result.cards == 1 and result.recorded == 1
    assert gate.ids_build_registry().to_json()["status"] == "written"
    assert gate.ids_build_registry(check=True).ok


@pytest.mark.parametrize(
    ("script", "expected"),
    [("ensure_immutability", 1), ("validate_structure", 0), ("build_registry", 1)],
)
def test_scripts_wrap_the_commands(
    artifacts: Path, cpctl: CliFn, script: str, expected: int
) -> None:
    minted = mint(cpctl, artifacts, "plugins/demo")
    card = artifacts / minted["card"]
    card.write_text(card.read_text().replace("kind: plugin", "kind: module"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROL_PLANE_")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "ids" / f"{script}.py"), "--root", str(artifacts)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == expected, done.stderr
    assert "Traceback" not in done.stderr
    if expected:
        assert minted["card"] in done.stdout


def test_registry_check_passes_again_after_copying_the_root(
    artifacts: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    """Paths and bytes are root-relative: a clone of the root validates as it is."""
    mint(cpctl, artifacts, "plugins/demo")
    assert cpctl("ids", "build-registry", root=artifacts).exit_code == 0
    clone = tmp_path / "clone"
    shutil.copytree(artifacts, clone, ignore=shutil.ignore_patterns(".control_plane"))
    assert validate(cpctl, clone) == (0, [])
    assert cpctl("ids", "build-registry", "--check", root=clone).exit_code == 0


# -- crash safety -------------------------------------------------------------------


class Crash(BaseException):
    """Stands in for SIGKILL: nothing after it runs, not even the transaction's abort."""


@pytest.mark.parametrize("moment", ["after-card-written", "after-commit-point"])
def test_an_interrupted_mint_leaves_before_or_after(
    artifacts: Path, cpctl: CliFn, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    from control_plane import transaction

    before = snapshot(artifacts, include_ledger=False)
    applied: list[Path] = []
    real_apply = transaction._apply

    def apply(op: transaction._Op) -> None:
        real_apply(op)
        applied.append(op.target)
        if moment == "after-card-written" and len(applied) == 1:
            raise Crash

    def finish(*args: object) -> None:
        raise Crash

    monkeypatch.setattr(transaction, "_apply", apply)
    if moment == "after-commit-point":
        monkeypatch.setattr(transaction, "_finish_committed", finish)
    monkeypatch.setattr(transaction.Transaction, "abort", lambda self: None)
    with pytest.raises(Crash):
        GateOperations(artifacts, env={}).ids_mint("plugin", "plugins/demo")
    monkeypatch.undo()
    # The next command recovers first: back to before, or forward to a complete mint.
    code, findings = validate(cpctl, artifacts)
    assert (code, findings) == (0, [])
    cards = list((artifacts / "ids" / "cards").glob("*.yaml"))
    if moment == "after-card-written":
        assert cards == []
        assert snapshot(artifacts, include_ledger=False) == before
    else:
        assert len(cards) == 1 and len(ids_ledger(artifacts)) == 1
        mints = [entry for entry in main_ledger(artifacts) if entry["action"] == "ids-mint"]
        assert [entry["txn"] for entry in mints] == [ids_ledger(artifacts)[0]["txn"]]
    assert cpctl("ledger", "verify", root=artifacts).exit_code == 0
