"""The identity card a package carries: chosen at pack, recorded in its registry row.

A package packed from an artifact that has an identity card (``cpctl ids
mint``) records that card's ULID in the ``card_id`` column, so the registry
row, the install's ledger entry and the card tell one story.  Only a
committed, clean card is recorded: a card with findings (modified,
unrecorded, a broken identity ledger) is refused rather than vouched for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from control_plane import identity_cards as cards
from control_plane.errors import CheckFailedError, UsageError
from control_plane.findings import Finding
from control_plane.identity_cards import IdCard
from control_plane.operations.ids import IdsStore
from control_plane.operations.session import Session
from control_plane.registry import PackageRow

MINT_HINT = "cpctl ids mint --kind KIND --path PATH"


def _contains(source: str, path: str) -> bool:
    return source in ("", path) or path.startswith(source + "/")


def packed_card(
    session: Session, sources: Sequence[str], chosen: str | None, *, required: str | None = None
) -> str:
    """The ULID of the card a package packed from ``sources`` carries, or ``""``.

    ``sources`` are the root-relative names packed.  Without ``chosen`` it is
    the card whose path is one of them (none: ``""``, unless ``required`` names
    the kind of card the package must carry); ``chosen`` must be a card whose
    path is a source or lies inside one.

    Raises:
        UsageError: ``chosen`` is not a ULID, not a card, or outside the sources;
            several sources have cards and none was chosen; ``required`` and none.
        CheckFailedError: the card (or the identity ledger) has findings.
    """
    if chosen is not None and (problem := cards.ulid_problem(chosen)) is not None:
        raise UsageError(f"--card {chosen!r}: {problem}")
    store = IdsStore(session.layout.root, session.ledger)
    if chosen is None and not store.cards_dir.is_dir():
        return _no_card(sources, required)
    state = store.state()
    if chosen is not None:
        card = next((card for card in state.cards if card.id == chosen), None)
        if card is None:
            raise UsageError(
                f"--card {chosen}: there is no identity card {cards.card_file(chosen)}",
                hint=MINT_HINT,
            )
        if not any(_contains(source, card.path) for source in sources):
            raise UsageError(
                f"card {chosen} is the identity of {card.path}, which this package does not contain"
            )
        _refuse_unclean(card, state.findings)
        return card.id
    matches = [card for card in state.cards if card.path in sources]
    if not matches:
        return _no_card(sources, required)
    for match in matches:  # two cards for one source: the later one's duplicate-path
        _refuse_unclean(match, state.findings)
    if len(matches) > 1:
        named = ", ".join(f"{card.path} ({card.id})" for card in matches)
        raise UsageError(
            f"several sources have identity cards: {named}; a package carries one",
            hint="name it with --card ULID",
        )
    return matches[0].id


def _no_card(sources: Sequence[str], required: str | None) -> str:
    """``""``: the package carries no card, unless one of kind ``required`` is required."""
    if required is None:
        return ""
    raise UsageError(
        f"{', '.join(sources)} has no identity card; this package must carry one",
        hint=f"cpctl ids mint --kind {required} --path {sources[0]}",
    )


def _refuse_unclean(card: IdCard, findings: Sequence[Finding]) -> None:
    for finding in findings:
        if finding.subject in (card.file, cards.IDS_LEDGER_FILE):
            raise CheckFailedError(
                f"identity card {card.file} cannot be recorded: {finding}",
                hint="cpctl ids validate",
            )


def card_findings(session: Session, packages: Mapping[str, PackageRow]) -> list[Finding]:
    """A ``card-unknown`` finding for each row whose ``card_id`` names no identity card."""
    carded = [row for row in packages.values() if row.card_id]
    if not carded:
        return []
    try:
        state = IdsStore(session.layout.root, session.ledger).state()
    except UsageError as error:
        return [Finding(cards.CARDS_DIR, "card-store", str(error))]
    known = {card.id for card in state.cards}
    return [
        Finding(
            row.id,
            "card-unknown",
            f"card_id {row.card_id} of {row.id} is not an identity card in {cards.CARDS_DIR}",
        )
        for row in carded
        if row.card_id not in known
    ]
