"""read_archive against hostile archives: every one is refused, nothing escapes the sink.

The archives are built here from raw tar headers (so each rule can be broken
on purpose, which tarfile would not always allow) and gzip.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_plane.archive import ArchiveLimits, DirectorySink, read_archive
from control_plane.errors import DigestMismatchError, UnsafeArchiveError

POSIX = b"ustar\x0000"
GNU = b"ustar  \x00"
END = bytes(1024)
LIMITS = ArchiveLimits()


def header(
    name: bytes | str,
    *,
    size: int = 0,
    mode: int = 0o644,
    typeflag: bytes = b"0",
    linkname: bytes = b"",
    magic: bytes = POSIX,
    prefix: bytes = b"",
    size_field: bytes | None = None,
    checksum_delta: int = 0,
) -> bytes:
    """One 512-byte tar header with a correct checksum (unless told otherwise)."""
    raw_name = name.encode("utf-8") if isinstance(name, str) else name
    fields = (
        raw_name.ljust(100, b"\x00")[:100]
        + b"%07o\x00" % mode
        + b"0000000\x00" * 2
        + (size_field if size_field is not None else b"%011o\x00" % size)
        + b"00000000000\x00"
        + b" " * 8
        + typeflag
        + linkname.ljust(100, b"\x00")
        + magic
        + bytes(64)
        + bytes(16)
        + prefix.ljust(155, b"\x00")
        + bytes(12)
    )
    assert len(fields) == 512
    checksum = sum(fields) + checksum_delta
    return fields[:148] + b"%06o\x00 " % checksum + fields[156:]


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def member(name: bytes | str, data: bytes = b"", **options: object) -> bytes:
    return header(name, size=len(data), **options) + padded(data)  # type: ignore[arg-type]


def directory(name: str, mode: int = 0o755) -> bytes:
    return header(name, typeflag=b"5", mode=mode)


def pax(records: dict[bytes, bytes], typeflag: bytes = b"x") -> bytes:
    body = b""
    for key, value in records.items():
        text = b" %s=%s\n" % (key, value)
        length = len(text) + len(str(len(text)))
        length += len(str(length)) - len(str(len(text)))
        body += b"%d%s" % (length, text)
    return member("././@PaxHeader", body, typeflag=typeflag)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def tar_gz(*blocks: bytes) -> bytes:
    return gz(b"".join(blocks) + END)


def around(*hostile: bytes) -> bytes:
    """A good member before the hostile ones and another after them."""
    return tar_gz(member("ok.txt", b"ok\n"), *hostile, member("after.txt", b"after\n"))


def tree(base: Path) -> set[str]:
    return {path.relative_to(base).as_posix() for path in base.rglob("*")}


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], bytes]
    message: str
    staged: frozenset[str] = frozenset({"ok.txt"})
    limits: ArchiveLimits = LIMITS


NOTHING: frozenset[str] = frozenset()
ZEROS = bytes(4 << 20)

CASES = [
    # Member types other than regular files and directories.
    Case(
        "symlink",
        lambda t: around(header("evil", typeflag=b"2", linkname=b"/etc/passwd")),
        "symbolic link",
    ),
    Case(
        "hardlink", lambda t: around(header("hl", typeflag=b"1", linkname=b"ok.txt")), "hard link"
    ),
    Case("char-device", lambda t: around(header("dev", typeflag=b"3")), "character device"),
    Case("block-device", lambda t: around(header("blk", typeflag=b"4")), "block device"),
    Case("fifo", lambda t: around(header("fifo", typeflag=b"6")), "fifo"),
    Case("contiguous", lambda t: around(member("c.bin", b"data", typeflag=b"7")), "contiguous"),
    Case(
        "gnu-sparse", lambda t: around(member("s.bin", b"data", typeflag=b"S", magic=GNU)), "sparse"
    ),
    Case(
        "gnu-long-link",
        lambda t: around(member("././@LongLink", b"target\x00", typeflag=b"K", magic=GNU)),
        "long link",
    ),
    Case(
        "gnu-volume-label",
        lambda t: around(header("label", typeflag=b"V", magic=GNU)),
        "volume label",
    ),
    Case(
        "unknown-type",
        lambda t: around(member("u.bin", b"x", typeflag=b"Z")),
        "unknown member type",
    ),
    Case(
        "pax-sparse",
        lambda t: around(
            pax({b"GNU.sparse.major": b"1", b"GNU.sparse.minor": b"0"}), member("sp", b"d")
        ),
        "sparse",
    ),
    Case(
        "pax-linkpath",
        lambda t: around(pax({b"linkpath": b"/etc"}), member("lp", b"d")),
        "linkpath",
    ),
    Case(
        "global-pax-path",
        lambda t: around(pax({b"path": b"x"}, typeflag=b"g"), member("g", b"d")),
        "'path'",
    ),
    # Names.
    Case("empty-name", lambda t: around(member("", b"x")), "empty name"),
    Case("absolute", lambda t: around(member(str(t / "escape"), b"x")), "absolute path"),
    Case("dotdot", lambda t: around(member("../escape", b"x")), r"'\.\.' component"),
    Case("dotdot-deep", lambda t: around(member("a/../../escape", b"x")), r"'\.\.' component"),
    Case("dot-slash-dotdot", lambda t: around(member("./../escape", b"x")), r"'\.\.' component"),
    Case("dot-component", lambda t: around(member("a/./b", b"x")), r"'\.' component"),
    Case("dot-file", lambda t: around(member(".", b"x")), r"'\.' component"),
    Case("empty-component", lambda t: around(member("a//b", b"x")), "empty path component"),
    Case("file-trailing-slash", lambda t: around(member("f/", b"x")), "empty path component"),
    Case("control-character", lambda t: around(member("bad\x01name", b"x")), "control character"),
    Case("newline", lambda t: around(member("bad\nname", b"x")), "control character"),
    Case("delete-character", lambda t: around(member("bad\x7fname", b"x")), "control character"),
    Case("c1-control", lambda t: around(member("bad\u0085name", b"x")), "control character"),
    Case("backslash", lambda t: around(member("..\\escape", b"x")), "backslash"),
    Case("not-utf8", lambda t: around(member(b"bad\xffname", b"x")), "not valid UTF-8"),
    Case("overlong-utf8-slash", lambda t: around(member(b"a\xc0\xafb", b"x")), "not valid UTF-8"),
    Case(
        "name-too-long",
        lambda t: around(pax({b"path": b"a/" * 512 + b"f"}), member("n", b"x")),
        "over the limit",
    ),
    Case(
        "component-too-long",
        lambda t: around(pax({b"path": b"d/" + b"c" * 256}), member("n", b"x")),
        "component",
    ),
    Case(
        "gnu-longname-dotdot",
        lambda t: around(
            member("././@LongLink", b"../escape\x00", typeflag=b"L", magic=GNU),
            member("x", b"x", magic=GNU),
        ),
        r"'\.\.' component",
    ),
    Case(
        "ustar-prefix-dotdot",
        lambda t: around(member("escape", b"x", prefix=b"..")),
        r"'\.\.' component",
    ),
    Case(
        "pax-path-dotdot",
        lambda t: around(pax({b"path": b"../escape"}), member("harmless", b"x")),
        r"'\.\.'",
    ),
    Case(
        "pax-path-not-utf8",
        lambda t: around(pax({b"path": b"\xff"}), member("harmless", b"x")),
        "UTF-8",
    ),
    Case("duplicate", lambda t: around(member("ok.txt", b"again")), "duplicate member"),
    Case(
        "duplicate-directory",
        lambda t: around(directory("d/"), directory("d/")),
        "duplicate member",
        staged=frozenset({"ok.txt", "d"}),
    ),
    Case("case-collision", lambda t: around(member("OK.TXT", b"x")), "collides"),
    Case(
        "nfc-collision",
        lambda t: around(member("caf\u00e9", b"1"), member("cafe\u0301", b"2")),
        "collides",
        staged=frozenset({"ok.txt", "caf\u00e9"}),
    ),
    Case("file-as-parent", lambda t: around(member("ok.txt/inner", b"x")), "is a file member"),
    Case(
        "file-after-its-children",
        lambda t: around(member("d/x", b"x"), member("d", b"y")),
        "need a directory",
        staged=frozenset({"ok.txt", "d", "d/x"}),
    ),
    Case(
        "file-then-directory", lambda t: around(directory("ok.txt/")), "both a file and a directory"
    ),
    Case(
        "parent-case-collision",
        lambda t: around(member("Dir/a", b"x"), member("dir/b", b"y")),
        "collides",
        staged=frozenset({"ok.txt", "Dir", "Dir/a"}),
    ),
    # Modes.
    Case("setuid", lambda t: around(member("suid", b"x", mode=0o4755)), "setuid"),
    Case("setgid", lambda t: around(member("sgid", b"x", mode=0o2755)), "setuid or setgid"),
    Case("setgid-directory", lambda t: around(directory("sg/", mode=0o2755)), "setuid or setgid"),
    Case(
        "directory-with-content",
        lambda t: around(header("d/", typeflag=b"5", size=10) + padded(b"x" * 10)),
        "directory with content",
    ),
    # Limits.
    Case(
        "too-many-entries",
        lambda t: around(member("a", b"1"), member("b", b"2")),
        "more than 2 entries",
        limits=ArchiveLimits(max_entries=2),
        staged=frozenset({"ok.txt", "a"}),
    ),
    Case(
        "file-too-big",
        lambda t: around(member("big", b"x" * 200)),
        "per-file limit",
        limits=ArchiveLimits(max_file_bytes=100),
    ),
    Case(
        "total-too-big",
        lambda t: around(member("one", b"x" * 90), member("two", b"y" * 90)),
        "archive limit",
        limits=ArchiveLimits(max_total_bytes=150),
        staged=frozenset({"ok.txt", "one"}),
    ),
    Case(
        "ratio",
        lambda t: around(member("zeros.bin", ZEROS)),
        "expands more than",
        staged=frozenset({"ok.txt", "zeros.bin"}),
    ),
    # Damaged or disguised containers.
    Case(
        "plain-tar", lambda t: member("ok.txt", b"ok") + END, "not a gzip archive", staged=NOTHING
    ),
    Case("empty-file", lambda t: b"", "not a gzip archive", staged=NOTHING),
    Case(
        "bzip2",
        lambda t: bz2.compress(member("ok.txt", b"ok") + END),
        "not a gzip archive",
        staged=NOTHING,
    ),
    Case(
        "truncated-gzip",
        lambda t: around(member("r.bin", os.urandom(20000)))[:-5000],
        "truncated archive",
        staged=frozenset({"ok.txt", "r.bin"}),
    ),
    Case(
        "missing-gzip-trailer",
        lambda t: around()[:-4],
        "truncated archive",
        staged=frozenset({"ok.txt", "after.txt"}),
    ),
    Case(
        "bad-crc",
        lambda t: around()[:-8] + b"\x00\x00\x00\x00" + around()[-4:],
        "corrupt gzip data",
        staged=frozenset({"ok.txt", "after.txt"}),
    ),
    Case(
        "invalid-deflate",
        lambda t: b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 64,
        "corrupt gzip data",
        staged=NOTHING,
    ),
    Case(
        "garbage-after-gzip",
        lambda t: around() + b"garbage",
        "after the end of the gzip stream",
        staged=frozenset({"ok.txt", "after.txt"}),
    ),
    Case(
        "second-gzip-member",
        lambda t: around() + gz(member("late", b"x") + END),
        "after the end of the gzip stream",
        staged=frozenset({"ok.txt", "after.txt"}),
    ),
    Case(
        "zeros-after-gzip",
        lambda t: around() + bytes(16),
        "after the end of the gzip stream",
        staged=frozenset({"ok.txt", "after.txt"}),
    ),
    Case(
        "member-after-end-marker",
        lambda t: gz(member("ok.txt", b"ok") + END + member("hidden", b"x") + END),
        "after the tar end-of-archive",
        staged=frozenset({"ok.txt"}),
    ),
    Case(
        "junk-after-end-marker",
        lambda t: gz(member("ok.txt", b"ok") + END + b"junk"),
        "after the tar end-of-archive",
    ),
    Case("no-end-marker", lambda t: gz(member("ok.txt", b"ok\n")), "no end-of-archive marker"),
    Case(
        "tar-ends-inside-member",
        lambda t: gz(member("ok.txt", b"ok") + header("cut", size=5000) + b"x" * 100),
        "ends inside a member",
        staged=frozenset({"ok.txt", "cut"}),
    ),
    Case(
        "pax-without-member",
        lambda t: gz(member("ok.txt", b"ok") + pax({b"path": b"x"}) + END),
        "without a member",
    ),
    Case("bad-checksum", lambda t: around(header("c", checksum_delta=1)), "checksum mismatch"),
    Case(
        "unknown-magic",
        lambda t: around(header("m", magic=b"nottar\x00\x00")),
        "unsupported format",
    ),
    Case(
        "gnu-magic-with-prefix-data",
        lambda t: around(header("g", magic=GNU, prefix=b"12345")),
        "unsupported format",
    ),
    Case(
        "bad-size-field",
        lambda t: around(header("s", size_field=b"0000000012x\x00")),
        "bad size field",
    ),
    Case(
        "negative-base256-size",
        lambda t: around(header("s", size_field=b"\xff" * 12)),
        "bad size field",
    ),
    Case(
        "malformed-pax",
        lambda t: around(member("././@PaxHeader", b"garbage", typeflag=b"x"), member("p", b"x")),
        "malformed pax",
    ),
    Case("pax-bad-size", lambda t: around(pax({b"size": b"-5"}), member("p", b"x")), "bad size"),
    Case(
        "pax-size-too-many-digits",
        lambda t: around(pax({b"size": b"9" * 5000}), member("p", b"x")),
        "bad size",
    ),
    Case(
        "pax-header-too-large",
        lambda t: around(header("././@PaxHeader", typeflag=b"x", size=2 << 20)),
        "too large",
    ),
    Case(
        "too-many-extended-headers",
        lambda t: around(*[pax({b"comment": b"c"})] * 9, member("p", b"x")),
        "too many extended headers",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_archive_is_refused(tmp_path: Path, case: Case) -> None:
    sink_base = tmp_path / "sink"
    sink_base.mkdir()
    archive = case.build(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(UnsafeArchiveError, match=case.message) as caught:
        read_archive(io.BytesIO(archive), limits=case.limits, sink=DirectorySink(sink_base))
    assert "\n" not in str(caught.value)
    assert tree(sink_base) <= case.staged
    assert tree(tmp_path) - before <= {f"sink/{name}" for name in case.staged}
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("case", CASES[:20], ids=[case.id for case in CASES[:20]])
def test_a_wrong_digest_outranks_the_unsafe_member(tmp_path: Path, case: Case) -> None:
    archive = case.build(tmp_path)
    with pytest.raises(DigestMismatchError, match="does not match expected sha256:" + "0" * 64):
        read_archive(io.BytesIO(archive), limits=case.limits, expected_sha256="0" * 64)
    right = hashlib.sha256(archive).hexdigest()
    with pytest.raises(UnsafeArchiveError, match=case.message):
        read_archive(io.BytesIO(archive), limits=case.limits, expected_sha256=right)


def test_a_wrong_digest_is_found_even_when_the_first_member_fails(tmp_path: Path) -> None:
    archive = tar_gz(
        header("link", typeflag=b"2", linkname=b"/"), member("pad.bin", os.urandom(3 << 20))
    )
    source = CountingReader(archive)
    with pytest.raises(DigestMismatchError):
        read_archive(
            source, limits=LIMITS, expected_sha256=hashlib.sha256(archive[:-1]).hexdigest()
        )
    assert source.consumed == len(archive), "the whole archive went through the hash"


class CountingReader(io.RawIOBase):
    """A read-only source that counts the bytes handed out."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(size)
        self.consumed += len(chunk)
        return chunk


