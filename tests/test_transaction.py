"""The journal: a transaction interrupted at any step recovers to before or after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from control_plane.ledger import Ledger, LedgerRecord
from control_plane.transaction import COMMITTED, Transaction, _apply, recover


def state(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "keep").mkdir(parents=True)
    (root / "keep/old.txt").write_text("old")
    (root / "keep/gone.txt").write_text("gone")
    return root


def build(tree: Path, txns: Path) -> Transaction:
    txn = Transaction.begin(txns)
    staged = txn.stage / "a"
    staged.write_text("new")
    txn.put(tree / "keep/old.txt", staged)
    staged2 = txn.stage / "b"
    staged2.write_text("fresh")
    txn.put(tree / "new/dir/fresh.txt", staged2)
    txn.delete(tree / "keep/gone.txt")
    return txn


RECORD = LedgerRecord("u", "admin", "install", "PKG-A", "ok", {}, {})


def test_commit_applies_everything_and_ledgers_once(tree: Path, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger")
    txn = build(tree, tmp_path / "txn")
    txn.commit(ledger, RECORD)
    assert state(tree) == {"keep/old.txt": b"new", "new/dir/fresh.txt": b"fresh"}
    assert ledger.verify_chain() == 1
    assert not any((tmp_path / "txn").iterdir())


@pytest.mark.parametrize("applied", range(4), ids=lambda n: f"crash-after-{n}-steps")
def test_crash_before_commit_point_rolls_back(tree: Path, tmp_path: Path, applied: int) -> None:
    before = state(tree)
    ledger = Ledger(tmp_path / "ledger")
    txn = build(tree, tmp_path / "txn")
    txn._write_journal("prepared", RECORD)
    for directory in txn.created_dirs:
        directory.mkdir(exist_ok=True)
    for op in txn.ops[:applied]:
        _apply(op)
    messages = recover(tmp_path / "txn", ledger)
    assert "rolled back" in messages[0]
    assert state(tree) == before
    assert not (tree / "new").exists()
    assert ledger.verify_chain() == 0


def test_crash_after_commit_point_rolls_forward_and_ledgers_once(
    tree: Path, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "ledger")
    txn = build(tree, tmp_path / "txn")
    txn._write_journal("prepared", RECORD)
    for directory in txn.created_dirs:
        directory.mkdir(exist_ok=True)
    for op in txn.ops:
        _apply(op)
    txn._write_journal(COMMITTED, RECORD)
    assert "completed" in recover(tmp_path / "txn", ledger)[0]
    assert state(tree) == {"keep/old.txt": b"new", "new/dir/fresh.txt": b"fresh"}
    assert ledger.verify_chain() == 1
    assert recover(tmp_path / "txn", ledger) == []
    assert ledger.verify_chain() == 1


def test_staging_without_a_journal_is_discarded(tree: Path, tmp_path: Path) -> None:
    before = state(tree)
    build(tree, tmp_path / "txn")
    recover(tmp_path / "txn", Ledger(tmp_path / "ledger"))
    assert state(tree) == before
    assert not any((tmp_path / "txn").iterdir())


def test_unreadable_journal_is_left_for_a_human(tree: Path, tmp_path: Path) -> None:
    from control_plane.errors import UsageError

    txn = build(tree, tmp_path / "txn")
    (txn.directory / "journal.json").write_text(json.dumps({"state": "prepared"}))
    with pytest.raises(UsageError, match="journal"):
        recover(tmp_path / "txn", Ledger(tmp_path / "ledger"))


@pytest.mark.parametrize("failing", range(3), ids=lambda n: f"error-at-step-{n}")
def test_an_error_while_applying_is_undone_in_process(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    # Not a crash but an exception (a full disk, a permission): the caller's abort() must
    # not strand a half-applied tree by deleting the journal.
    from control_plane import transaction

    before = state(tree)
    ledger = Ledger(tmp_path / "ledger")
    txn = build(tree, tmp_path / "txn")
    calls = {"n": 0}

    def flaky(op: object) -> None:
        if calls["n"] == failing:
            raise OSError(28, "No space left on device")
        calls["n"] += 1
        _apply(op)  # type: ignore[arg-type]

    monkeypatch.setattr(transaction, "_apply", flaky)
    with pytest.raises(OSError, match="No space"):
        txn.commit(ledger, RECORD)
    txn.abort()
    assert state(tree) == before
    assert not (tree / "new").exists()
    assert not any((tmp_path / "txn").iterdir())
    assert not ledger.path.exists() or ledger.verify_chain() == 0


def test_an_error_after_the_commit_point_is_rolled_forward_by_recovery(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path / "ledger")
    txn = build(tree, tmp_path / "txn")

    def broken_append(record: LedgerRecord) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ledger, "append", broken_append)
    with pytest.raises(OSError, match="Input/output"):
        txn.commit(ledger, RECORD)
    txn.abort()  # must leave the committed journal for recovery
    monkeypatch.undo()
    assert recover(tmp_path / "txn", ledger)
    assert state(tree) == {"keep/old.txt": b"new", "new/dir/fresh.txt": b"fresh"}
    assert ledger.verify_chain() == 1
