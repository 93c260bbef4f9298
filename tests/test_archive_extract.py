"""read_archive on good archives: round trips, other tools' formats, digests, and the staging sink."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from control_plane.archive import (
    ArchiveLimits,
    DirectorySink,
    MemberRecord,
    collect_sources,
    read_archive,
    write_archive,
)
from control_plane.errors import DigestMismatchError, UnsafeArchiveError, UsageError

LIMITS = ArchiveLimits()
FILES = {
    "pkg/README.md": b"# readme\n",
    "pkg/bin/run.sh": b"#!/bin/sh\necho run\n",
    "pkg/data/big.bin": hashlib.shake_256(b"big").digest(3 << 20),  # spans many chunks
    "pkg/data/empty": b"",
    "pkg/data/z\u00fcrich.txt": b"gr\xc3\xbcezi\n",
    "pkg/" + "deep/" * 30 + "leaf.txt": b"deep\n",
}
EXECUTABLES = {"pkg/bin/run.sh"}


@pytest.fixture
def packed(tmp_path: Path) -> tuple[Path, bytes]:
    root = tmp_path / "root"
    for name, data in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if name in EXECUTABLES else 0o644)
    out = io.BytesIO()
    write_archive(collect_sources(root, [root / "pkg"]), out)
    return root, out.getvalue()


@pytest.fixture
def restrictive_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    yield
    os.umask(previous)


def file_hashes(base: Path) -> dict[str, str]:
    return {
        path.relative_to(base).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in base.rglob("*")
        if path.is_file()
    }


def test_round_trip_reproduces_files_modes_and_hashes(
    tmp_path: Path, packed: tuple[Path, bytes], restrictive_umask: None
) -> None:
    _root, archive = packed
    stage = tmp_path / "stage"
    stage.mkdir()
    seen: list[int] = []
    scan = read_archive(
        io.BytesIO(archive),
        limits=LIMITS,
        expected_sha256=hashlib.sha256(archive).hexdigest(),
        sink=DirectorySink(stage),
        progress=seen.append,
    )
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}
    assert file_hashes(stage) == expected
    assert {m.name: m.sha256 for m in scan.members if not m.is_dir} == expected
    assert scan.sha256 == hashlib.sha256(archive).hexdigest()
    assert scan.compressed_size == len(archive)
    assert scan.content_bytes == sum(seen) == sum(len(data) for data in FILES.values())
    for record in scan.members:
        path = stage / record.name
        mode = stat.S_IMODE(path.lstat().st_mode)
        if record.is_dir:
            assert path.is_dir() and mode == 0o755 and record.sha256 is None
        else:
            assert record.executable == (record.name in EXECUTABLES)
            assert mode == (0o755 if record.executable else 0o644), record.name
            assert record.size == len(FILES[record.name])
    names = [record.name for record in scan.members]
    assert names == sorted(names, key=lambda name: name.encode())


def test_scan_without_a_sink_writes_nothing(tmp_path: Path, packed: tuple[Path, bytes]) -> None:
    _root, archive = packed
    before = sorted(tmp_path.rglob("*"))
    scan = read_archive(io.BytesIO(archive), limits=LIMITS)
    assert sorted(tmp_path.rglob("*")) == before
    assert (
        MemberRecord("pkg/data/empty", False, 0, hashlib.sha256(b"").hexdigest(), False)
        in scan.members
    )


def test_a_wrong_expected_digest_is_refused(packed: tuple[Path, bytes]) -> None:
    _root, archive = packed
    actual = hashlib.sha256(archive).hexdigest()
    wrong = "f" * 64
    with pytest.raises(DigestMismatchError) as caught:
        read_archive(io.BytesIO(archive), limits=LIMITS, expected_sha256=wrong)
    assert (
        str(caught.value)
        == f"archive digest sha256:{actual} does not match expected sha256:{wrong}"
    )


def test_an_empty_archive_has_no_members() -> None:
    out = io.BytesIO()
    write_archive([], out)
    scan = read_archive(io.BytesIO(out.getvalue()), limits=LIMITS)
    assert (scan.members, scan.content_bytes) == ((), 0)


def _gnu_tar(source: Path, *options: str) -> bytes:
    result = subprocess.run(
        ["tar", *options, "-czf", "-", "-C", str(source), "."], capture_output=True, check=True
    )
    return result.stdout


@pytest.mark.parametrize(
    "fmt", ["gnu", "posix", "ustar"], ids=["gnu-format", "posix-format", "ustar-format"]
)
def test_reads_gnu_tar_archives(tmp_path: Path, fmt: str) -> None:
    source = tmp_path / "src"
    files = {
        "p" * 90 + "/" + "q" * 60: b"split across the ustar prefix\n",
        "caf\u00e9/menu.txt": b"menu\n",
        "plain.txt": b"plain\n",
    }
    if fmt != "ustar":
        files["l" * 120 + "/" + "m" * 150] = b"long\n"
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    archive = _gnu_tar(source, f"--format={fmt}")
    scan = read_archive(io.BytesIO(archive), limits=LIMITS)
    got = {m.name: m.sha256 for m in scan.members if not m.is_dir}
    assert got == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert "." not in {m.name for m in scan.members}, "the bare './' entry is skipped"


def _python_tar(fmt: int, pax_headers: dict[str, str] | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt, pax_headers=pax_headers) as archive:
        for name, data in (("./top/" + "n" * 130, b"one\n"), ("./top/\u00e9t\u00e9.txt", b"two\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


@pytest.mark.parametrize(
    ("fmt", "pax_headers"),
    [
        (tarfile.PAX_FORMAT, None),
        (tarfile.GNU_FORMAT, None),
        (tarfile.PAX_FORMAT, {"comment": "4b825dc642cb6eb9a060e54bf8d69288fbee4904"}),
    ],
    ids=["python-pax", "python-gnu", "git-style-global-comment"],
)
def test_reads_python_tarfile_archives(fmt: int, pax_headers: dict[str, str] | None) -> None:
    scan = read_archive(io.BytesIO(_python_tar(fmt, pax_headers)), limits=LIMITS)
    assert [m.name for m in scan.members] == ["top/" + "n" * 130, "top/\u00e9t\u00e9.txt"]


def test_sink_refuses_to_write_through_a_symlink(
    tmp_path: Path, packed: tuple[Path, bytes]
) -> None:
    _root, archive = packed
    stage, outside = tmp_path / "stage", tmp_path / "outside"
    stage.mkdir()
    outside.mkdir()
    (stage / "pkg").symlink_to(outside)
    with pytest.raises(UnsafeArchiveError, match="'pkg': a non-directory is in the way"):
        read_archive(io.BytesIO(archive), limits=LIMITS, sink=DirectorySink(stage))
    assert list(outside.iterdir()) == []


def test_sink_never_follows_a_final_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_bytes(b"keep")
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "f").symlink_to(target)
    sink = DirectorySink(tmp_path / "stage")
    with pytest.raises(UnsafeArchiveError, match="already exists"):
        sink.file("f", executable=False)
    assert target.read_bytes() == b"keep"


@pytest.mark.parametrize(
    "name",
    ["../escape", "/abs", "a/../../b", "a//b", "back\\slash", ""],
    ids=["dotdot", "absolute", "deep-dotdot", "empty-component", "backslash", "empty"],
)
def test_sink_refuses_unsafe_names_on_its_own(tmp_path: Path, name: str) -> None:
    sink = DirectorySink(tmp_path)
    with pytest.raises(UnsafeArchiveError):
        sink.file(name, executable=False)
    with pytest.raises(UnsafeArchiveError):
        sink.directory(name)
    assert list(tmp_path.iterdir()) == []


def test_sink_creates_parents_and_modes(tmp_path: Path, restrictive_umask: None) -> None:
    sink = DirectorySink(tmp_path)
    sink.directory("a/b")
    with sink.file("a/c/run", executable=True) as handle:
        handle.write(b"x")
    assert stat.S_IMODE((tmp_path / "a/c").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a/b").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a/c/run").stat().st_mode) == 0o755


@pytest.mark.parametrize(
    "kind", ["missing", "file", "symlink"], ids=["missing", "a-file", "a-symlink"]
)
def test_sink_base_must_be_a_real_directory(tmp_path: Path, kind: str) -> None:
    base = tmp_path / "base"
    if kind == "file":
        base.write_bytes(b"")
    elif kind == "symlink":
        (tmp_path / "real").mkdir()
        base.symlink_to(tmp_path / "real")
    with pytest.raises(UsageError):
        DirectorySink(base)


class _Broken(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise OSError(5, "Input/output error")


def test_an_unreadable_source_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cannot read the archive"):
        read_archive(_Broken(), limits=LIMITS)  # type: ignore[arg-type]


class _FullDiskSink:
    def directory(self, name: str) -> None:
        return None

    def file(self, name: str, executable: bool) -> BinaryIO:
        return _NoSpace()  # type: ignore[return-value]


class _NoSpace(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise OSError(28, "No space left on device")


def test_a_failing_sink_is_a_usage_error(packed: tuple[Path, bytes]) -> None:
    _root, archive = packed
    with pytest.raises(UsageError, match="No space left on device"):
        read_archive(io.BytesIO(archive), limits=LIMITS, sink=_FullDiskSink())
