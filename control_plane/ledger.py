"""The append-only ledger: JSON Lines, each entry hash-chained to the one before.

Encoding (documented in the README so a third party can verify):

* an entry is one line of *canonical JSON*: keys sorted, no whitespace,
  UTF-8, no NaN/Infinity (``canonical_json``);
* ``hash`` is the hex SHA-256 of the canonical JSON of the entry without its
  ``hash`` member; ``prev`` is the previous entry's ``hash`` (64 zeros for
  the first entry); ``seq`` counts from 0;
* a stored line must be byte-for-byte the canonical encoding of what it
  parses to, so hashing the stored bytes and hashing a re-serialisation can
  never disagree.

Appends happen under the root lock (the caller holds it).  A crash while
appending can leave a partial last line without its newline; ``repair_tail``
detects and truncates it, and says so.

With a Merkle store (:class:`~control_plane.ledger_tree.LedgerTree`) every
append also adds the line's leaf, and with a signing key it appends a signed
checkpoint of the new tree head (:mod:`control_plane.checkpoints`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control_plane.appendlog import AppendLog
from control_plane.checkpoints import Checkpoint, CheckpointLog, sign_checkpoint
from control_plane.errors import CheckFailedError, UsageError
from control_plane.jsoncanon import canonical_json, strict_loads, utc_now
from control_plane.ledger_tree import LedgerTree

__all__ = ["canonical_json", "strict_loads", "utc_now"]  # re-exported: tests and tools use them

LEDGER_FILE = "ledger.jsonl"
ENTRY_VERSION = 1
GENESIS = "0" * 64
ENTRY_KEYS = frozenset(
    {
        "v",
        "seq",
        "time",
        "actor",
        "role",
        "action",
        "target",
        "result",
        "digests",
        "details",
        "txn",
        "prev",
        "hash",
    }
)

KeySource = Callable[[], Ed25519PrivateKey | None]


@dataclass(frozen=True)
class LedgerRecord:
    """What an operation wants recorded; the ledger adds seq, time, prev and hash."""

    actor: str
    role: str
    action: str
    target: str
    result: str
    digests: Mapping[str, str]
    details: Mapping[str, Any]
    txn: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain form stored in transaction journals."""
        return {
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "target": self.target,
            "result": self.result,
            "digests": dict(self.digests),
            "details": dict(self.details),
            "txn": self.txn,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LedgerRecord:
        return cls(
            actor=data["actor"],
            role=data["role"],
            action=data["action"],
            target=data["target"],
            result=data["result"],
            digests=data["digests"],
            details=data["details"],
            txn=data["txn"],
        )


@dataclass(frozen=True)
class LedgerEntry:
    """One stored entry: its fields and the exact line bytes (without the newline)."""

    seq: int
    hash: str
    prev: str
    fields: Mapping[str, Any]
    raw: bytes


def entry_hash(fields: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical encoding of an entry without its ``hash`` member."""
    body = {key: value for key, value in fields.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def decode_entry(raw: bytes, line_number: int | None) -> LedgerEntry:
    """Parse and self-check one stored line (not its link to the previous entry).

    ``line_number`` None means the last line (read from the end).

    Raises:
        CheckFailedError: not strict canonical JSON, wrong keys, or a wrong ``hash``.
    """
    where = "last ledger line" if line_number is None else f"ledger line {line_number}"
    try:
        fields = strict_loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckFailedError(f"{where}: invalid JSON ({exc})") from exc
    if not isinstance(fields, dict) or set(fields) != ENTRY_KEYS:
        raise CheckFailedError(f"{where}: not a ledger entry (wrong keys)")
    if canonical_json(fields) != raw:
        raise CheckFailedError(f"{where}: not in canonical encoding")
    seq, digest, prev = fields["seq"], fields["hash"], fields["prev"]
    if not isinstance(seq, int) or not isinstance(digest, str) or not isinstance(prev, str):
        raise CheckFailedError(f"{where}: seq, hash or prev has the wrong type")
    if entry_hash(fields) != digest:
        raise CheckFailedError(f"ledger entry {seq} ({where}): hash does not match its content")
    return LedgerEntry(seq=seq, hash=digest, prev=prev, fields=fields, raw=raw)


class Ledger:
    """The ledger file of one root, with its Merkle store and checkpoints when given."""

    def __init__(
        self,
        directory: Path,
        *,
        tree_dir: Path | None = None,
        signing_key: KeySource | None = None,
        filename: str = LEDGER_FILE,
    ) -> None:
        self.directory = directory
        self.path = directory / filename
        self.log = AppendLog(self.path, "ledger" if filename == LEDGER_FILE else filename)
        self.tree = None if tree_dir is None else LedgerTree(tree_dir)
        self.checkpoints = CheckpointLog(directory)
        self._signing_key = signing_key

    def repair_tail(self) -> str | None:
        """Drop a partly written last line left by a crash; return a message when it did.

        The caller holds the root lock.
        """
        return self.log.repair_tail()

    def last(self) -> LedgerEntry | None:
        """The newest complete entry, read from the end of the file."""
        lines = self.log.tail(1)
        return decode_entry(lines[0], line_number=None) if lines else None

    def count(self) -> int:
        """Number of complete entries, from the newest one's ``seq``."""
        newest = self.last()
        return 0 if newest is None else newest.seq + 1

    def append(self, record: LedgerRecord) -> LedgerEntry:
        """Append one entry chained to the newest, then its leaf and a signed checkpoint.

        The caller holds the root lock.
        """
        entry = self.next_entry(record)
        fields, raw = entry.fields, entry.raw
        self.log.append(raw)
        if self.tree is not None:
            if self.tree.size == fields["seq"]:
                self.tree.append_line(raw)
            else:
                self.reconcile_tree()
            self.checkpoint()
        return entry

    def next_entry(self, record: LedgerRecord) -> LedgerEntry:
        """The entry ``append`` would write for ``record`` now, without writing it.

        For ledgers whose new line is staged in a transaction together with
        the files it describes (the identity ledger): the caller holds the
        root lock and writes ``raw`` plus a newline at the end of the file.
        """
        previous = self.last()
        fields: dict[str, Any] = {
            "v": ENTRY_VERSION,
            "seq": 0 if previous is None else previous.seq + 1,
            "time": utc_now(),
            "prev": GENESIS if previous is None else previous.hash,
            **record.to_json(),
        }
        fields["hash"] = entry_hash(fields)
        return LedgerEntry(
            seq=fields["seq"],
            hash=fields["hash"],
            prev=fields["prev"],
            fields=fields,
            raw=canonical_json(fields),
        )

    def reconcile_tree(self) -> str | None:
        """Bring the Merkle store in line with the entries; say what was fixed."""
        if self.tree is None:
            return None
        return self.tree.reconcile(
            self.count(), self.log.tail, lambda: (line for _, line in self.log.lines())
        )

    def checkpoint(self) -> Checkpoint | None:
        """Sign and append a checkpoint of the current tree head, unless one already covers it.

        Returns None when there is no tree or no signing key (the caller decides
        whether that is an error).
        """
        if self.tree is None or self._signing_key is None:
            return None
        key = self._signing_key()
        if key is None:
            return None
        size = self.tree.size
        newest = self.checkpoints.newest()
        if newest is not None and newest.tree_size == size:
            return newest
        checkpoint = sign_checkpoint(key, size, self.tree.root(size), utc_now())
        self.checkpoints.append(checkpoint)
        return checkpoint

    def entries(self) -> Iterator[LedgerEntry]:
        """Every entry in order, each self-checked (hash and encoding) but not chained."""
        for number, line in self.log.lines():
            yield decode_entry(line, number)

    def verify_chain(self) -> int:
        """Check every entry and every link; return the number of entries.

        Raises:
            CheckFailedError: naming the first bad entry.
        """
        expected_prev, expected_seq = GENESIS, 0
        for entry in self.entries():
            check_link(entry, expected_seq, expected_prev)
            expected_prev, expected_seq = entry.hash, expected_seq + 1
        return expected_seq

    def ends_with_txn(self, txn: str) -> bool:
        """True when the newest entry was written by transaction ``txn``.

        Recovery runs before anything else appends, so a committed
        transaction's entry, if it was written at all, is the last one.
        """
        newest = self.last()
        return newest is not None and newest.fields.get("txn") == txn


def check_link(entry: LedgerEntry, expected_seq: int, expected_prev: str) -> None:
    """Check an entry's place in the chain.

    Raises:
        CheckFailedError: wrong ``seq`` or ``prev``.
    """
    if entry.seq != expected_seq:
        raise CheckFailedError(f"ledger entry {entry.seq}: expected seq {expected_seq}")
    if entry.prev != expected_prev:
        raise CheckFailedError(
            f"ledger entry {entry.seq}: prev does not match entry {entry.seq - 1}"
        )


def require_record_fields(data: Mapping[str, Any]) -> LedgerRecord:
    """A ``LedgerRecord`` from journal JSON, refusing anything malformed.

    Raises:
        UsageError: the journal's ledger record is not well formed.
    """
    try:
        return LedgerRecord.from_json(data)
    except (KeyError, TypeError) as exc:
        raise UsageError(f"malformed ledger record in journal: {exc}") from exc
