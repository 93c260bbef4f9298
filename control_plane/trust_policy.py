"""Trust tiers, deprecation and downgrades: what may be installed, and who may say otherwise.

Pure rules, no environment and no effects.  ``judge`` decides one package row
that an install or update is about to write:

* ``verified`` installs quietly; ``community`` installs with a notice;
* ``experimental`` only with ``allow_experimental``; ``untrusted`` never;
* a deprecated row only with ``allow_deprecated`` (the refusal names the replacement);
* a version lower than the installed one only with ``allow_downgrade``.

The allowances themselves are an admin's act (``Action.OVERRIDE``); the
operations layer checks that before it asks this module anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from control_plane.errors import UsageError
from control_plane.findings import Finding
from control_plane.registry import PackageRow, Tier


class RefusalKind(StrEnum):
    """Why a row may not be installed; ``DOWNGRADE`` is a conflict, the others rejected content."""

    UNTRUSTED = "untrusted"
    EXPERIMENTAL = "experimental"
    DEPRECATED = "deprecated"
    DOWNGRADE = "downgrade"


@dataclass(frozen=True)
class Allowances:
    """The ``--allow-*`` flags of one install or update."""

    experimental: bool = False
    deprecated: bool = False
    downgrade: bool = False

    def flags(self) -> tuple[str, ...]:
        """The command-line flags these allowances stand for, in a fixed order."""
        named = (
            ("--allow-experimental", self.experimental),
            ("--allow-deprecated", self.deprecated),
            ("--allow-downgrade", self.downgrade),
        )
        return tuple(flag for flag, given in named if given)


NO_ALLOWANCES = Allowances()

# Tiers anyone who may pack can choose: they only lower trust.  Choosing
# community or verified vouches for a package, which is an admin's act.
SELF_SERVICE_TIERS = frozenset({Tier.EXPERIMENTAL, Tier.UNTRUSTED})
DEFAULT_TIER = Tier.COMMUNITY


@dataclass(frozen=True)
class Refusal:
    """One reason a row may not be installed: a one-line message and a hint."""

    kind: RefusalKind
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class Judgement:
    """The refusals (all of them, first one shown) and the notices for one row."""

    refusals: tuple[Refusal, ...] = ()
    notices: tuple[str, ...] = ()


def parse_tier(text: str) -> Tier:
    """The tier named ``text``.

    Raises:
        UsageError: not one of the four tier names.
    """
    try:
        return Tier(text)
    except ValueError:
        choices = ", ".join(tier.value for tier in Tier)
        raise UsageError(f"--tier must be one of {choices}, not {text!r}") from None


def tier_refusal(row: PackageRow, allow: Allowances) -> Refusal | None:
    """Why ``row``'s tier forbids installing it, or None."""
    if row.tier is Tier.UNTRUSTED:
        return Refusal(
            RefusalKind.UNTRUSTED,
            f"{row.id} {row.version} is in the untrusted tier and is never installed",
            hint=f"an admin may re-tier it after review: cpctl pack --id {row.id} --tier ...",
        )
    if row.tier is Tier.EXPERIMENTAL and not allow.experimental:
        return Refusal(
            RefusalKind.EXPERIMENTAL,
            f"{row.id} {row.version} is experimental; refusing to install it",
            hint="an admin may pass --allow-experimental",
        )
    return None


def deprecation_refusal(row: PackageRow, allow: Allowances) -> Refusal | None:
    """Why ``row``'s deprecation forbids installing it (naming the replacement), or None."""
    if not row.deprecated or allow.deprecated:
        return None
    instead = f"; use {row.replacement} instead" if row.replacement else " (no replacement named)"
    hint = f"cpctl install --id {row.replacement}" if row.replacement else None
    return Refusal(
        RefusalKind.DEPRECATED,
        f"{row.id} is deprecated{instead}",
        hint=hint or "an admin may pass --allow-deprecated",
    )


def downgrade_refusal(row: PackageRow, allow: Allowances) -> Refusal | None:
    """Why writing ``row`` over its installed version would be a refused downgrade, or None."""
    installed = row.installed_version
    if installed is None or not row.version < installed or allow.downgrade:
        return None
    return Refusal(
        RefusalKind.DOWNGRADE,
        f"{row.id}: registered version {row.version} is older than installed {installed};"
        " refusing to downgrade",
        hint="an admin may pass --allow-downgrade",
    )


def notices(row: PackageRow, allow: Allowances) -> tuple[str, ...]:
    """What an install of ``row`` (already judged admissible) tells the user."""
    said: list[str] = []
    if row.tier is Tier.COMMUNITY:
        said.append(
            f"{row.id} is a community package (not verified); review it before relying on it"
        )
    elif row.tier is Tier.EXPERIMENTAL:
        said.append(f"{row.id} is experimental, installed because of --allow-experimental")
    if row.deprecated:
        instead = f"; {row.replacement} replaces it" if row.replacement else ""
        said.append(f"{row.id} is deprecated, installed because of --allow-deprecated{instead}")
    installed = row.installed_version
    if installed is not None and row.version < installed:
        said.append(f"{row.id} downgraded from {installed} to {row.version} (--allow-downgrade)")
    return tuple(said)


def judge(row: PackageRow, allow: Allowances) -> Judgement:
    """Every refusal for writing ``row`` under ``allow``, or the notices when there is none."""
    found = (
        tier_refusal(row, allow),
        deprecation_refusal(row, allow),
        downgrade_refusal(row, allow),
    )
    refusals = tuple(refusal for refusal in found if refusal is not None)
    if refusals:
        return Judgement(refusals=refusals)
    return Judgement(notices=notices(row, allow))


def replacement_findings(packages: Mapping[str, PackageRow]) -> list[Finding]:
    """A finding for each deprecated row whose replacement is not a registered package."""
    return [
        Finding(
            row.id,
            "replacement-unknown",
            f"replacement {row.replacement} of deprecated {row.id} is not a registered package",
        )
        for row in packages.values()
        if row.deprecated and row.replacement and row.replacement not in packages
    ]


def may_choose_tier(tier: Tier, *, can_override: bool) -> bool:
    """Whether a packer may set ``tier`` explicitly (vouching tiers need ``can_override``)."""
    return can_override or tier in SELF_SERVICE_TIERS
