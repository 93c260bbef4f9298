"""Identity cards: one immutable YAML card per artifact, named by a ULID.

Pure domain code: cards and the identity ledger's records come in as bytes and
typed values, findings and bytes go out.  The operations layer
(``operations/ids.py``) reads the files and writes them in a transaction.

Layout inside a root:

* ``ids/cards/<ULID>.yaml`` -- one card: ``schema``, ``id``, ``kind``,
  ``path``, ``created``, ``minted_by``, always in that order;
* ``.ledger/ids.jsonl`` -- the identity ledger, hash-chained by the same
  code as the main ledger; each ``ids-mint`` entry records the card's file
  and the SHA-256 of its exact bytes, so a committed card can never change
  or disappear unnoticed;
* ``ids/registry.yaml`` -- generated index of every committed card, sorted by id.

Kinds are a fixed list (:data:`KINDS`): a typo is refused at mint and is a
finding at validate, and the registry can be grouped by kind.  Adding a kind
is a code change.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ulid import ULID

from control_plane import yamlio
from control_plane.digests import digests_equal, format_digest, is_hex64
from control_plane.findings import Finding
from control_plane.registry import is_registry_path

CARDS_DIR = "ids/cards"
REGISTRY_FILE = "ids/registry.yaml"
IDS_LEDGER_DIR = ".ledger"
IDS_LEDGER_NAME = "ids.jsonl"
IDS_LEDGER_FILE = f"{IDS_LEDGER_DIR}/{IDS_LEDGER_NAME}"
CARD_SCHEMA = "control-plane.id-card/1"
REGISTRY_SCHEMA = "control-plane.id-registry/1"
MINT_ACTION = "ids-mint"
MAX_CARD_BYTES = 64 * 1024

KINDS: tuple[str, ...] = (
    "plugin",
    "module",
    "package",
    "spec",
    "manifest",
    "contract",
    "policy",
    "schema",
    "example",
    "source",
    "test",
    "document",
    "config",
    "file",
)

CARD_KEYS: tuple[str, ...] = ("schema", "id", "kind", "path", "created", "minted_by")
# Top-level names a card may not point into: the identity stores and per-machine state.
UNCARDABLE_TOP_LEVEL = frozenset({"ids", IDS_LEDGER_DIR, ".control_plane", ".git"})

# Rule groups: ``ensure_immutability`` and ``validate_structure`` each run one.
IMMUTABILITY_RULES = frozenset(
    {"ids-ledger-chain", "ids-ledger-record", "card-missing", "card-modified", "card-unrecorded"}
)
STRUCTURE_RULES = frozenset(
    {
        "card-not-regular",
        "card-unreadable",
        "card-filename",
        "card-yaml",
        "card-schema",
        "card-id-format",
        "card-kind",
        "card-path",
        "duplicate-id",
        "duplicate-path",
    }
)
RULE_GROUPS: Mapping[str, frozenset[str]] = {
    "immutability": IMMUTABILITY_RULES,
    "structure": STRUCTURE_RULES,
}

_CARD_NAME = re.compile(r"(?P<id>[0-9A-Z]{26})\.yaml")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class IdCard:
    """One identity card: a ULID naming exactly one root-relative artifact path."""

    id: str
    kind: str
    path: str
    created: str
    minted_by: str

    @property
    def file(self) -> str:
        """Root-relative path of this card's file."""
        return card_file(self.id)

    def to_mapping(self) -> dict[str, str]:
        """The card's fields in the fixed key order."""
        return {
            "schema": CARD_SCHEMA,
            "id": self.id,
            "kind": self.kind,
            "path": self.path,
            "created": self.created,
            "minted_by": self.minted_by,
        }

    def render(self) -> bytes:
        """The card's exact file bytes (deterministic YAML)."""
        return yamlio.dump(self.to_mapping())


@dataclass(frozen=True)
class MintRecord:
    """What one ``ids-mint`` entry of the identity ledger committed."""

    seq: int
    id: str
    kind: str
    path: str
    card: str
    digest: str


@dataclass(frozen=True)
class CardFile:
    """One directory entry of ``ids/cards/`` as the operations layer found it."""

    name: str
    data: bytes | None  # None: not a regular file, or unreadable (see ``problem``)
    problem: str | None = None
    regular: bool = True


def card_file(card_id: str) -> str:
    """Root-relative path of the card for ``card_id``."""
    return f"{CARDS_DIR}/{card_id}.yaml"


def card_digest(data: bytes) -> str:
    """``sha256:HEX`` of a card's bytes, as the identity ledger records it."""
    return format_digest(hashlib.sha256(data).hexdigest())