def _streamed_gzip(head: bytes, zeros: int) -> bytes:
    """gzip of ``head`` plus ``zeros`` zero bytes, without ever holding the zeros."""
    chunk = bytes(1 << 20)
    parts = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"]
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts.append(first.compress(head) + first.flush(zlib.Z_FULL_FLUSH))
    # Every 1 MiB of zeros deflates the same way from a fresh compressor: reuse it.
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    zero_block = block.compress(chunk) + block.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(head)
    for _ in range(zeros // len(chunk)):
        parts.append(zero_block)
        crc = zlib.crc32(chunk, crc)
    parts.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))
    parts.append(
        (crc).to_bytes(4, "little") + ((len(head) + zeros) & 0xFFFFFFFF).to_bytes(4, "little")
    )
    return b"".join(parts)


def test_a_gigabyte_gzip_bomb_is_refused_early(tmp_path: Path) -> None:
    gib = 1 << 30
    bomb = _streamed_gzip(header("bomb.bin", size=gib), gib)
    assert len(bomb) < 2 << 20
    assert zlib.decompressobj(31).decompress(bomb, 1 << 20)[:512] == header("bomb.bin", size=gib)
    source = CountingReader(bomb)
    seen: list[int] = []
    started = time.perf_counter()
    with pytest.raises(UnsafeArchiveError, match="expands more than 200 times"):
        read_archive(source, limits=LIMITS, sink=DirectorySink(tmp_path), progress=seen.append)
    assert time.perf_counter() - started < 2
    assert sum(seen) <= 4 << 20, "refused after a few MiB of output"
    assert source.consumed < 512 << 10


