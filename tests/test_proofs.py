"""`cpctl ledger prove` and `ledger verify-proof`: exported proofs verify with our command and with
a few lines of independent RFC 9162 code (hashlib and cryptography only); altered proofs and
checkpoints are rejected (exit 1); malformed ones are usage errors (exit 2)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CliFn
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ENTRIES = 5
PUBLIC_KEY = Path("ledger") / "ledger.pub"

# --- a third party's verifier: RFC 9162 2.1.3.2 and 2.1.4.2, nothing of ours -----------------


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def rfc_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def rfc_consistency(m: int, n: int, old: bytes, new: bytes, path: list[bytes]) -> bool:
    if m == n:
        return not path and old == new
    if not 0 < m < n or not path:
        return False
    if m & (m - 1) == 0:
        path = [old, *path]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old and sr == new


def checkpoint_is_signed(checkpoint: dict[str, Any], public_pem: bytes) -> bool:
    key = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, Ed25519PublicKey)
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    message = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        key.verify(base64.b64decode(checkpoint["signature"]), message.encode())
    except InvalidSignature:
        return False
    return True


def third_party_accepts(proof: dict[str, Any], checkpoint: dict[str, Any], pem: bytes) -> bool:
    """Everything an auditor with the proof, the checkpoint and the public key can check."""
    if not checkpoint_is_signed(checkpoint, pem):
        return False
    hexes = [bytes.fromhex(h) for h in proof.get("inclusion_path", proof.get("consistency_path"))]
    if "entry" in proof:
        entry = proof["entry"].encode()
        fields = json.loads(entry)
        body = {k: v for k, v in fields.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        leaf = hashlib.sha256(b"\x00" + entry).digest()
        return (
            hashlib.sha256(canonical.encode()).hexdigest() == fields["hash"]
            and fields["seq"] == proof["leaf_index"]
            and proof["tree_size"] == checkpoint["tree_size"]
            and proof["root_hash"] == checkpoint["root_hash"]
            and rfc_inclusion(
                proof["leaf_index"],
                proof["tree_size"],
                leaf,
                hexes,
                bytes.fromhex(proof["root_hash"]),
            )
        )
    return (
        proof["tree_size_2"] == checkpoint["tree_size"]
        and proof["root_hash_2"] == checkpoint["root_hash"]
        and rfc_consistency(
            proof["tree_size_1"],
            proof["tree_size_2"],
            bytes.fromhex(proof["root_hash_1"]),
            bytes.fromhex(proof["root_hash_2"]),
            hexes,
        )
    )


# --- a root with history ------------------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    root: Path
    early: Path  # checkpoint at 2 entries
    newest: Path  # checkpoint at ENTRIES entries
    pem: bytes


@pytest.fixture
def saved(packed: Path, cpctl: CliFn, tmp_path: Path) -> Saved:
    early = tmp_path / "early.json"
    early.write_text(cpctl("ledger", "checkpoint", root=packed).stdout)
    for args in (("install",), ("remove",), ("install",)):
        assert cpctl(*args, "--id", "PKG-DOCS", root=packed).exit_code == 0
    newest = tmp_path / "newest.json"
    newest.write_text(cpctl("ledger", "checkpoint", root=packed).stdout)
    assert json.loads(early.read_text())["tree_size"] == 2
    assert json.loads(newest.read_text())["tree_size"] == ENTRIES
    return Saved(packed, early, newest, (packed / PUBLIC_KEY).read_bytes())


def prove(cpctl: CliFn, root: Path, *args: str) -> dict[str, Any]:
    outcome = cpctl("ledger", "prove", *args, root=root)
    assert outcome.exit_code == 0, outcome.stderr
    document: dict[str, Any] = json.loads(outcome.stdout)
    return document


def dump(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


# --- proofs that hold ------------------------------------------------------------------------


@pytest.mark.parametrize("seq", range(ENTRIES))
def test_inclusion_proofs_verify_with_cpctl_and_independently(
    saved: Saved, cpctl: CliFn, tmp_path: Path, seq: int
) -> None:
    proof = prove(cpctl, saved.root, "--seq", str(seq))
    assert (proof["leaf_index"], proof["tree_size"]) == (seq, ENTRIES)
    outcome = cpctl(
        "ledger",
        "verify-proof",
        str(dump(tmp_path / "p.json", proof)),
        str(saved.newest),
        root=saved.root,
    )
    assert outcome.exit_code == 0, outcome.stderr
    assert f"ledger entry {seq} is in the signed tree of size {ENTRIES}" in outcome.stdout
    assert third_party_accepts(proof, load(saved.newest), saved.pem)


@pytest.mark.parametrize("old", range(1, ENTRIES + 1))
def test_consistency_proofs_verify_with_cpctl_and_independently(
    saved: Saved, cpctl: CliFn, tmp_path: Path, old: int
) -> None:
    proof = prove(cpctl, saved.root, "--from-size", str(old))
    assert (proof["tree_size_1"], proof["tree_size_2"]) == (old, ENTRIES)
    outcome = cpctl(
        "ledger",
        "verify-proof",
        str(dump(tmp_path / "p.json", proof)),
        str(saved.newest),
        "--json",
        root=saved.root,
    )
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["kind"] == "consistency"
    assert third_party_accepts(proof, load(saved.newest), saved.pem)


def test_an_auditors_old_checkpoint_is_a_prefix_of_the_new_one(
    saved: Saved, cpctl: CliFn, tmp_path: Path
) -> None:
    early = load(saved.early)
    proof = prove(cpctl, saved.root, "--from-size", "2")
    assert proof["root_hash_1"] == early["root_hash"]  # what the auditor signed off earlier
    assert third_party_accepts(proof, load(saved.newest), saved.pem)
    # a proof in the tree the early checkpoint signed verifies against it
    old = prove(cpctl, saved.root, "--seq", "1", "--to-size", "2")
    path = dump(tmp_path / "old.json", old)
    assert (
        cpctl("ledger", "verify-proof", str(path), str(saved.early), root=saved.root).exit_code == 0
    )
    assert third_party_accepts(old, early, saved.pem)


def test_a_proof_against_a_checkpoint_of_another_size_is_rejected(
    saved: Saved, cpctl: CliFn, tmp_path: Path
) -> None:
    proof = dump(tmp_path / "p.json", prove(cpctl, saved.root, "--seq", "0"))
    outcome = cpctl("ledger", "verify-proof", str(proof), str(saved.early), root=saved.root)
    assert outcome.exit_code == 1
    assert f"it is for tree size {ENTRIES}, the checkpoint is for 2" in outcome.stderr


def test_verify_proof_works_outside_any_root_with_a_key(
    saved: Saved, cpctl: CliFn, tmp_path: Path
) -> None:
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    proof = dump(auditor / "proof.json", prove(cpctl, saved.root, "--seq", "3"))
    shutil.copy(saved.newest, auditor / "checkpoint.json")
    shutil.copy(saved.root / PUBLIC_KEY, auditor / "ledger.pub")
    args = ("ledger", "verify-proof", proof.name, "checkpoint.json")
    outcome = cpctl(*args, "--key", "ledger.pub", cwd=auditor)
    assert outcome.exit_code == 0, outcome.stderr
    missing = cpctl(*args, cwd=auditor)
    assert missing.exit_code == 2 and "no public key" in missing.stderr
    other = Ed25519PrivateKey.generate().public_key()
    (auditor / "other.pub").write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    wrong = cpctl(*args, "--key", "other.pub", cwd=auditor)
    assert wrong.exit_code == 1 and "not the root's ledger key" in wrong.stderr


# --- proofs and checkpoints that do not hold (exit 1) ------------------------------------------


def _flip(value: str) -> str:
    return ("0" if value[0] != "0" else "1") + value[1:]


Change = Callable[[dict[str, Any]], None]


def _set(key: str, value: object) -> Change:
    return lambda proof: proof.__setitem__(key, value)


def _shift(key: str, by: int) -> Change:
    return lambda proof: proof.__setitem__(key, proof[key] + by)


def _flip_path(key: str, position: int) -> Change:
    return lambda proof: proof[key].__setitem__(position, _flip(proof[key][position]))


def _forge_entry(proof: dict[str, Any]) -> None:
    entry = proof["entry"].replace('"result":"ok"', '"result":"denied"')
    assert entry != proof["entry"]
    proof["entry"] = entry
    proof["leaf_hash"] = hashlib.sha256(b"\x00" + entry.encode()).hexdigest()


INCLUSION_TAMPERING: dict[str, tuple[Change, str]] = {
    "path-hash-changed": (_flip_path("inclusion_path", 0), "does not lead to the root"),
    "last-path-hash-changed": (_flip_path("inclusion_path", -1), "does not lead to the root"),
    "wrong-index": (_shift("leaf_index", 1), "proof rejected"),
    "index-beyond-tree": (_set("leaf_index", ENTRIES), "no leaf 5 in a tree of size 5"),
    "wrong-size": (_shift("tree_size", -1), "it is for tree size 4, the checkpoint is for 5"),
    "entry-edited": (
        lambda proof: proof.__setitem__("entry", proof["entry"].replace("ok", "no")),
        "leaf_hash is not the hash of entry",
    ),
    "entry-and-leaf-hash-forged": (_forge_entry, "does not lead to the root"),
    "root-changed": (
        lambda proof: proof.__setitem__("root_hash", _flip(proof["root_hash"])),
        "not the checkpoint's root",
    ),
    "path-extended": (
        lambda proof: proof["inclusion_path"].append(proof["inclusion_path"][0]),
        "longer than the tree is deep",
    ),
    "path-shortened": (
        lambda proof: proof["inclusion_path"].pop(),
        "shorter than the tree is deep",
    ),
}

CONSISTENCY_TAMPERING: dict[str, tuple[Change, str]] = {
    "path-hash-changed": (_flip_path("consistency_path", 0), "consistency proof rejected"),
    "old-size-changed": (_shift("tree_size_1", 1), "consistency proof rejected"),
    "old-root-changed": (
        lambda proof: proof.__setitem__("root_hash_1", _flip(proof["root_hash_1"])),
        "old root of size 3 differs",
    ),
    "new-root-changed": (
        lambda proof: proof.__setitem__("root_hash_2", _flip(proof["root_hash_2"])),
        "not the checkpoint's root",
    ),
    "path-emptied": (_set("consistency_path", []), "empty proof"),
}


@pytest.mark.parametrize(
    ("kind", "case"),
    [("inclusion", case) for case in INCLUSION_TAMPERING]
    + [("consistency", case) for case in CONSISTENCY_TAMPERING],
    ids=[f"inclusion-{case}" for case in INCLUSION_TAMPERING]
    + [f"consistency-{case}" for case in CONSISTENCY_TAMPERING],
)
def test_an_altered_proof_is_rejected(
    saved: Saved, cpctl: CliFn, tmp_path: Path, kind: str, case: str
) -> None:
    if kind == "inclusion":
        change, message = INCLUSION_TAMPERING[case]
        original = prove(cpctl, saved.root, "--seq", "2")
    else:
        change, message = CONSISTENCY_TAMPERING[case]
        original = prove(cpctl, saved.root, "--from-size", "3")
    proof = copy.deepcopy(original)
    change(proof)
    assert proof != original
    path = dump(tmp_path / "p.json", proof)
    outcome = cpctl("ledger", "verify-proof", str(path), str(saved.newest), root=saved.root)
    assert outcome.exit_code == 1, outcome.stderr
    assert message in outcome.stderr
    assert not third_party_accepts(proof, load(saved.newest), saved.pem)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.__setitem__("root_hash", _flip(c["root_hash"])),
        lambda c: c.__setitem__("tree_size", c["tree_size"] + 1),
        lambda c: c.__setitem__("time", "2030-01-01T00:00:00Z"),
        lambda c: c.__setitem__("signature", base64.b64encode(b"\0" * 64).decode()),
    ],
    ids=["root", "size", "time", "signature"],
)
def test_an_altered_checkpoint_is_rejected(
    saved: Saved, cpctl: CliFn, tmp_path: Path, change: Change
) -> None:
    proof = dump(tmp_path / "p.json", prove(cpctl, saved.root, "--seq", "0"))
    checkpoint = load(saved.newest)
    change(checkpoint)
    path = dump(tmp_path / "c.json", checkpoint)
    outcome = cpctl("ledger", "verify-proof", str(proof), str(path), root=saved.root)
    assert outcome.exit_code == 1
    assert "signature does not verify" in outcome.stderr
    assert not checkpoint_is_signed(checkpoint, saved.pem)


# --- malformed input (exit 2) -----------------------------------------------------------------


MALFORMED_PROOFS: dict[str, Callable[[dict[str, Any]], object] | bytes] = {
    "not-json": b"{not json",
    "truncated": b'{"schema": "control-plane.inclusion-proof/1"',
    "duplicate-key": b'{"schema":"x","schema":"y"}',
    "nan": b'{"schema":NaN}',
    "trailing-data": b"{} {}",
    "array": b"[]",
    "not-utf8": b'{"schema":"\xff"}',
    "unknown-schema": lambda p: {**p, "schema": "control-plane.inclusion-proof/9"},
    "missing-key": lambda p: {k: v for k, v in p.items() if k != "leaf_hash"},
    "extra-key": lambda p: {**p, "comment": "trust me"},
    "sha1": lambda p: {**p, "hash_algorithm": "sha1"},
    "negative-index": lambda p: {**p, "leaf_index": -1},
    "boolean-size": lambda p: {**p, "tree_size": True},
    "string-index": lambda p: {**p, "leaf_index": "2"},
    "path-not-a-list": lambda p: {**p, "inclusion_path": "00"},
    "short-hash": lambda p: {**p, "inclusion_path": ["00" * 31]},
    "upper-case-hash": lambda p: {**p, "root_hash": p["root_hash"].upper()},
    "entry-not-a-string": lambda p: {**p, "entry": {"seq": 2}},
}


@pytest.mark.parametrize("case", list(MALFORMED_PROOFS), ids=list(MALFORMED_PROOFS))
def test_a_malformed_proof_is_a_usage_error(
    saved: Saved, cpctl: CliFn, tmp_path: Path, case: str
) -> None:
    make = MALFORMED_PROOFS[case]
    path = tmp_path / "p.json"
    if isinstance(make, bytes):
        path.write_bytes(make)
    else:
        dump(path, make(prove(cpctl, saved.root, "--seq", "2")))
    outcome = cpctl("ledger", "verify-proof", str(path), str(saved.newest), root=saved.root)
    assert outcome.exit_code == 2, outcome.stderr
    assert outcome.stderr.startswith("cpctl: error: ") and "proof" in outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "content",
    [b"", b"{}", b"not json", b'{"tree_size": 1}', b'{"a":1,"a":2}'],
    ids=["empty", "empty-object", "not-json", "missing-keys", "duplicate-key"],
)
def test_a_malformed_checkpoint_is_a_usage_error(
    saved: Saved, cpctl: CliFn, tmp_path: Path, content: bytes
) -> None:
    proof = dump(tmp_path / "p.json", prove(cpctl, saved.root, "--seq", "0"))
    checkpoint = tmp_path / "c.json"
    checkpoint.write_bytes(content)
    outcome = cpctl("ledger", "verify-proof", str(proof), str(checkpoint), root=saved.root)
    assert outcome.exit_code == 2, outcome.stderr
    verify = cpctl("ledger", "verify", "--against", str(checkpoint), root=saved.root)
    assert verify.exit_code == 2, verify.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--seq", "5"),
        ("--seq", "0", "--to-size", "6"),
        ("--from-size", "6"),
        ("--from-size", "4", "--to-size", "3"),
        ("--seq", "0", "--from-size", "1"),
        (),
    ],
    ids=["seq-beyond", "to-size-beyond", "from-size-beyond", "sizes-reversed", "both", "neither"],
)
def test_prove_refuses_impossible_requests(
    saved: Saved, cpctl: CliFn, args: tuple[str, ...]
) -> None:
    outcome = cpctl("ledger", "prove", *args, root=saved.root)
    assert outcome.exit_code == 2, outcome.stderr
    assert outcome.stdout == ""
