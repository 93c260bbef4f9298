"""Ledger tampering, checkpoints, --against and proofs, through the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliFn, snapshot, write
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymerkle import InmemoryTree
from pymerkle import verify_inclusion as pymerkle_verify_inclusion

from control_plane.checkpoints import public_pem, sign_checkpoint
from control_plane.jsoncanon import canonical_json
from control_plane.ledger import GENESIS, entry_hash
from control_plane.merkle import leaf_hash


@pytest.fixture
def busy(root: Path, cpctl: CliFn, tmp_path: Path) -> Path:
    """A root with five ledger entries and the checkpoint saved after them."""
    write(root / "docs" / "a.md", "a\n")
    assert cpctl("pack", "--src", "docs", "--id", "PKG-A", root=root, cwd=root).exit_code == 0
    assert cpctl("install", "--id", "PKG-A", root=root).exit_code == 0
    assert cpctl("remove", "--id", "PKG-A", root=root).exit_code == 0
    assert cpctl("install", "--id", "PKG-A", root=root).exit_code == 0
    saved = cpctl("ledger", "checkpoint", root=root)
    assert saved.exit_code == 0, saved.stderr
    (tmp_path / "saved.json").write_text(saved.stdout)
    return root


def lines(root: Path) -> list[bytes]:
    return (root / "ledger" / "ledger.jsonl").read_bytes().splitlines()


def put(root: Path, rows: list[bytes]) -> None:
    (root / "ledger" / "ledger.jsonl").write_bytes(b"".join(row + b"\n" for row in rows))


def edit_field(root: Path) -> None:
    rows = lines(root)
    rows[2] = rows[2].replace(b'"target":"PKG-A"', b'"target":"PKG-Z"')
    put(root, rows)


def delete_line(root: Path) -> None:
    rows = lines(root)
    del rows[2]
    put(root, rows)


def swap_lines(root: Path) -> None:
    rows = lines(root)
    rows[1], rows[2] = rows[2], rows[1]
    put(root, rows)


def truncate_tail(root: Path) -> None:
    put(root, lines(root)[:-1])


def rechain(rows: list[dict[str, object]]) -> list[bytes]:
    previous = GENESIS
    out = []
    for seq, row in enumerate(rows):
        fields = {**row, "seq": seq, "prev": previous}
        fields["hash"] = entry_hash(fields)
        previous = str(fields["hash"])
        out.append(canonical_json(fields))
    return out


def recompute_every_hash(root: Path) -> None:
    rows = [json.loads(row) for row in lines(root)]
    rows[1]["actor"] = "mallory"
    put(root, rechain(rows))


def forge_append(root: Path) -> None:
    rows = [json.loads(row) for row in lines(root)]
    rows.append({**rows[-1], "action": "install", "target": "PKG-EVIL"})
    put(root, rechain(rows))


def other_key_checkpoints(root: Path) -> None:
    key = Ed25519PrivateKey.generate()
    book = root / "ledger" / "checkpoints.jsonl"
    forged = []
    for row in book.read_bytes().splitlines():
        old = json.loads(row)
        cp = sign_checkpoint(key, old["tree_size"], bytes.fromhex(old["root_hash"]), old["time"])
        forged.append(cp.encode())
    book.write_bytes(b"".join(row + b"\n" for row in forged))


def duplicate_key(root: Path) -> None:
    rows = lines(root)
    rows[0] = rows[0][:-1] + b',"v":1}'
    put(root, rows)


def nan_value(root: Path) -> None:
    rows = lines(root)
    rows[0] = rows[0].replace(b'"v":1', b'"v":NaN')
    put(root, rows)


def trailing_data(root: Path) -> None:
    rows = lines(root)
    rows[0] = rows[0] + b" {}"
    put(root, rows)


TAMPER: list[tuple[str, Callable[[Path], None], str]] = [
    ("field-edited", edit_field, "hash does not match"),
    ("line-deleted", delete_line, "expected seq 2"),
    ("lines-swapped", swap_lines, "expected seq 1"),
    ("tail-truncated", truncate_tail, "entries were removed"),
    ("forged-append", forge_append, "not covered by a signed checkpoint"),
    ("hashes-recomputed", recompute_every_hash, "do not match the signed checkpoint"),
    ("checkpoints-other-key", other_key_checkpoints, "not the root's ledger key"),
    ("duplicate-key", duplicate_key, "duplicate key"),
    ("nan", nan_value, "NaN is not allowed"),
    ("trailing-data", trailing_data, "invalid JSON"),
]


@pytest.mark.parametrize(
    ("tamper", "message"), [(t, m) for _, t, m in TAMPER], ids=[i for i, _, _ in TAMPER]
)
def test_ledger_tampering_is_caught(
    busy: Path, cpctl: CliFn, tamper: Callable[[Path], None], message: str
) -> None:
    assert cpctl("ledger", "verify", root=busy).exit_code == 0
    tamper(busy)
    outcome = cpctl("ledger", "verify", root=busy)
    assert outcome.exit_code == 1, outcome.stderr
    assert message in outcome.stderr
    assert outcome.stderr.count("\n") == 1  # one line


def test_recomputed_history_is_caught_by_the_saved_checkpoint(
    busy: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    recompute_every_hash(busy)
    (busy / "ledger" / "checkpoints.jsonl").unlink()  # hide the root's own checkpoints too
    outcome = cpctl("ledger", "verify", "--against", str(tmp_path / "saved.json"), root=busy)
    assert outcome.exit_code == 1
    assert "do not match the saved checkpoint" in outcome.stderr


def test_rollback_is_caught_by_the_saved_checkpoint(
    busy: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(busy / "ledger", old)
    assert cpctl("remove", "--id", "PKG-A", root=busy).exit_code == 0
    newer = cpctl("ledger", "checkpoint", root=busy)
    (tmp_path / "newer.json").write_text(newer.stdout)
    shutil.rmtree(busy / "ledger")
    shutil.copytree(old, busy / "ledger")
    assert cpctl("ledger", "verify", root=busy).exit_code == 0  # self-consistent, but older
    outcome = cpctl("ledger", "verify", "--against", str(tmp_path / "newer.json"), root=busy)
    assert outcome.exit_code == 1
    assert "rolled back" in outcome.stderr


def test_replaced_key_is_caught_by_the_saved_checkpoint(
    busy: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    (busy / "ledger" / "ledger.pub").write_bytes(public_pem(key.public_key()))
    other_key_checkpoints(busy)  # a consistent forgery under the attacker's key
    outcome = cpctl("ledger", "verify", "--against", str(tmp_path / "saved.json"), root=busy)
    assert outcome.exit_code == 1
    assert "the key was replaced" in outcome.stderr


def test_half_written_line_is_repaired_with_a_message(busy: Path, cpctl: CliFn) -> None:
    with (busy / "ledger" / "ledger.jsonl").open("ab") as handle:
        handle.write(b'{"action":"inst')
    outcome = cpctl("ledger", "verify", root=busy)
    assert outcome.exit_code == 0
    assert "partly written" in outcome.stderr


def test_proofs_verify_offline_and_with_a_third_party_verifier(
    busy: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    before = snapshot(busy)
    inclusion = cpctl("ledger", "prove", "--seq", "2", root=busy)
    consistency = cpctl("ledger", "prove", "--from-size", "2", root=busy)
    assert inclusion.exit_code == consistency.exit_code == 0
    assert snapshot(busy) == before
    (tmp_path / "inc.json").write_text(inclusion.stdout)
    (tmp_path / "con.json").write_text(consistency.stdout)
    key = tmp_path / "ledger.pub"
    shutil.copy(busy / "ledger" / "ledger.pub", key)
    saved = str(tmp_path / "saved.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for proof in ("inc.json", "con.json"):
        outcome = cpctl(
            "ledger", "verify-proof", str(tmp_path / proof), saved, "--key", str(key), cwd=elsewhere
        )
        assert outcome.exit_code == 0, outcome.stderr

    # A third party: RFC 9162 section 2.1.3.2 in a few lines, and pymerkle's own verifier.
    doc = json.loads(inclusion.stdout)
    h = hashlib.sha256
    fn, sn, r = doc["leaf_index"], doc["tree_size"] - 1, h(b"\0" + doc["entry"].encode()).digest()
    for p in map(bytes.fromhex, doc["inclusion_path"]):
        if fn & 1 or fn == sn:
            r = h(b"\1" + p + r).digest()
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = h(b"\1" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0 and r.hex() == json.loads((tmp_path / "saved.json").read_text())["root_hash"]
    tree = InmemoryTree.init_from_entries(lines(busy))
    pymerkle_proof = tree.prove_inclusion(doc["leaf_index"] + 1, doc["tree_size"])
    pymerkle_verify_inclusion(
        leaf_hash(lines(busy)[2]), bytes.fromhex(doc["root_hash"]), pymerkle_proof
    )


def _mutate(path: Path, change: Callable[[dict[str, object]], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


BAD_PROOFS: list[tuple[str, Callable[[dict[str, object]], None], int]] = [
    (
        "path-hash-changed",
        lambda d: d.update(inclusion_path=["00" * 32, *d["inclusion_path"][1:]]),
        1,
    ),  # type: ignore[misc]
    ("wrong-index", lambda d: d.update(leaf_index=1), 1),
    ("wrong-size", lambda d: d.update(tree_size=4), 1),
    ("entry-changed", lambda d: d.update(entry=str(d["entry"]).replace("PKG-A", "PKG-B")), 1),
    ("unknown-schema", lambda d: d.update(schema="x/1"), 2),
    ("extra-key", lambda d: d.update(extra=1), 2),
]


@pytest.mark.parametrize(
    ("change", "code"), [(c, k) for _, c, k in BAD_PROOFS], ids=[i for i, _, _ in BAD_PROOFS]
)
def test_bad_proofs_are_rejected(
    busy: Path, cpctl: CliFn, tmp_path: Path, change: Callable[[dict[str, object]], None], code: int
) -> None:
    proof = tmp_path / "proof.json"
    proof.write_text(cpctl("ledger", "prove", "--seq", "2", root=busy).stdout)
    _mutate(proof, change)
    outcome = cpctl("ledger", "verify-proof", str(proof), str(tmp_path / "saved.json"), root=busy)
    assert outcome.exit_code == code, outcome.stderr


def test_proof_against_a_checkpoint_of_another_size_is_rejected(
    busy: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    proof = tmp_path / "proof.json"
    proof.write_text(cpctl("ledger", "prove", "--seq", "0", "--to-size", "3", root=busy).stdout)
    outcome = cpctl("ledger", "verify-proof", str(proof), str(tmp_path / "saved.json"), root=busy)
    assert outcome.exit_code == 1
    assert "tree size 3" in outcome.stderr


def test_mutating_without_the_signing_key_writes_nothing(busy: Path, cpctl: CliFn) -> None:
    (busy / ".control_plane" / "ledger.key").unlink()
    before = snapshot(busy)
    outcome = cpctl("remove", "--id", "PKG-A", root=busy)
    assert outcome.exit_code == 2
    assert "ledger signing key is missing" in outcome.stderr
    assert snapshot(busy) == before


def test_an_exposed_signing_key_is_refused(busy: Path, cpctl: CliFn) -> None:
    (busy / ".control_plane" / "ledger.key").chmod(0o644)
    before = snapshot(busy)
    outcome = cpctl("remove", "--id", "PKG-A", root=busy)
    assert outcome.exit_code == 2
    assert "chmod 600" in outcome.stderr
    assert snapshot(busy) == before


def test_init_keys_a_root_that_had_none(busy: Path, cpctl: CliFn) -> None:
    (busy / ".control_plane" / "ledger.key").unlink()
    (busy / "ledger" / "ledger.pub").unlink()
    (busy / "ledger" / "checkpoints.jsonl").unlink()
    assert cpctl("ledger", "verify", root=busy).exit_code == 1
    assert cpctl("remove", "--id", "PKG-A", root=busy).exit_code == 2
    assert cpctl("init", root=busy).exit_code == 0
    assert (busy / ".control_plane" / "ledger.key").stat().st_mode & 0o777 == 0o600
    assert cpctl("ledger", "verify", root=busy).exit_code == 0
