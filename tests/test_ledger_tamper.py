"""Tampering with the ledger, its checkpoints and its keys, through ``cpctl``: each case exits 1
with a message naming what changed; crash leftovers are repaired with a message; the ledger key
is required, private and never replaced behind the auditor's back; read-only commands write
nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CliFn, snapshot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control_plane import ledger_audit
from control_plane.checkpoints import public_pem, sign_checkpoint
from control_plane.ledger import GENESIS, canonical_json, entry_hash, strict_loads
from control_plane.merkle import MerkleFrontier, leaf_hash

LEDGER = Path("ledger") / "ledger.jsonl"
CHECKPOINTS = Path("ledger") / "checkpoints.jsonl"
PUBLIC_KEY = Path("ledger") / "ledger.pub"
PRIVATE_KEY = Path(".control_plane") / "ledger.key"
ENTRIES = 5  # init, pack, install, remove, install


@dataclass(frozen=True)
class History:
    """A root with ENTRIES ledger entries, what an auditor saved, and an older copy."""

    root: Path
    saved: Path  # `cpctl ledger checkpoint` output at ENTRIES entries
    older: Path  # ledger.jsonl and checkpoints.jsonl after the first two entries


@pytest.fixture
def history(packed: Path, cpctl: CliFn, tmp_path: Path) -> History:
    older = tmp_path / "older"
    older.mkdir()
    for name in (LEDGER, CHECKPOINTS):
        shutil.copy2(packed / name, older / name.name)
    for args in (("install",), ("remove",), ("install",)):
        outcome = cpctl(*args, "--id", "PKG-DOCS", root=packed)
        assert outcome.exit_code == 0, outcome.stderr
    outcome = cpctl("ledger", "checkpoint", root=packed)
    assert outcome.exit_code == 0, outcome.stderr
    saved = tmp_path / "saved.json"
    saved.write_text(outcome.stdout)
    assert json.loads(outcome.stdout)["tree_size"] == ENTRIES
    assert cpctl("ledger", "verify", "--against", str(saved), root=packed).exit_code == 0
    return History(packed, saved, older)


# --- helpers an attacker would write ------------------------------------------------------------


def read_lines(root: Path, name: Path = LEDGER) -> list[bytes]:
    return (root / name).read_bytes().splitlines()


def write_lines(root: Path, lines: list[bytes], name: Path = LEDGER) -> None:
    (root / name).write_bytes(b"".join(line + b"\n" for line in lines))


def read_if_present(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def edited(line: bytes, **changes: object) -> bytes:
    """The entry with some fields changed, canonically encoded, its hash left as it was."""
    fields = strict_loads(line)
    fields.update(changes)
    return canonical_json(fields)


def rechained(lines: list[bytes], start: int) -> list[bytes]:
    """Recompute ``hash`` and ``prev`` of every entry from ``start`` on, as a careful forger would."""
    result = list(lines)
    prev = GENESIS if start == 0 else strict_loads(result[start - 1])["hash"]
    for position in range(start, len(result)):
        fields = strict_loads(result[position])
        fields["prev"] = prev
        fields["hash"] = prev = entry_hash(fields)
        result[position] = canonical_json(fields)
    return result


def checkpoints_signed_by(key: Ed25519PrivateKey, lines: list[bytes]) -> list[bytes]:
    """One valid checkpoint per entry over ``lines``, signed by ``key``."""
    frontier, result = MerkleFrontier(), []
    for line in lines:
        frontier.append(leaf_hash(line))
        checkpoint = sign_checkpoint(key, frontier.size, frontier.root(), "2026-01-01T00:00:00Z")
        result.append(checkpoint.encode())
    return result


# --- the tamper table ---------------------------------------------------------------------------


def _edit_field(h: History) -> None:
    lines = read_lines(h.root)
    lines[2] = edited(lines[2], actor="mallory")
    write_lines(h.root, lines)


def _delete_line(h: History) -> None:
    lines = read_lines(h.root)
    del lines[2]
    write_lines(h.root, lines)


def _swap_lines(h: History) -> None:
    lines = read_lines(h.root)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(h.root, lines)


def _truncate_tail(h: History) -> None:
    write_lines(h.root, read_lines(h.root)[:-1])


def _append_forged(h: History) -> None:
    lines = read_lines(h.root)
    last = strict_loads(lines[-1])
    forged = {**last, "seq": last["seq"] + 1, "prev": last["hash"], "action": "hash_update"}
    forged["hash"] = entry_hash(forged)
    write_lines(h.root, [*lines, canonical_json(forged)])


def _rehash_after_edit(h: History) -> None:
    lines = read_lines(h.root)
    lines[2] = edited(lines[2], actor="mallory")
    write_lines(h.root, rechained(lines, 2))


def _rehash_and_drop_checkpoints(h: History) -> None:
    _rehash_after_edit(h)
    (h.root / CHECKPOINTS).unlink()


def _checkpoints_by_another_key(h: History) -> None:
    attacker = Ed25519PrivateKey.generate()
    write_lines(h.root, checkpoints_signed_by(attacker, read_lines(h.root)), CHECKPOINTS)


def _rewrite_with_the_attackers_key(h: History) -> None:
    """A fork that verifies on its own: new history, new key, new checkpoints."""
    attacker = Ed25519PrivateKey.generate()
    lines = read_lines(h.root)
    lines[2] = edited(lines[2], actor="mallory")
    lines = rechained(lines, 2)
    write_lines(h.root, lines)
    write_lines(h.root, checkpoints_signed_by(attacker, lines), CHECKPOINTS)
    (h.root / PUBLIC_KEY).write_bytes(public_pem(attacker.public_key()))


def _roll_back(h: History) -> None:
    for name in (LEDGER, CHECKPOINTS):
        shutil.copy2(h.older / name.name, h.root / name)


def _replace_line(new: Callable[[bytes], bytes] | bytes) -> Callable[[History], None]:
    """Replace ledger line 2 (entry 1) with ``new`` or with what ``new`` makes of it."""

    def tamper(h: History) -> None:
        lines = read_lines(h.root)
        lines[1] = new(lines[1]) if callable(new) else new
        write_lines(h.root, lines)

    return tamper


def _duplicate_key(line: bytes) -> bytes:
    return line[:-1] + b',"actor":"mallory"}'


def _nan(line: bytes) -> bytes:
    return line.replace(b'"v":1', b'"v":NaN')


def _infinity(line: bytes) -> bytes:
    return line.replace(b'"v":1', b'"v":Infinity')


def _trailing(line: bytes) -> bytes:
    return line + b" {}"


def _spaced(line: bytes) -> bytes:
    return line.replace(b'","', b'", "', 1)


@dataclass(frozen=True)
class Tamper:
    change: Callable[[History], None]
    message: str  # regex the error line must match
    against: bool = False  # run `ledger verify --against saved.json`


TAMPERING = {
    "field-edited": Tamper(
        _edit_field, r"ledger entry 2 \(ledger line 3\): hash does not match its content"
    ),
    "line-deleted": Tamper(_delete_line, r"ledger entry 3: expected seq 2"),
    "lines-swapped": Tamper(_swap_lines, r"ledger entry 2: expected seq 1"),
    "tail-truncated": Tamper(
        _truncate_tail, r"covers 5 entries but the ledger has only 4: entries were removed"
    ),
    "forged-line-appended": Tamper(
        _append_forged, r"ledger entries 5\.\.5 are not covered by a signed checkpoint"
    ),
    "rehashed-after-edit": Tamper(
        _rehash_after_edit,
        r"ledger entries 2\.\.2 do not match the signed checkpoint of tree size 3 .*rewritten",
    ),
    "rehashed-after-edit-against-saved": Tamper(
        _rehash_after_edit, r"do not match the signed checkpoint .*rewritten", against=True
    ),
    "rehashed-checkpoints-deleted": Tamper(
        _rehash_and_drop_checkpoints,
        r"ledger entries 0\.\.4 are not covered by a signed checkpoint",
    ),
    "rehashed-checkpoints-deleted-against-saved": Tamper(
        _rehash_and_drop_checkpoints,
        r"first 5 entries do not match the saved checkpoint: history was rewritten or forked",
        against=True,
    ),
    "checkpoints-signed-by-another-key": Tamper(
        _checkpoints_by_another_key, r"checkpoints\.jsonl line 1\): signed by key sha256:[0-9a-f]+"
    ),
    "key-and-checkpoints-replaced-against-saved": Tamper(
        _rewrite_with_the_attackers_key,
        r"ledger key is now sha256:[0-9a-f]+: the key was replaced",
        against=True,
    ),
    "rolled-back-against-saved": Tamper(
        _roll_back,
        r"saved checkpoint covers 5 entries but the ledger has only 2: history was rolled back",
        against=True,
    ),
    "duplicate-key": Tamper(
        _replace_line(_duplicate_key), r"ledger line 2: invalid JSON \(duplicate key 'actor'\)"
    ),
    "nan": Tamper(_replace_line(_nan), r"ledger line 2: invalid JSON \(NaN is not allowed\)"),
    "infinity": Tamper(
        _replace_line(_infinity), r"ledger line 2: invalid JSON \(Infinity is not allowed\)"
    ),
    "trailing-data": Tamper(_replace_line(_trailing), r"ledger line 2: invalid JSON \(Extra data"),
    "not-canonical": Tamper(_replace_line(_spaced), r"ledger line 2: not in canonical encoding"),
    "not-an-object": Tamper(_replace_line(b"[1,2]"), r"ledger line 2: not a ledger entry"),
    "not-utf8": Tamper(_replace_line(b'{"v":"\xff"}'), r"ledger line 2: invalid JSON"),
}


@pytest.mark.parametrize("case", list(TAMPERING), ids=list(TAMPERING))
def test_ledger_tampering_is_caught(history: History, cpctl: CliFn, case: str) -> None:
    tamper = TAMPERING[case]
    tamper.change(history)
    checkpoints_before = read_if_present(history.root / CHECKPOINTS)
    args = ["ledger", "verify"] + (["--against", str(history.saved)] if tamper.against else [])
    outcome = cpctl(*args, root=history.root)
    assert outcome.exit_code == 1, (outcome.stdout, outcome.stderr)
    assert outcome.stderr.startswith("cpctl: error: ")
    assert len(outcome.stderr.strip().splitlines()) == 1
    assert re.search(tamper.message, outcome.stderr), outcome.stderr
    # the verifier reports, it never signs what it is checking
    assert read_if_present(history.root / CHECKPOINTS) == checkpoints_before
    again = cpctl("ledger", "verify", "--json", *args[2:], root=history.root)
    assert again.exit_code == 1
    assert again.json()["error"]["exit_code"] == 1


def test_a_fork_with_a_new_key_verifies_alone_but_not_against_a_saved_checkpoint(
    history: History, cpctl: CliFn
) -> None:
    _rewrite_with_the_attackers_key(history)
    assert cpctl("ledger", "verify", root=history.root).exit_code == 0
    outcome = cpctl("ledger", "verify", "--against", str(history.saved), root=history.root)
    assert outcome.exit_code == 1
    assert "the key was replaced" in outcome.stderr


def test_a_rollback_verifies_alone_but_not_against_a_saved_checkpoint(
    history: History, cpctl: CliFn
) -> None:
    _roll_back(history)
    assert cpctl("ledger", "verify", root=history.root).exit_code == 0
    assert (
        cpctl("ledger", "verify", "--against", str(history.saved), root=history.root).exit_code == 1
    )


def test_a_forged_line_is_not_signed_by_the_verifier(history: History, cpctl: CliFn) -> None:
    _append_forged(history)
    checkpoints = (history.root / CHECKPOINTS).read_bytes()
    for _ in range(2):  # the first verify must not bless it for the second
        outcome = cpctl("ledger", "verify", root=history.root)
        assert outcome.exit_code == 1
        assert "not covered by a signed checkpoint" in outcome.stderr
    for read_only in (("ledger", "show"), ("ledger", "checkpoint"), ("integrity-check",)):
        cpctl(*read_only, root=history.root)
    assert (history.root / CHECKPOINTS).read_bytes() == checkpoints


@pytest.mark.parametrize("name", [LEDGER, CHECKPOINTS], ids=["ledger", "checkpoints"])
def test_a_half_written_last_line_is_repaired_by_the_next_command(
    history: History, cpctl: CliFn, name: Path
) -> None:
    whole = (history.root / name).read_bytes()
    with (history.root / name).open("ab") as handle:
        handle.write(b'{"v":1,"seq":5,"act')
    outcome = cpctl("ledger", "verify", root=history.root)
    assert outcome.exit_code == 0, outcome.stderr
    assert "removed a partly written last line (19 bytes)" in outcome.stderr
    assert (history.root / name).read_bytes() == whole
    again = cpctl("ledger", "verify", root=history.root)
    assert again.exit_code == 0 and "partly written" not in again.stderr
    assert cpctl("remove", "--id", "PKG-DOCS", root=history.root).exit_code == 0
    assert (
        cpctl("ledger", "verify", "--against", str(history.saved), root=history.root).exit_code == 0
    )


# --- the ledger key -----------------------------------------------------------------------------


def _delete_private_key(root: Path) -> None:
    (root / PRIVATE_KEY).unlink()


def _expose_private_key(root: Path) -> None:
    os.chmod(root / PRIVATE_KEY, 0o644)


def _swap_private_key(root: Path) -> None:
    other = Ed25519PrivateKey.generate()
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (root / PRIVATE_KEY).write_bytes(pem)


def _garble_private_key(root: Path) -> None:
    (root / PRIVATE_KEY).write_bytes(b"not a key\n")


KEY_PROBLEMS = {
    "deleted": (_delete_private_key, r"ledger signing key is missing"),
    "mode-0644": (_expose_private_key, r"accessible by other users \(mode 644\)"),
    "another-key": (_swap_private_key, r"is not the private half of ledger/ledger\.pub"),
    "not-a-pem": (_garble_private_key, r"is not a usable PEM key"),
}


@pytest.mark.parametrize("case", list(KEY_PROBLEMS), ids=list(KEY_PROBLEMS))
def test_a_mutating_command_without_a_usable_key_writes_nothing(
    history: History, cpctl: CliFn, case: str
) -> None:
    damage, message = KEY_PROBLEMS[case]
    damage(history.root)
    before = snapshot(history.root)
    for args in (("remove", "--id", "PKG-DOCS"), ("manifest",), ("hash-update", "--path", "x")):
        outcome = cpctl(*args, root=history.root)
        assert outcome.exit_code == 2, (args, outcome.stderr)
        assert re.search(message, outcome.stderr), outcome.stderr
    assert snapshot(history.root) == before
    # reading and verifying need only the public key
    assert cpctl("ledger", "verify", root=history.root).exit_code == 0


def test_the_key_may_live_outside_the_root(history: History, cpctl: CliFn, tmp_path: Path) -> None:
    elsewhere = tmp_path / "vault" / "ledger.key"
    elsewhere.parent.mkdir()
    shutil.move(history.root / PRIVATE_KEY, elsewhere)
    env = {"CONTROL_PLANE_LEDGER_KEY": str(elsewhere)}
    assert cpctl("remove", "--id", "PKG-DOCS", root=history.root, env=env).exit_code == 0
    assert (
        cpctl("ledger", "verify", "--against", str(history.saved), root=history.root).exit_code == 0
    )


def test_init_creates_a_private_key_and_a_committed_public_key(root: Path) -> None:
    assert (root / PRIVATE_KEY).stat().st_mode & 0o777 == 0o600
    assert (root / PUBLIC_KEY).read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert len(read_lines(root, CHECKPOINTS)) == 1  # the init entry is signed


def test_init_on_a_root_without_keys_creates_them_and_signs_the_history(
    history: History, cpctl: CliFn
) -> None:
    for name in (PRIVATE_KEY, PUBLIC_KEY, CHECKPOINTS):
        (history.root / name).unlink()
    outcome = cpctl("ledger", "verify", root=history.root)
    assert outcome.exit_code == 1
    assert "ledger entries 0..4 are not covered by a signed checkpoint" in outcome.stderr
    refused = cpctl("remove", "--id", "PKG-DOCS", root=history.root)
    assert refused.exit_code == 2
    assert "has no ledger signing key" in refused.stderr and "cpctl init" in refused.stderr

    outcome = cpctl("init", "--json", root=history.root)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["created"] == [str(PRIVATE_KEY), str(PUBLIC_KEY)]
    newest = strict_loads(read_lines(history.root)[-1])
    assert (newest["seq"], newest["action"]) == (ENTRIES, "init")
    assert newest["details"]["created"] == [str(PRIVATE_KEY), str(PUBLIC_KEY)]  # ledgered
    assert cpctl("ledger", "verify", root=history.root).exit_code == 0
    # an auditor who kept a checkpoint sees the new key for what it is
    outcome = cpctl("ledger", "verify", "--against", str(history.saved), root=history.root)
    assert outcome.exit_code == 1 and "the key was replaced" in outcome.stderr


def test_init_never_replaces_one_remaining_half_of_the_key(history: History, cpctl: CliFn) -> None:
    (history.root / PRIVATE_KEY).unlink()
    public = (history.root / PUBLIC_KEY).read_bytes()
    assert cpctl("init", root=history.root).exit_code == 0
    assert not (history.root / PRIVATE_KEY).exists()
    assert (history.root / PUBLIC_KEY).read_bytes() == public


# --- read-only commands -----------------------------------------------------------------------


def test_read_only_ledger_commands_write_nothing(history: History, cpctl: CliFn) -> None:
    before = snapshot(history.root)
    for args in (
        ("ledger", "verify"),
        ("ledger", "verify", "--json", "--against", str(history.saved)),
        ("ledger", "prove", "--seq", "0"),
        ("ledger", "prove", "--from-size", "2", "--to-size", "4"),
        ("ledger", "checkpoint"),
        ("ledger", "show", "--json"),
    ):
        outcome = cpctl(*args, root=history.root)
        assert outcome.exit_code == 0, (args, outcome.stderr)
        assert snapshot(history.root) == before, args


def test_the_first_bad_signature_is_named_while_checking_in_small_batches(
    history: History, cpctl: CliFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one checkpoint per task and one task in flight: failures surface while parsing goes on
    monkeypatch.setattr(ledger_audit, "_BATCH", 1)
    monkeypatch.setattr(ledger_audit, "_IN_FLIGHT", 1)
    lines = read_lines(history.root, CHECKPOINTS)
    forged = checkpoints_signed_by(Ed25519PrivateKey.generate(), read_lines(history.root))
    write_lines(history.root, [*lines[:2], *forged[2:]], CHECKPOINTS)
    outcome = cpctl("ledger", "verify", root=history.root)
    assert outcome.exit_code == 1
    assert "checkpoints.jsonl line 3): signed by key" in outcome.stderr