def ulid_problem(text: object) -> str | None:
    """Why ``text`` is not a ULID in canonical form (26 upper-case Crockford base32), or None."""
    if not isinstance(text, str):
        return "must be a string"
    try:
        parsed = ULID.from_str(text)
    except ValueError as exc:
        return f"is not a ULID ({exc})"
    if str(parsed) != text:
        return f"is not in canonical ULID form (expected {parsed})"
    return None


def path_problem(text: object) -> str | None:
    """Why ``text`` cannot be a card's artifact path, or None."""
    if not isinstance(text, str):
        return "must be a string"
    if not is_registry_path(text):
        return "must be a normalised root-relative POSIX path (no '..', '.', '//', '\\')"
    if text.split("/", 1)[0] in UNCARDABLE_TOP_LEVEL:
        return "must not point into the identity stores or per-machine state"
    return None


def kind_problem(text: object) -> str | None:
    """Why ``text`` is not a known kind, or None."""
    if text in KINDS:
        return None
    return f"must be one of {', '.join(KINDS)}"


def new_card(card_id: str, kind: str, path: str, created: str, minted_by: str) -> IdCard:
    """A card for a fresh mint; the caller has checked ``kind`` and ``path``.

    Raises:
        ValueError: a field breaks the card schema (a bug in the caller).
    """
    card = IdCard(id=card_id, kind=kind, path=path, created=created, minted_by=minted_by)
    problems = _field_problems(card.to_mapping())
    if problems:
        raise ValueError("; ".join(message for _, message in problems))
    return card


def parse_card(name: str, data: bytes) -> tuple[IdCard | None, list[Finding]]:
    """Parse and check one card file (``name`` is its file name in ``ids/cards/``).

    Malformed YAML or a wrong structure is a finding, never an exception.
    """
    subject = f"{CARDS_DIR}/{name}"
    match = _CARD_NAME.fullmatch(name)
    findings = (
        [Finding(subject, "card-filename", "card files are named <ULID>.yaml")]
        if match is None
        else []
    )
    if len(data) > MAX_CARD_BYTES:
        return None, [*findings, Finding(subject, "card-schema", "card is larger than 64 KiB")]
    try:
        document = yamlio.load_strict(data)
    except UnicodeDecodeError:
        return None, [*findings, Finding(subject, "card-yaml", "card is not UTF-8 text")]
    except yamlio.YamlError as exc:
        return None, [*findings, Finding(subject, "card-yaml", str(exc))]
    if not isinstance(document, dict):
        return None, [*findings, Finding(subject, "card-schema", "card is not a YAML mapping")]
    missing = [key for key in CARD_KEYS if key not in document]
    unknown = sorted(str(key) for key in document if key not in CARD_KEYS)
    structural = [Finding(subject, rule, message) for rule, message in _field_problems(document)]
    if missing:
        structural.append(Finding(subject, "card-schema", f"missing key(s): {', '.join(missing)}"))
    if unknown:
        structural.append(Finding(subject, "card-schema", f"unknown key(s): {', '.join(unknown)}"))
    if structural:
        return None, findings + structural
    card = IdCard(
        id=document["id"],
        kind=document["kind"],
        path=document["path"],
        created=document["created"],
        minted_by=document["minted_by"],
    )
    if match is not None and match.group("id") != card.id:
        findings.append(
            Finding(subject, "card-filename", f"file name does not match the card's id {card.id}")
        )
    return card, findings


