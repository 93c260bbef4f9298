"""The hash-chained ledger: canonical encoding, strict parsing, chain checks, crash repair."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.errors import CheckFailedError
from control_plane.ledger import (
    GENESIS,
    Ledger,
    LedgerRecord,
    canonical_json,
    entry_hash,
    strict_loads,
)


def record(n: int, **extra: object) -> LedgerRecord:
    return LedgerRecord(
        actor="alice",
        role="admin",
        action="install",
        target=f"PKG-{n}",
        result="ok",
        digests={"archive": "sha256:" + "0" * 64},
        details={"n": n, **extra},
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    book = Ledger(tmp_path / "ledger")
    for n in range(5):
        book.append(record(n))
    return book


def lines(book: Ledger) -> list[bytes]:
    return book.path.read_bytes().splitlines(keepends=True)


def test_chain_links_and_sequence(ledger: Ledger) -> None:
    entries = list(ledger.entries())
    assert [entry.seq for entry in entries] == [0, 1, 2, 3, 4]
    assert entries[0].prev == GENESIS
    assert all(later.prev == earlier.hash for earlier, later in itertools.pairwise(entries))
    assert ledger.verify_chain() == 5


def test_an_independent_verifier_agrees(ledger: Ledger) -> None:
    import hashlib

    prev = "0" * 64
    for seq, line in enumerate(ledger.path.read_bytes().splitlines()):
        entry = json.loads(line)
        body = {k: v for k, v in entry.items() if k != "hash"}
        canonical = json.dumps(
            body, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        assert entry["seq"] == seq and entry["prev"] == prev
        assert hashlib.sha256(canonical).hexdigest() == entry["hash"]
        prev = entry["hash"]


def _edit_field(data: list[bytes]) -> list[bytes]:
    data[2] = data[2].replace(b'"alice"', b'"mallory"')
    return data


def _recompute(data: list[bytes]) -> list[bytes]:
    entry = json.loads(data[2])
    entry["actor"] = "mallory"
    entry["hash"] = entry_hash(entry)
    data[2] = canonical_json(entry) + b"\n"
    return data


TAMPERING = {
    "field-edited": _edit_field,
    "line-deleted": lambda data: data[:2] + data[3:],
    "lines-swapped": lambda data: [data[0], data[2], data[1], *data[3:]],
    "hash-recomputed-after-edit": _recompute,
    "duplicate-key": lambda data: [
        *data[:4],
        data[4].replace(b'{"action"', b'{"action":"x","action"'),
    ],
    "non-canonical-whitespace": lambda data: [*data[:4], data[4].replace(b'","', b'", "', 1)],
    "nan": lambda data: [*data[:4], data[4].replace(b'"n":4', b'"n":NaN')],
    "trailing-data": lambda data: [*data[:4], data[4].rstrip(b"\n") + b" {}\n"],
    "forged-line-appended": lambda data: [*data, data[-1]],
}


@pytest.mark.parametrize("kind", sorted(TAMPERING), ids=sorted(TAMPERING))
def test_tampering_is_caught_naming_the_entry(ledger: Ledger, kind: str) -> None:
    ledger.path.write_bytes(b"".join(TAMPERING[kind](lines(ledger))))
    with pytest.raises(CheckFailedError, match=r"ledger (entry|line) \d+"):
        ledger.verify_chain()


def test_truncated_tail_still_chains_but_loses_entries(ledger: Ledger) -> None:
    # Truncation keeps a valid prefix: only signed checkpoints can catch it (see the Merkle layer).
    ledger.path.write_bytes(b"".join(lines(ledger)[:3]))
    assert ledger.verify_chain() == 3


def test_partial_last_line_is_repaired_with_a_message(ledger: Ledger) -> None:
    whole = ledger.path.read_bytes()
    ledger.path.write_bytes(whole + b'{"v":1,"seq":5,"act')
    with pytest.raises(CheckFailedError):
        ledger.verify_chain()
    message = ledger.repair_tail()
    assert message is not None and "partly written" in message
    assert ledger.path.read_bytes() == whole
    assert ledger.repair_tail() is None
    ledger.append(record(5))
    assert ledger.verify_chain() == 6


def test_strict_loads_refuses_what_json_accepts() -> None:
    for bad in (b'{"a":1,"a":2}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":1} x'):
        with pytest.raises(ValueError):
            strict_loads(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(
    details=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    target=st.text(max_size=30),
)
def test_any_record_round_trips_and_verifies(
    tmp_path_factory: pytest.TempPathFactory, details: dict, target: str
) -> None:
    book = Ledger(tmp_path_factory.mktemp("ledger"))
    rec = LedgerRecord("u", "admin", "pack", target, "ok", {}, details)
    entry = book.append(rec)
    assert strict_loads(entry.raw) == dict(entry.fields)
    assert book.verify_chain() == 1
    assert book.last() == entry
