"""Identity cards: mint (card + identity-ledger entry in one transaction), validate,
build the registry.  Policy and effects; the rules live in ``identity_cards``."""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from ulid import ULID

from control_plane import identity_cards as cards
from control_plane.errors import CheckFailedError, ConflictError, UsageError
from control_plane.findings import Finding
from control_plane.fsutil import is_within
from control_plane.identity_cards import CardFile, IdCard, MintRecord
from control_plane.jsoncanon import utc_now
from control_plane.ledger import GENESIS, Ledger, check_link, decode_entry
from control_plane.operations.results import FindingsResult, Result
from control_plane.operations.session import Session

REGISTRY_ACTION = "ids-build-registry"


@dataclass(frozen=True)
class IdMintResult(Result):
    SCHEMA: ClassVar[str] = "control-plane.ids-mint/1"
    id: str
    kind: str
    path: str
    card: str
    digest: str
    ledger_seq: int

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "path": self.path,
            "card": self.card,
            "digest": self.digest,
            "ledger": cards.IDS_LEDGER_FILE,
            "ledger_seq": self.ledger_seq,
        }


@dataclass(frozen=True)
class IdsValidateResult(FindingsResult):
    """``cpctl ids validate``: ``rules`` is ``all``, ``immutability`` or ``structure``."""

    SCHEMA: ClassVar[str] = "control-plane.ids-validate/1"
    rules: str
    cards: int
    recorded: int
    findings: tuple[Finding, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "cards": self.cards,
            "recorded": self.recorded,
            "findings": self.findings_json(),
        }


@dataclass(frozen=True)
class IdsRegistryResult(FindingsResult):
    """``cpctl ids build-registry``: ``status`` is written, unchanged, drift or refused."""

    SCHEMA: ClassVar[str] = "control-plane.ids-registry/1"
    path: str
    check: bool
    status: str
    count: int
    sha256: str | None
    findings: tuple[Finding, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "check": self.check,
            "status": self.status,
            "changed": self.status == "written",
            "count": self.count,
            "sha256": self.sha256,
            "findings": self.findings_json(),
        }


@dataclass(frozen=True)
class StoreState:
    """What the identity stores hold now, and everything wrong with them."""

    findings: tuple[Finding, ...]
    cards: tuple[IdCard, ...]
    records: tuple[MintRecord, ...]
    files: int


