"""The fast paths of registry parsing agree with the detailed checks they skip."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from control_plane.errors import UsageError
from control_plane.merkle import leaf_hash, root_from_leaf_hashes, state_leaf, state_root
from control_plane.registry import csvio, tables
from control_plane.registry.ids import file_row_id, normalise_id
from control_plane.registry.rows import _file_row_checked, _file_row_is_clean, file_row

ID_TEXT = st.one_of(
    st.from_regex(r"\A[A-Z][A-Z0-9]{0,5}(?:[-_.][A-Z0-9]{1,4}){0,3}\Z"),
    st.sampled_from(["REG-CP", "FILE-", "file-abc", "A" * 129, "", "A--B", "A\n"]),
    st.text(max_size=12),
)
COMPONENT = st.one_of(
    st.sampled_from([".", "..", "", "a\\b", "x\x85", "é", "...", ".a", "a."]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=6),
)
PATH_TEXT = st.one_of(
    st.lists(COMPONENT, min_size=1, max_size=4).map("/".join),
    st.text(max_size=12),
)
HEX_TEXT = st.one_of(
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    st.sampled_from(["", "A" * 64, "a" * 63, "a" * 65, "a" * 64 + "\n"]),
)


@st.composite
def file_fields(draw: st.DrawFn) -> tuple[str, ...]:
    path = draw(PATH_TEXT)
    row_id = draw(st.one_of(ID_TEXT, st.just(file_row_id(path))))
    return (row_id, path, draw(HEX_TEXT), "manual", "file", draw(st.text(max_size=4)))


@settings(max_examples=1500)
@given(file_fields())
@example(("REG-CP", "registries/control_plane_registry.csv", "", "system", "registry", ""))
@example((file_row_id("a/b.txt"), "a/b.txt", "0" * 64, "manual", "file", ""))
@example((file_row_id("a/./b"), "a/./b", "0" * 64, "manual", "file", ""))
def test_file_row_fast_path_agrees_with_the_checks(fields: tuple[str, ...]) -> None:
    checked = _file_row_checked(7, fields, "reg.csv")
    assert file_row(7, fields, "reg.csv") == checked
    if _file_row_is_clean(*fields[:3]):
        assert checked[1] == []


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("a/b.txt", True),
        ("...", True),
        (".hidden/x", True),
        ("a/./b", False),
        ("a/../b", False),
        ("./a", False),
        ("a/..", False),
        ("/a", False),
        ("a/", False),
        ("a//b", False),
        ("a\\b", False),
        ("a\x85b", False),
        ("a\nb", False),
        ("", False),
    ],
    ids=repr,
)
def test_fast_path_accepts_only_normalised_paths(path: str, clean: bool) -> None:
    row_id = file_row_id(path)
    assert _file_row_is_clean(row_id, path, "0" * 64) is clean


def _path_key(text: str) -> str:
    return tables._path_key(text)


@settings(max_examples=500)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=8), max_size=8))
@example(["A\u0301", "\u00c1", "a\u0301"])
@example(["\u1100", "\u1161", "\u11a8"])
@example(["ﬃ", "FFI", "\uff21_b"])
def test_bulk_keys_equal_one_by_one(values: list[str]) -> None:
    for key in (normalise_id, _path_key):
        bulk = tables._bulk_keys(values, key)
        if "\x00" in "".join(values):
            assert bulk is None
        else:
            assert bulk == [key(value) for value in values]


@settings(max_examples=300)
@given(st.lists(st.text(max_size=6), max_size=10))
def test_bulk_duplicate_check_agrees(values: list[str]) -> None:
    entries = [(line, value) for line, value in enumerate(values, start=2) if value]
    found = tables._duplicates(entries, normalise_id, rule="r", what="id", source="s")
    lines: set[int] = set()
    first: dict[str, int] = {}
    for line, value in entries:
        earlier = first.setdefault(normalise_id(value), line)
        if earlier != line:
            lines.update((earlier, line))
    assert found[0] == lines


@settings(max_examples=200)
@given(
    st.lists(
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=5).filter(
            lambda text: "\x00" not in text
        ),
        unique=True,
        max_size=12,
    )
)
@example(["\uffff", "\U00010000", "\ue000", "a"])
def test_state_root_orders_by_utf8_bytes(paths: list[str]) -> None:
    pairs = [(path, hashlib.sha256(path.encode()).hexdigest()) for path in reversed(paths)]
    ordered = sorted(pairs, key=lambda pair: pair[0].encode("utf-8"))
    expected = root_from_leaf_hashes([leaf_hash(state_leaf(p, d)) for p, d in ordered])
    assert state_root(pairs) == expected.hex()


def test_read_table_unescapes_only_when_a_quote_is_present() -> None:
    data = b"id,path\nA,'=x\nB,'y\n"
    records = csvio.read_table(data, ("id", "path"), limits=csvio.DEFAULT_LIMITS, source_name="t")
    assert [record.fields for record in records] == [("A", "=x"), ("B", "'y")]
    plain = csvio.read_table(
        b"id,path\nA,x\n", ("id", "path"), limits=csvio.DEFAULT_LIMITS, source_name="t"
    )
    assert [(record.line, record.fields) for record in plain] == [(2, ("A", "x"))]


@pytest.mark.parametrize(
    ("field", "refused"),
    [
        ("a" * 2048, False),
        ("a" * 8192, False),
        ("a" * 8193, True),
        ("é" * 4096, False),
        ("é" * 4097, True),
        ("😀" * 2048, False),
        ("😀" * 2049, True),
    ],
    ids=[
        "2048-ascii",
        "8192-ascii",
        "8193-ascii",
        "4096-2byte",
        "4097-2byte",
        "2048-4byte",
        "2049-4byte",
    ],
)
def test_field_size_limit_at_the_edges(field: str, refused: bool) -> None:
    data = f"id,path\nA,{field}\n".encode()
    if refused:
        with pytest.raises(UsageError, match=r"t:2: field path is larger than 8192 bytes"):
            csvio.read_table(data, ("id", "path"), limits=csvio.DEFAULT_LIMITS, source_name="t")
    else:
        csvio.read_table(data, ("id", "path"), limits=csvio.DEFAULT_LIMITS, source_name="t")
