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
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from control_plane.errors import CheckFailedError, UsageError

LEDGER_FILE = "ledger.jsonl"
ENTRY_VERSION = 1
GENESIS = "0" * 64
_TAIL_BLOCK = 64 * 1024
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


def canonical_json(value: Any) -> bytes:
    """The one canonical byte encoding used for hashing and storing JSON."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def strict_loads(raw: bytes) -> Any:
    """Parse JSON refusing duplicate keys, NaN/Infinity and trailing data.

    Raises:
        ValueError: the bytes are not exactly one strict JSON document.
    """
    text = raw.decode("utf-8")
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def utc_now() -> str:
    """RFC 3339 UTC timestamp with second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def decode_entry(raw: bytes, line_number: int) -> LedgerEntry:
    """Parse and self-check one stored line (not its link to the previous entry).

    Raises:
        CheckFailedError: not strict canonical JSON, wrong keys, or a wrong ``hash``.
    """
    try:
        fields = strict_loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckFailedError(f"ledger line {line_number}: invalid JSON ({exc})") from exc
    if not isinstance(fields, dict) or set(fields) != ENTRY_KEYS:
        raise CheckFailedError(f"ledger line {line_number}: not a ledger entry (wrong keys)")
    if canonical_json(fields) != raw:
        raise CheckFailedError(f"ledger line {line_number}: not in canonical encoding")
    seq, digest, prev = fields["seq"], fields["hash"], fields["prev"]
    if not isinstance(seq, int) or not isinstance(digest, str) or not isinstance(prev, str):
        raise CheckFailedError(f"ledger line {line_number}: seq, hash or prev has the wrong type")
    if entry_hash(fields) != digest:
        raise CheckFailedError(
            f"ledger entry {seq} (line {line_number}): hash does not match its content"
        )
    return LedgerEntry(seq=seq, hash=digest, prev=prev, fields=fields, raw=raw)


class Ledger:
    """The ledger file of one root."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LEDGER_FILE

    def repair_tail(self) -> str | None:
        """Drop a partly written last line left by a crash; return a message when it did.

        The caller holds the root lock.
        """
        if not self.path.exists():
            return None
        with self.path.open("r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return None
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return None
            keep = self._last_newline_end(handle, size)
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        return (
            f"ledger: removed a partly written last entry ({size - keep} bytes) "
            "left by an interrupted command"
        )

    @staticmethod
    def _last_newline_end(handle: BinaryIO, size: int) -> int:
        """Offset just after the last newline before ``size`` (0 when there is none)."""
        end = size
        while end > 0:
            start = max(0, end - _TAIL_BLOCK)
            handle.seek(start)
            block = handle.read(end - start)
            index = block.rfind(b"\n")
            if index >= 0:
                return start + index + 1
            end = start
        return 0

    def last(self) -> LedgerEntry | None:
        """The newest complete entry, read from the end of the file."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return None
            end = size - 1 if self._byte_at(handle, size - 1) == b"\n" else size
            start = self._last_newline_end(handle, end)
            handle.seek(start)
            raw = handle.read(end - start)
        return decode_entry(raw, line_number=-1)

    @staticmethod
    def _byte_at(handle: BinaryIO, offset: int) -> bytes:
        handle.seek(offset)
        data: bytes = handle.read(1)
        return data

    def append(self, record: LedgerRecord) -> LedgerEntry:
        """Append one entry chained to the newest; the caller holds the root lock."""
        previous = self.last()
        fields: dict[str, Any] = {
            "v": ENTRY_VERSION,
            "seq": 0 if previous is None else previous.seq + 1,
            "time": utc_now(),
            "prev": GENESIS if previous is None else previous.hash,
            **record.to_json(),
        }
        fields["hash"] = entry_hash(fields)
        raw = canonical_json(fields)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, raw + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return LedgerEntry(
            seq=fields["seq"], hash=fields["hash"], prev=fields["prev"], fields=fields, raw=raw
        )

    def entries(self) -> Iterator[LedgerEntry]:
        """Every entry in order, each self-checked (hash and encoding) but not chained."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    raise CheckFailedError(f"ledger line {number}: partly written (no newline)")
                yield decode_entry(line[:-1], number)

    def verify_chain(self) -> int:
        """Check every entry and every link; return the number of entries.

        Raises:
            CheckFailedError: naming the first bad entry.
        """
        expected_prev, expected_seq = GENESIS, 0
        for entry in self.entries():
            if entry.seq != expected_seq:
                raise CheckFailedError(f"ledger entry {entry.seq}: expected seq {expected_seq}")
            if entry.prev != expected_prev:
                raise CheckFailedError(
                    f"ledger entry {entry.seq}: prev does not match entry {entry.seq - 1}"
                )
            expected_prev, expected_seq = entry.hash, expected_seq + 1
        return expected_seq

    def ends_with_txn(self, txn: str) -> bool:
        """True when the newest entry was written by transaction ``txn``.

        Recovery runs before anything else appends, so a committed
        transaction's entry, if it was written at all, is the last one.
        """
        newest = self.last()
        return newest is not None and newest.fields.get("txn") == txn


def require_record_fields(data: Mapping[str, Any]) -> LedgerRecord:
    """A ``LedgerRecord`` from journal JSON, refusing anything malformed.

    Raises:
        UsageError: the journal's ledger record is not well formed.
    """
    try:
        return LedgerRecord.from_json(data)
    except (KeyError, TypeError) as exc:
        raise UsageError(f"malformed ledger record in journal: {exc}") from exc