class IdsStore:
    """The identity stores of one root: ``ids/cards/``, ``.ledger/ids.jsonl``, the registry."""

    def __init__(self, root: Path, main_ledger: Ledger) -> None:
        self.root = root
        self.cards_dir = root / cards.CARDS_DIR
        self.registry = root / cards.REGISTRY_FILE
        self.ledger = Ledger(root / cards.IDS_LEDGER_DIR, filename=cards.IDS_LEDGER_NAME)
        self.main_ledger = main_ledger

    def refuse_symlinks(self) -> None:
        """Refuse to read or write through a symlinked store path.

        Raises:
            UsageError: one of the store paths is a symbolic link.
        """
        for rel in ("ids", cards.CARDS_DIR, cards.REGISTRY_FILE, cards.IDS_LEDGER_DIR):
            if (self.root / rel).is_symlink():
                raise UsageError(f"{rel} is a symbolic link; identity stores must be real paths")
        if self.ledger.path.is_symlink():
            raise UsageError(f"{cards.IDS_LEDGER_FILE} is a symbolic link")

    def records(self) -> tuple[list[MintRecord], list[Finding]]:
        """The mint records of the identity ledger, checked link by link.

        Reading stops at the first bad entry: nothing after it can be trusted.
        """
        records: list[MintRecord] = []
        subject = cards.IDS_LEDGER_FILE
        expected_seq, expected_prev = 0, GENESIS
        try:
            for number, line in self.ledger.log.lines():
                entry = decode_entry(line, number)
                check_link(entry, expected_seq, expected_prev)
                expected_seq, expected_prev = entry.seq + 1, entry.hash
                parsed = cards.parse_mint_record(entry.seq, entry.fields)
                if isinstance(parsed, str):
                    message = f"entry {entry.seq}: {parsed}"
                    return records, [Finding(subject, "ids-ledger-record", message)]
                records.append(parsed)
        except CheckFailedError as error:
            return records, [Finding(subject, "ids-ledger-chain", str(error))]
        except OSError as error:
            return records, [Finding(subject, "ids-ledger-chain", f"unreadable: {error.strerror}")]
        return records, []

    def card_files(self) -> list[CardFile]:
        """Every entry of ``ids/cards/`` with its bytes when it is a readable regular file."""
        if not self.cards_dir.is_dir():
            return []
        found: list[CardFile] = []
        for path in sorted(self.cards_dir.iterdir()):
            if path.is_symlink() or not path.is_file():
                found.append(CardFile(name=path.name, data=None, regular=False))
                continue
            try:
                found.append(CardFile(name=path.name, data=path.read_bytes()))
            except OSError as error:
                found.append(CardFile(name=path.name, data=None, problem=str(error.strerror)))
        return found

    def truncation(self, records: list[MintRecord]) -> list[Finding]:
        """Mints the main ledger saw that the identity ledger no longer holds (cut or rewritten)."""
        recorded = {record.id for record in records}
        lost: list[str] = []
        with contextlib.suppress(CheckFailedError, OSError):  # `ledger verify` reports those
            for entry in self.main_ledger.entries():
                fields = entry.fields
                if fields.get("action") == cards.MINT_ACTION and fields.get("result") == "ok":
                    card_id = fields.get("target")
                    if isinstance(card_id, str) and card_id not in recorded:
                        lost.append(f"{card_id} (main ledger entry {entry.seq})")
        if not lost:
            return []
        message = f"minted ids missing from the identity ledger: {', '.join(lost)}"
        return [Finding(cards.IDS_LEDGER_FILE, "ids-ledger-truncated", message)]

    def state(self) -> StoreState:
        """Read and check everything (findings, never exceptions, for bad content)."""
        self.refuse_symlinks()
        records, findings = self.records()
        findings += self.truncation(records)
        files = self.card_files()
        card_findings, parsed = cards.check_cards(files, records)
        return StoreState(
            findings=tuple(findings + card_findings),
            cards=tuple(parsed),
            records=tuple(records),
            files=len(files),
        )


def resolve_artifact(root: Path, path_text: str) -> str:
    """The root-relative path of an existing artifact inside the root.

    ``path_text`` is taken relative to the working directory, or to the root
    when nothing exists there (as ``hash-update`` does).

    Raises:
        UsageError: outside the root, not normalised, nonexistent or a machinery path.
    """
    candidate = Path(path_text)
    if candidate.is_absolute():
        absolute = candidate
    else:
        absolute = Path.cwd() / candidate
        if not os.path.lexists(absolute):
            absolute = root / candidate
    try:
        rel = absolute.absolute().relative_to(root).as_posix()
    except ValueError:
        raise UsageError(f"{path_text} is outside the root {root}") from None
    problem = cards.path_problem(rel)
    if rel == "." or problem is not None:
        raise UsageError(f"{path_text} cannot be carded: path {problem or 'is the root itself'}")
    target = root / rel
    if not os.path.lexists(target):
        raise UsageError(f"{rel} does not exist", hint="create the artifact first")
    if not is_within(target.resolve(), root):
        raise UsageError(f"{rel} leads outside the root {root} (through a symbolic link)")
    return rel


