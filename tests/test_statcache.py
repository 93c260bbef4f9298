"""The stat cache: when a cached digest may be trusted, strict parsing, no-follow statting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.errors import UsageError
from control_plane.statcache import (
    RACY_WINDOW_NS,
    SCHEMA,
    CacheEntry,
    FileStat,
    StatCache,
    dump_statcache,
    parse_statcache,
    stat_regular_files,
)

DIGEST = "ab" * 32
TAKEN = 100 * 10**9
OLD = FileStat(size=10, mtime_ns=TAKEN - 5 * 10**9, inode=7, ctime_ns=TAKEN - 5 * 10**9)


@pytest.mark.parametrize(
    ("current", "trusted"),
    [
        (OLD, True),
        (FileStat(11, OLD.mtime_ns, OLD.inode, OLD.ctime_ns), False),
        (FileStat(OLD.size, OLD.mtime_ns + 1, OLD.inode, OLD.ctime_ns), False),
        (FileStat(OLD.size, OLD.mtime_ns, 8, OLD.ctime_ns), False),
        (FileStat(OLD.size, OLD.mtime_ns, OLD.inode, OLD.ctime_ns + 1), False),
    ],
    ids=["unchanged", "size", "mtime", "inode", "ctime"],
)
def test_only_an_unchanged_stat_is_trusted(current: FileStat, trusted: bool) -> None:
    cache = StatCache(TAKEN, {"a": CacheEntry.of(OLD, DIGEST)})
    assert cache.trusted_digest("a", current) == (DIGEST if trusted else None)
    assert cache.trusted_digest("b", current) is None


@pytest.mark.parametrize(
    ("mtime_ns", "ctime_ns", "trusted"),
    [
        (TAKEN - RACY_WINDOW_NS - 1, TAKEN - RACY_WINDOW_NS - 1, True),
        (TAKEN - RACY_WINDOW_NS, TAKEN - RACY_WINDOW_NS - 1, False),
        (TAKEN - RACY_WINDOW_NS - 1, TAKEN - RACY_WINDOW_NS, False),
        (TAKEN + 10**9, TAKEN - 10 * 10**9, False),
    ],
    ids=["older-than-window", "mtime-in-window", "ctime-in-window", "mtime-in-future"],
)
def test_racy_files_are_never_trusted(mtime_ns: int, ctime_ns: int, trusted: bool) -> None:
    seen = FileStat(10, mtime_ns, 7, ctime_ns)
    cache = StatCache(TAKEN, {"a": CacheEntry.of(seen, DIGEST)})
    assert (cache.trusted_digest("a", seen) is not None) is trusted


paths = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=20,
)
naturals = st.integers(min_value=0, max_value=2**63)
entries = st.builds(
    CacheEntry.of,
    st.builds(FileStat, naturals, naturals, naturals, naturals),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)


@given(st.dictionaries(paths, entries, max_size=8), naturals)
def test_dump_then_parse_round_trips(cache_entries: dict[str, CacheEntry], taken: int) -> None:
    cache = StatCache(taken, cache_entries)
    data = dump_statcache(cache)
    assert parse_statcache(data) == cache
    assert dump_statcache(parse_statcache(data)) == data


def _doc(**overrides: object) -> bytes:
    document: dict[str, object] = {
        "schema": SCHEMA,
        "taken_at_ns": 5,
        "entries": {"a": [1, 2, 3, 4, DIGEST]},
    }
    document.update(overrides)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"\xff",
        _doc(schema="control-plane.statcache/2"),
        _doc(taken_at_ns="5"),
        _doc(taken_at_ns=True),
        _doc(entries=[]),
        _doc(entries={"a": [1, 2, 3, DIGEST]}),
        _doc(entries={"a": [1, 2, 3, -4, DIGEST]}),
        _doc(entries={"a": [1, 2.5, 3, 4, DIGEST]}),
        _doc(entries={"a": [1, 2, 3, 4, DIGEST.upper()]}),
        _doc(entries={"a": [1, 2, 3, 4, DIGEST[:-1]]}),
        _doc(entries={"a": {"size": 1}}),
        _doc().replace(b'"taken_at_ns": 5', b'"taken_at_ns": NaN'),
    ],
    ids=[
        "empty",
        "not-an-object",
        "not-utf8",
        "other-schema",
        "time-as-string",
        "time-as-bool",
        "entries-not-object",
        "short-entry",
        "negative-field",
        "float-field",
        "upper-case-digest",
        "short-digest",
        "entry-object",
        "nan",
    ],
)
def test_malformed_caches_are_rejected(data: bytes) -> None:
    with pytest.raises(UsageError, match="stat cache"):
        parse_statcache(data)


def test_stat_never_follows_links_and_skips_what_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f.txt").write_text("x")
    (tmp_path / "top.txt").write_text("yy")
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    (tmp_path / "file-link.txt").symlink_to(tmp_path / "top.txt")
    os.mkfifo(tmp_path / "fifo")
    found = stat_regular_files(
        tmp_path,
        [
            "real/f.txt",
            "top.txt",
            "linked/f.txt",
            "file-link.txt",
            "fifo",
            "real",
            "gone/x.txt",
            "real/../top.txt",
        ],
    )
    assert sorted(found) == ["real/f.txt", "top.txt"]
    info = (tmp_path / "top.txt").stat()
    assert found["top.txt"] == FileStat(2, info.st_mtime_ns, info.st_ino, info.st_ctime_ns)


def test_stat_of_many_directories_keeps_descriptors_bounded(tmp_path: Path) -> None:
    rel_paths = []
    for index in range(300):
        directory = tmp_path / f"d{index:03d}" / "inner"
        directory.mkdir(parents=True)
        (directory / "f").write_text("z")
        rel_paths.append(f"d{index:03d}/inner/f")
    assert sorted(stat_regular_files(tmp_path, rel_paths)) == sorted(rel_paths)
    assert len(os.listdir("/proc/self/fd")) < 64


def test_stat_of_a_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot open root"):
        stat_regular_files(tmp_path / "nope", ["a"])
