"""Semantic versions (SemVer 2.0.0), version constraints, and package dependencies.

``Version`` orders by SemVer precedence: pre-release identifiers count, build
metadata does not (it is kept for display and for exact equality).
Constraints are comma-separated comparisons that must all hold; partial
versions such as ``1`` or ``1.2`` are padded with zeros.  Comparisons use
plain precedence, so ``<2.0.0`` admits ``2.0.0-rc.1``: what you write is what
is compared, with no hidden pre-release rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from control_plane.errors import UsageError

MAX_VERSION_CHARS = 256
_SHOWN_CHARS = 80

_NUMERIC = r"0|[1-9][0-9]*"
_PRE_IDENT = r"0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*"
_BUILD_IDENT = r"[0-9a-zA-Z-]+"
_SEMVER = re.compile(
    rf"(?P<major>{_NUMERIC})\.(?P<minor>{_NUMERIC})\.(?P<patch>{_NUMERIC})"
    rf"(?:-(?P<pre>(?:{_PRE_IDENT})(?:\.(?:{_PRE_IDENT}))*))?"
    rf"(?:\+(?P<build>{_BUILD_IDENT}(?:\.{_BUILD_IDENT})*))?",
    re.ASCII,
)
_PARTIAL = re.compile(rf"(?P<major>{_NUMERIC})(?:\.(?P<minor>{_NUMERIC}))?", re.ASCII)
_PRE_IDENT_RE = re.compile(_PRE_IDENT, re.ASCII)
_BUILD_IDENT_RE = re.compile(_BUILD_IDENT, re.ASCII)
_CLAUSE = re.compile(r" *(>=|<=|==|!=|>|<) *([^ ]+) *")


def _shown(text: str) -> str:
    """A bounded ``repr`` for messages: hostile input must not flood a terminal."""
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + "..."
    return repr(text)


@dataclass(frozen=True)
class Version:
    """A SemVer 2.0.0 version.

    Ordering follows SemVer precedence (build metadata ignored); ``==``
    compares every part including build metadata, so two versions can be
    neither ``<`` nor ``>`` each other yet unequal (``1.0.0+a`` and ``1.0.0+b``).
    Use ``same_precedence`` when build metadata should not matter.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if min(self.major, self.minor, self.patch) < 0:
            raise ValueError(f"negative version component in {self}")
        for ident in self.prerelease:
            if _PRE_IDENT_RE.fullmatch(ident) is None:
                raise ValueError(f"invalid pre-release identifier {ident!r}")
        for ident in self.build:
            if _BUILD_IDENT_RE.fullmatch(ident) is None:
                raise ValueError(f"invalid build identifier {ident!r}")

    @property
    def precedence_key(self) -> tuple[int, int, int, tuple[object, ...]]:
        """A sort key implementing SemVer precedence (section 11)."""
        if not self.prerelease:
            # A release ranks above every pre-release of the same core version.
            return (self.major, self.minor, self.patch, (1,))
        idents = tuple(
            (0, int(ident), "") if ident.isdigit() else (1, 0, ident) for ident in self.prerelease
        )
        return (self.major, self.minor, self.patch, (0, idents))

    def same_precedence(self, other: Version) -> bool:
        """True when neither version ranks above the other (build metadata ignored)."""
        return self.precedence_key == other.precedence_key

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence_key < other.precedence_key

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence_key <= other.precedence_key

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence_key > other.precedence_key

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.precedence_key >= other.precedence_key

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def parse_version(text: str) -> Version:
    """Parse a full SemVer 2.0.0 version such as ``1.2.3-rc.1+build.5``.

    Raises:
        UsageError: not a valid semantic version (or longer than 256 characters).
    """
    match = _SEMVER.fullmatch(text) if len(text) <= MAX_VERSION_CHARS else None
    if match is None:
        raise UsageError(
            f"invalid version {_shown(text)}: expected a semantic version MAJOR.MINOR.PATCH"
            " with optional -PRERELEASE and +BUILD (semver.org)"
        )
    pre = match.group("pre")
    build = match.group("build")
    return Version(
        int(match.group("major")),
        int(match.group("minor")),
        int(match.group("patch")),
        tuple(pre.split(".")) if pre else (),
        tuple(build.split(".")) if build else (),
    )


def _constraint_version(text: str) -> Version:
    partial = _PARTIAL.fullmatch(text) if len(text) <= MAX_VERSION_CHARS else None
    if partial is not None:
        return Version(int(partial.group("major")), int(partial.group("minor") or 0), 0)
    return parse_version(text)


class Operator(StrEnum):
    """The comparison operators a constraint clause may use."""

    GE = ">="
    GT = ">"
    LE = "<="
    LT = "<"
    EQ = "=="
    NE = "!="


@dataclass(frozen=True)
class Comparison:
    """One clause of a constraint: an operator and the version it compares against."""

    operator: Operator
    version: Version

    def allows(self, version: Version) -> bool:
        """True when ``version`` satisfies this clause (by precedence)."""
        left, right = version.precedence_key, self.version.precedence_key
        match self.operator:
            case Operator.GE:
                return left >= right
            case Operator.GT:
                return left > right
            case Operator.LE:
                return left <= right
            case Operator.LT:
                return left < right
            case Operator.EQ:
                return left == right
            case Operator.NE:
                return left != right

    def __str__(self) -> str:
        return f"{self.operator.value}{self.version}"


@dataclass(frozen=True)
class VersionConstraint:
    """A conjunction of comparisons; no clauses means any version is acceptable."""

    clauses: tuple[Comparison, ...] = ()

    @property
    def is_any(self) -> bool:
        """True when the constraint accepts every version."""
        return not self.clauses

    def allows(self, version: Version) -> bool:
        """True when ``version`` satisfies every clause."""
        return all(clause.allows(version) for clause in self.clauses)

    def __str__(self) -> str:
        return ",".join(str(clause) for clause in self.clauses)


ANY_VERSION = VersionConstraint()


def parse_constraint(text: str) -> VersionConstraint:
    """Parse ``>=1.2,<2`` style constraints; empty text (or spaces) means any version.

    Raises:
        UsageError: an empty clause, an unknown operator, or an invalid version.
    """
    if not text.strip(" "):
        return ANY_VERSION
    clauses: list[Comparison] = []
    for raw in text.split(","):
        match = _CLAUSE.fullmatch(raw)
        if match is None:
            raise UsageError(
                f"invalid version constraint {_shown(raw.strip(' '))} in {_shown(text)}:"
                " expected an operator (>=, >, <=, <, ==, !=) followed by a version"
            )
        try:
            version = _constraint_version(match.group(2))
        except UsageError as exc:
            raise UsageError(f"invalid version constraint {_shown(text)}: {exc}") from None
        clauses.append(Comparison(Operator(match.group(1)), version))
    return VersionConstraint(tuple(clauses))


@dataclass(frozen=True)
class Dependency:
    """A package id with the versions of it that are acceptable.

    ``str()`` gives the canonical registry text, ``PKG-A>=1.2.0,<2.0.0`` or ``PKG-A``.
    The id's form is checked where dependencies are parsed (``control_plane.registry``).
    """

    package_id: str
    constraint: VersionConstraint = field(default=ANY_VERSION)

    def __str__(self) -> str:
        return f"{self.package_id}{self.constraint}"