def mint(session: Session, store: IdsStore, kind: str, path_text: str) -> IdMintResult:
    """See ``GateOperations.ids_mint``."""
    if (problem := cards.kind_problem(kind)) is not None:
        raise UsageError(f"unknown kind {kind!r}: {problem}")
    rel = resolve_artifact(session.layout.root, path_text)
    state = store.state()
    broken = [f for f in state.findings if f.rule.startswith("ids-ledger")]
    if broken:
        raise CheckFailedError(
            f"refusing to mint: {broken[0]}", hint="cpctl ids validate, then restore the ledger"
        )
    holders = sorted(
        {record.card for record in state.records if record.path == rel}
        | {card.file for card in state.cards if card.path == rel}
    )
    if holders:
        raise ConflictError(
            f"{rel} already has an identity card ({', '.join(holders)}); one artifact per id",
            hint="cpctl ids validate",
        )
    card = cards.new_card(str(ULID()), kind, rel, utc_now(), session.identity.user)
    target = session.layout.root / card.file
    if os.path.lexists(target) or any(record.id == card.id for record in state.records):
        raise ConflictError(f"{card.file} already exists (ULID collision); run mint again")
    data = card.render()
    digests = {"card": cards.card_digest(data)}
    try:
        previous = store.ledger.path.read_bytes() if store.ledger.path.exists() else b""
    except OSError as error:
        raise UsageError(f"cannot read {cards.IDS_LEDGER_FILE}: {error.strerror}") from None
    txn = session.begin()
    try:
        record = replace(
            session.record(card.id, digests=digests, details=cards.mint_details(card), txn=txn),
            action=cards.MINT_ACTION,
        )
        # Same record in both ledgers: its txn ties the two entries of one mint together.
        entry = store.ledger.next_entry(record)
        txn.put_bytes(target, data)
        txn.put_bytes(store.ledger.path, previous + entry.raw + b"\n")
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return IdMintResult(
        id=card.id,
        kind=card.kind,
        path=card.path,
        card=card.file,
        digest=digests["card"],
        ledger_seq=entry.seq,
        warnings=tuple(session.warnings),
    )


def validate(session: Session, store: IdsStore, rules: str) -> IdsValidateResult:
    """See ``GateOperations.ids_validate``."""
    if rules != "all" and rules not in cards.RULE_GROUPS:
        raise UsageError(f"unknown rule group {rules!r}: all, {', '.join(cards.RULE_GROUPS)}")
    state = store.state()
    findings = state.findings
    for card in state.cards:
        # Not a finding: a card outlives its artifact (ids are never reused), but say so.
        if not os.path.lexists(session.layout.root / card.path):
            session.warnings.append(f"{card.file}: its artifact {card.path} no longer exists")
    if rules != "all":
        findings = tuple(f for f in findings if f.rule in cards.RULE_GROUPS[rules])
    return IdsValidateResult(
        rules=rules,
        cards=state.files,
        recorded=len(state.records),
        findings=tuple(sorted(findings)),
        warnings=tuple(session.warnings),
    )


def build_registry(session: Session, store: IdsStore, *, check: bool) -> IdsRegistryResult:
    """See ``GateOperations.ids_build_registry``."""
    state = store.state()
    rel = cards.REGISTRY_FILE
    if state.findings:
        return IdsRegistryResult(
            path=rel,
            check=check,
            status="refused",
            count=0,
            sha256=None,
            findings=tuple(sorted(state.findings)),
            warnings=(
                *session.warnings,
                "the identity stores have findings: fix them before building the registry",
            ),
        )
    digests = {record.id: record.digest for record in state.records}
    data = cards.render_registry(state.cards, digests)
    sha = hashlib.sha256(data).hexdigest()
    path = store.registry
    if path.exists() and not path.is_file():
        raise UsageError(f"{rel} exists and is not a regular file; remove it first")
    try:
        current = path.read_bytes() if path.exists() else None
    except OSError as error:
        raise UsageError(f"cannot read {rel}: {error.strerror}") from None
    result = IdsRegistryResult(
        path=rel,
        check=check,
        status="unchanged",
        count=len(state.cards),
        sha256=sha,
        findings=(),
        warnings=tuple(session.warnings),
    )
    if current == data:
        return result
    if check:
        why = "does not exist" if current is None else "differs from the committed cards"
        drift = Finding(rel, "registry-drift", f"{why} (run cpctl ids build-registry)")
        return replace(result, status="drift", findings=(drift,))
    txn = session.begin()
    try:
        txn.put_bytes(path, data)
        record = replace(
            session.record(
                rel, digests={"new": f"sha256:{sha}"}, details={"count": len(state.cards)}, txn=txn
            ),
            action=REGISTRY_ACTION,
        )
        session.commit(txn, record)
    except BaseException:
        txn.abort()
        raise
    return replace(result, status="written")