def _names_tar(count: int) -> bytes:
    template = header("f0000000")
    fixed = sum(template) - sum(template[148:156]) + 256 - sum(b"f0000000")
    blocks = []
    for index in range(count):
        name = b"f%07d" % index
        blocks.append(
            b"".join((name, template[8:148], b"%06o\x00 " % (fixed + sum(name)), template[156:]))
        )
    return b"".join(blocks)


def test_two_hundred_thousand_entries_are_refused_without_reading_them_all() -> None:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    archive = (
        compressor.compress(_names_tar(200_000)) + compressor.compress(END) + compressor.flush()
    )
    source = CountingReader(archive)
    with pytest.raises(UnsafeArchiveError, match="'f0100000': more than 100000 entries"):
        read_archive(source, limits=LIMITS)
    assert source.consumed < 0.75 * len(archive)


class _Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return len(data)


class DiscardingSink:
    def directory(self, name: str) -> None:
        return None

    def file(self, name: str, executable: bool) -> BinaryIO:
        return io.BufferedWriter(_Discard())  # type: ignore[return-value]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=6,
    ),
    compressed=st.booleans(),
)
def test_damaged_archives_fail_only_with_our_errors(
    tmp_path_factory: pytest.TempPathFactory, edits: list[tuple[int, int]], compressed: bool
) -> None:
    tar = (
        directory("d/")
        + member("d/a.txt", b"alpha\n")
        + pax({b"path": b"d/" + b"p" * 120})
        + member("x", b"pax named\n")
        + member("././@LongLink", b"d/" + b"l" * 120 + b"\x00", typeflag=b"L", magic=GNU)
        + member("y", b"long named\n", magic=GNU)
        + END
    )
    data = bytearray(gz(tar) if compressed else tar)
    for position, value in edits:
        data[position % len(data)] = value
    archive = bytes(data if compressed else gz(bytes(data)))
    sink_base = tmp_path_factory.mktemp("sink")
    try:
        scan = read_archive(io.BytesIO(archive), limits=LIMITS, sink=DirectorySink(sink_base))
    except UnsafeArchiveError:
        pass
    else:
        for record in scan.members:
            assert not record.name.startswith("/") and ".." not in record.name.split("/")
    for path in sink_base.rglob("*"):
        assert not path.is_symlink()
        assert path.resolve().is_relative_to(sink_base.resolve())


def test_memory_stays_bounded_for_a_large_archive(tmp_path: Path) -> None:
    import tracemalloc

    size = 200 << 20
    block = hashlib.shake_256(b"block").digest(1 << 20)  # incompressible, so no ratio refusal
    compressor = zlib.compressobj(0, zlib.DEFLATED, 31)  # stored blocks: cheap to build
    path = tmp_path / "large.tar.gz"
    with path.open("wb") as out:
        out.write(compressor.compress(header("big.bin", size=size)))
        for _ in range(size // len(block)):
            out.write(compressor.compress(block))
        out.write(compressor.compress(END) + compressor.flush())
    tracemalloc.start()
    try:
        with path.open("rb") as source:
            scan = read_archive(source, limits=LIMITS, sink=DiscardingSink())
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scan.content_bytes == size
    assert peak < 16 << 20, f"peak {peak} bytes"
