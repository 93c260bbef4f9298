"""Semantic versions: parsing, SemVer 2.0.0 precedence, constraints."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.errors import UsageError
from control_plane.versions import (
    ANY_VERSION,
    Comparison,
    Dependency,
    Operator,
    Version,
    parse_constraint,
    parse_version,
)

# semver.org, section 11: each version has lower precedence than the next.
SEMVER_ORG_CHAIN = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "1.9.0",
    "1.10.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]


def test_semver_org_precedence_chain() -> None:
    versions = [parse_version(text) for text in SEMVER_ORG_CHAIN]
    for lower, higher in itertools.pairwise(versions):
        assert lower < higher
        assert higher > lower
        assert lower <= higher
        assert not higher <= lower
    shuffled = versions[1::2] + versions[::2]
    assert sorted(shuffled) == versions


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0-1", "1.0.0-a"),  # numeric identifiers rank below alphanumeric ones
        ("1.0.0-2", "1.0.0-10"),  # numeric identifiers compare as numbers
        ("1.0.0-a.b", "1.0.0-a.b.c"),  # a longer set of identifiers ranks higher
        ("1.0.0-B", "1.0.0-a"),  # alphanumeric identifiers compare in ASCII order
        ("0.9.99", "1.0.0-0"),
        ("1.0.0-rc.1+build.9", "1.0.0"),
    ],
    ids=[
        "numeric-below-alpha",
        "numeric-compare",
        "longer-set",
        "ascii-order",
        "major",
        "build-ignored",
    ],
)
def test_precedence_rules(lower: str, higher: str) -> None:
    assert parse_version(lower) < parse_version(higher)


def test_build_metadata_ignored_for_order_but_kept() -> None:
    left, right = parse_version("1.0.0+a"), parse_version("1.0.0+b.2")
    assert not left < right
    assert not right < left
    assert left <= right
    assert left >= right
    assert left.same_precedence(right)
    assert left != right
    assert str(right) == "1.0.0+b.2"


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0",
        "1.2.3",
        "10.20.30",
        "1.0.0-alpha.1",
        "1.0.0-0A.is.legal",
        "1.0.0+001",
        "1.0.0-rc.1+build.1-x",
    ],
)
def test_valid_versions_round_trip(text: str) -> None:
    assert str(parse_version(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-01",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "1.2.3+a..b",
        "v1.2.3",
        " 1.2.3",
        "1.2.3\n",
        "-1.2.3",
        "1.2.3-\u03b1",  # Greek alpha
        "1.2.\u0663",  # Arabic-Indic digit: \d would accept it, SemVer does not
        "1.2.3+" + "a" * 300,
        "9" * 5000 + ".0.0",
    ],
    ids=[
        "empty",
        "major-only",
        "no-patch",
        "four-parts",
        "leading-zero-major",
        "leading-zero-minor",
        "leading-zero-patch",
        "leading-zero-prerelease",
        "empty-prerelease",
        "empty-build",
        "empty-pre-identifier",
        "empty-build-identifier",
        "v-prefix",
        "leading-space",
        "trailing-newline",
        "negative",
        "non-ascii-prerelease",
        "unicode-digit",
        "too-long",
        "huge-number",
    ],
)
def test_invalid_versions_raise_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="invalid version"):
        parse_version(text)


def test_direct_construction_is_checked() -> None:
    with pytest.raises(ValueError, match="pre-release"):
        Version(1, 0, 0, prerelease=("a b",))
    with pytest.raises(ValueError, match="negative"):
        Version(-1, 0, 0)


@pytest.mark.parametrize(
    ("constraint", "version", "allowed"),
    [
        ("", "0.0.1", True),
        (">=1.2", "1.2.0", True),
        (">=1.2", "1.1.9", False),
        (">1", "1.0.0", False),
        (">1", "1.0.1", True),
        ("<2", "1.99.99", True),
        ("<2", "2.0.0", False),
        ("<2", "2.0.0-rc.1", True),  # plain precedence: pre-releases of 2.0.0 are below 2.0.0
        ("<=1.4.2", "1.4.2", True),
        ("==1.4", "1.4.0", True),
        ("==1.4.0", "1.4.0+build.7", True),
        ("!=1.4.0", "1.4.0", False),
        ("!=1.4.0", "1.4.1", True),
        (">=1.0,<2.0", "1.5.0", True),
        (">=1.0,<2.0", "2.0.0", False),
        (" >= 1.0 , < 2.0 ", "1.0.0", True),
        (">=1.0.0-beta", "1.0.0-alpha", False),
    ],
)
def test_constraint_allows(constraint: str, version: str, allowed: bool) -> None:
    assert parse_constraint(constraint).allows(parse_version(version)) is allowed


@pytest.mark.parametrize(
    "text",
    [
        "1.2.0",
        "=>1.2",
        "~=1.2",
        ">=",
        ">=1.2,",
        ",>=1.2",
        ">=1.2;<2",
        ">=01.2",
        ">=1.2.3.4",
        ">=a",
        "^1.2",
    ],
    ids=[
        "no-operator",
        "reversed-operator",
        "tilde-equal",
        "no-version",
        "trailing-comma",
        "leading-comma",
        "semicolon",
        "leading-zero",
        "four-parts",
        "letters",
        "caret",
    ],
)
def test_invalid_constraints_raise_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="invalid version constraint"):
        parse_constraint(text)


def test_constraint_canonical_text_pads_partial_versions() -> None:
    constraint = parse_constraint(">= 1.2 ,<2")
    assert str(constraint) == ">=1.2.0,<2.0.0"
    assert parse_constraint(str(constraint)) == constraint
    assert constraint.clauses[0] == Comparison(Operator.GE, Version(1, 2, 0))
    assert parse_constraint("") is ANY_VERSION
    assert ANY_VERSION.is_any


def test_dependency_text() -> None:
    assert str(Dependency("PKG-A")) == "PKG-A"
    assert str(Dependency("PKG-A", parse_constraint(">=1.2,<2"))) == "PKG-A>=1.2.0,<2.0.0"


_numbers = st.integers(min_value=0, max_value=10**6)
_pre_ident = st.one_of(
    _numbers.map(str),
    st.from_regex(r"[0-9]*[a-zA-Z-][0-9a-zA-Z-]*", fullmatch=True).filter(lambda s: len(s) < 12),
)
_build_ident = st.from_regex(r"[0-9a-zA-Z-]{1,8}", fullmatch=True)
versions = st.builds(
    Version,
    _numbers,
    _numbers,
    _numbers,
    st.lists(_pre_ident, max_size=4).map(tuple),
    st.lists(_build_ident, max_size=3).map(tuple),
)


@given(versions)
def test_str_parse_round_trip(version: Version) -> None:
    assert parse_version(str(version)) == version


@given(versions, versions)
def test_order_is_consistent(left: Version, right: Version) -> None:
    assert (left < right) + (left > right) + left.same_precedence(right) == 1
    assert (left <= right) == (left < right or left.same_precedence(right))
    for operator in Operator:
        assert (
            Comparison(operator, right).allows(left)
            == {
                Operator.GE: left >= right,
                Operator.GT: left > right,
                Operator.LE: left <= right,
                Operator.LT: left < right,
                Operator.EQ: left.same_precedence(right),
                Operator.NE: not left.same_precedence(right),
            }[operator]
        )