def _field_problems(document: Mapping[Any, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if "schema" in document and document["schema"] != CARD_SCHEMA:
        problems.append(("card-schema", f"schema must be {CARD_SCHEMA}"))
    if "id" in document and (why := ulid_problem(document["id"])) is not None:
        problems.append(("card-id-format", f"id {why}"))
    if "kind" in document and (why := kind_problem(document["kind"])) is not None:
        problems.append(("card-kind", f"kind {why}"))
    if "path" in document and (why := path_problem(document["path"])) is not None:
        problems.append(("card-path", f"path {why}"))
    if "created" in document and not _is_timestamp(document["created"]):
        problems.append(("card-schema", "created must be a quoted YYYY-MM-DDTHH:MM:SSZ string"))
    minted_by = document.get("minted_by", "x")
    if not isinstance(minted_by, str) or not minted_by:
        problems.append(("card-schema", "minted_by must be a non-empty string"))
    return problems


def _is_timestamp(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.strptime(value, _TIME_FORMAT)
    except ValueError:
        return False
    return True


def mint_details(card: IdCard) -> dict[str, str]:
    """The ``details`` of an ``ids-mint`` ledger record."""
    return {"id": card.id, "kind": card.kind, "path": card.path, "card": card.file}


def parse_mint_record(seq: int, fields: Mapping[str, Any]) -> MintRecord | str:
    """The committed card of one identity-ledger entry, or why the entry is not a mint record."""
    if fields.get("action") != MINT_ACTION:
        return f"unknown action {fields.get('action')!r}"
    details, digests = fields.get("details"), fields.get("digests")
    if not isinstance(details, dict) or not isinstance(digests, dict):
        return "details and digests must be objects"
    values = [details.get(key) for key in ("id", "kind", "path", "card")]
    digest = digests.get("card")
    if not all(isinstance(value, str) for value in values) or not isinstance(digest, str):
        return "a mint record needs details id, kind, path, card and digests card"
    card_id, kind, path, card = (str(value) for value in values)
    if ulid_problem(card_id) is not None or card != card_file(card_id):
        return f"card {card!r} does not match id {card_id!r}"
    if not (digest.startswith("sha256:") and is_hex64(digest.removeprefix("sha256:"))):
        return "digests card is not sha256:HEX"
    return MintRecord(seq=seq, id=card_id, kind=kind, path=path, card=card, digest=digest)


def check_cards(
    files: Sequence[CardFile], records: Sequence[MintRecord]
) -> tuple[list[Finding], list[IdCard]]:
    """Every finding about the cards on disk against the committed records; the parsed cards.

    Rules: a committed card must exist (``card-missing``) with the recorded
    bytes (``card-modified``); a card file must be committed
    (``card-unrecorded``), regular, readable, well formed; ids and artifact
    paths are unique (``duplicate-id``, ``duplicate-path``: one artifact per id).
    """
    findings: list[Finding] = []
    by_card: dict[str, MintRecord] = {}
    for record in records:
        if record.card in by_card:
            findings.append(
                Finding(
                    IDS_LEDGER_FILE,
                    "duplicate-id",
                    f"entries {by_card[record.card].seq} and {record.seq} both mint {record.id}",
                )
            )
            continue
        by_card[record.card] = record
    present: set[str] = set()
    cards: list[tuple[str, IdCard]] = []
    for entry in sorted(files, key=lambda item: item.name):
        subject = f"{CARDS_DIR}/{entry.name}"
        present.add(subject)
        if not entry.regular:
            findings.append(Finding(subject, "card-not-regular", "not a regular file"))
            continue
        if entry.data is None:
            findings.append(Finding(subject, "card-unreadable", entry.problem or "unreadable"))
            continue
        committed = by_card.get(subject)
        if committed is None:
            findings.append(
                Finding(
                    subject,
                    "card-unrecorded",
                    f"card is not in the identity ledger {IDS_LEDGER_FILE} (mint cards with cpctl ids mint)",
                )
            )
        elif not digests_equal(card_digest(entry.data), committed.digest):
            findings.append(
                Finding(
                    subject,
                    "card-modified",
                    f"card changed since it was committed (ledger entry {committed.seq}); cards are immutable",
                )
            )
        card, problems = parse_card(entry.name, entry.data)
        findings += problems
        if card is not None:
            cards.append((subject, card))
    for card_path, record in sorted(by_card.items()):
        if card_path not in present:
            findings.append(
                Finding(
                    card_path,
                    "card-missing",
                    f"committed card (ledger entry {record.seq}, path {record.path}) was deleted",
                )
            )
    findings += _duplicates(cards, lambda card: card.id, "duplicate-id", "id")
    findings += _duplicates(cards, lambda card: card.path, "duplicate-path", "artifact path")
    return findings, [card for _, card in cards]


def _duplicates(
    cards: Iterable[tuple[str, IdCard]], key: Callable[[IdCard], str], rule: str, label: str
) -> list[Finding]:
    first: dict[str, str] = {}
    findings: list[Finding] = []
    for subject, card in cards:
        value = key(card)
        if value in first:
            findings.append(
                Finding(
                    subject,
                    rule,
                    f"{label} {value} already has card {first[value]} (one artifact per id)",
                )
            )
        else:
            first[value] = subject
    return findings


def render_registry(cards: Iterable[IdCard], digests: Mapping[str, str]) -> bytes:
    """``ids/registry.yaml``: every committed card sorted by id, with its card digest."""
    rows = [
        {
            "id": card.id,
            "kind": card.kind,
            "path": card.path,
            "card": card.file,
            "digest": digests[card.id],
            "created": card.created,
            "minted_by": card.minted_by,
        }
        for card in sorted(cards, key=lambda card: card.id)
    ]
    return yamlio.dump({"schema": REGISTRY_SCHEMA, "count": len(rows), "ids": rows})
