"""Deterministic packing: collect_sources refusals and write_archive's byte-exact output."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_plane.archive import (
    ArchiveLimits,
    PackEntry,
    collect_sources,
    read_archive,
    write_archive,
)
from control_plane.archive import pack as pack_module
from control_plane.archive.tarformat import member_header
from control_plane.digests import sidecar_text
from control_plane.errors import UsageError


def make_tree(
    base: Path, files: dict[str, bytes], *, executables: frozenset[str] = frozenset()
) -> None:
    for name, data in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if name in executables else 0o644)


def pack_bytes(root: Path, sources: list[Path], **options: object) -> bytes:
    out = io.BytesIO()
    write_archive(collect_sources(root, sources), out, **options)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    previous = os.umask(0o022)
    os.umask(previous)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(previous)


TREE = {
    "pkg/README.md": b"# readme\n",
    "pkg/bin/tool": b"#!/bin/sh\necho hi\n",
    "pkg/lib/a.py": b"A = 1\n" * 100,
    "pkg/lib/b.py": b"",
    "pkg/lib/deep/er/c.txt": os.urandom(3000),
    "pkg/\u00fcnicode-\u00e9.txt": b"u\n",
    "pkg/" + "long" * 40 + "/" + "n" * 200: b"long name\n",
}


def test_same_content_gives_identical_bytes(tmp_path: Path, umask: Callable[[int], None]) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    umask(0o022)
    make_tree(first, TREE, executables=frozenset({"pkg/bin/tool"}))
    umask(0o077)
    # Created in reverse order, other permission bits, other times.
    for name in reversed(list(TREE)):
        path = second / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(TREE[name])
        path.chmod(0o700 if name == "pkg/bin/tool" else 0o600)
        os.utime(path, (1_234_567, 1_234_567))
    for directory in (second / "pkg").rglob("*"):
        if directory.is_dir():
            directory.chmod(0o700)
    (first / "pkg" / "lib").chmod(0o775)
    a = pack_bytes(first, [first / "pkg"])
    b = pack_bytes(second, [second / "pkg"])
    assert a == b
    assert pack_bytes(first, [first / "pkg"], gzip_level=9) != a


def test_output_does_not_depend_on_the_number_of_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng_data = hashlib.shake_256(b"seed").digest(3 * pack_module.DEFLATE_BLOCK + 12345)
    make_tree(tmp_path, {"src/big.bin": rng_data, "src/small.txt": b"s" * 70_000})
    outputs = set()
    for cpus in (1, 2, 8):
        monkeypatch.setattr(os, "cpu_count", lambda cpus=cpus: cpus)
        outputs.add(pack_bytes(tmp_path, [tmp_path / "src"]))
    assert len(outputs) == 1
    (data,) = outputs
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.extractfile("src/big.bin")
        assert member is not None
        assert member.read() == rng_data


def test_headers_are_normalised(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE, executables=frozenset({"pkg/bin/tool"}))
    os.utime(tmp_path / "pkg" / "README.md", (99, 99))
    data = pack_bytes(tmp_path, [tmp_path / "pkg"])
    assert data[:4] == b"\x1f\x8b\x08\x00", "gzip magic, deflate, and no FNAME or other flag"
    assert data[4:8] == b"\x00\x00\x00\x00", "gzip mtime 0"
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    assert names == sorted(names, key=lambda name: name.encode())
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname, member.mtime) == (
            0,
            0,
            "",
            "",
            0,
        )
        assert member.isdir() or member.isreg()
        expected = 0o755 if member.isdir() or member.name == "pkg/bin/tool" else 0o644
        assert member.mode == expected, member.name


def test_pack_result_describes_what_was_written(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    out = io.BytesIO()
    result = write_archive(collect_sources(tmp_path, [tmp_path / "pkg"]), out)
    data = out.getvalue()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.size == len(data)
    assert result.files == len(TREE)
    assert result.content_bytes == sum(len(value) for value in TREE.values())
    assert result.directories == 6  # pkg, bin, lib, lib/deep, lib/deep/er, the long one


def test_progress_counts_content_bytes(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    seen: list[int] = []
    write_archive(collect_sources(tmp_path, [tmp_path / "pkg"]), io.BytesIO(), progress=seen.append)
    assert sum(seen) == sum(len(value) for value in TREE.values())


def test_sha256sum_accepts_the_sidecar(tmp_path: Path) -> None:
    make_tree(tmp_path / "root", TREE)
    archive = tmp_path / "store" / "pkg.tar.gz"
    archive.parent.mkdir()
    with archive.open("wb") as out:
        result = write_archive(collect_sources(tmp_path / "root", [tmp_path / "root" / "pkg"]), out)
    sidecar = archive.with_name("pkg.tar.gz.sha256")
    sidecar.write_text(sidecar_text(result.sha256, archive.name))
    check = subprocess.run(
        ["sha256sum", "-c", sidecar.name],
        cwd=archive.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    archive.write_bytes(archive.read_bytes() + b"x")
    check = subprocess.run(
        ["sha256sum", "-c", sidecar.name], cwd=archive.parent, capture_output=True, check=False
    )
    assert check.returncode != 0


def test_gnu_tar_lists_and_extracts_the_archive(tmp_path: Path) -> None:
    make_tree(tmp_path / "root", TREE, executables=frozenset({"pkg/bin/tool"}))
    archive = tmp_path / "pkg.tar.gz"
    entries = collect_sources(tmp_path / "root", [tmp_path / "root" / "pkg"])
    with archive.open("wb") as out:
        write_archive(entries, out)
    listing = subprocess.run(
        ["tar", "tzf", str(archive)], capture_output=True, text=True, check=True
    )
    expected = [entry.name + "/" if entry.is_dir else entry.name for entry in entries]
    assert listing.stdout.splitlines() == expected
    assert subprocess.run(["gzip", "-t", str(archive)], check=False).returncode == 0
    out_dir = tmp_path / "gnu"
    out_dir.mkdir()
    subprocess.run(["tar", "xzf", str(archive), "-C", str(out_dir)], check=True)
    for name, data in TREE.items():
        assert (out_dir / name).read_bytes() == data
    assert os.access(out_dir / "pkg/bin/tool", os.X_OK)


def test_huge_sizes_use_a_pax_size_record() -> None:
    """Sizes past the 11-digit octal field (8 GiB) need pax; too big to pack for real in a test."""
    size = 8**11 + 5
    header = member_header("big.bin", size, 0o644, b"0")
    info = tarfile.TarInfo.frombuf(header[1024:1536], "utf-8", "surrogateescape")
    assert info.size == 0
    records = header[512:1024].rstrip(b"\x00")
    assert records == b"%d size=%d\n" % (len(records), size)


class TestCollectSources:
    def test_includes_parents_and_sorts_bytewise(self, tmp_path: Path) -> None:
        make_tree(tmp_path, {"a/b/c/d.txt": b"d", "a/b/c-d.txt": b"e", "a/b/c/e/f.txt": b"f"})
        entries = collect_sources(tmp_path, [tmp_path / "a/b/c"])
        assert [(e.name, e.is_dir) for e in entries] == [
            ("a", True),
            ("a/b", True),
            ("a/b/c", True),
            ("a/b/c/d.txt", False),
            ("a/b/c/e", True),
            ("a/b/c/e/f.txt", False),
        ]
        assert all(entry.path == tmp_path.resolve() / entry.name for entry in entries)

    def test_overlapping_sources_are_deduplicated(self, tmp_path: Path) -> None:
        make_tree(tmp_path, {"a/b/one.txt": b"1", "a/b/two.txt": b"2", "a/c.txt": b"3"})
        entries = collect_sources(
            tmp_path, [tmp_path / "a/b/one.txt", tmp_path / "a", tmp_path / "a/b"]
        )
        names = [entry.name for entry in entries]
        assert names == ["a", "a/b", "a/b/one.txt", "a/b/two.txt", "a/c.txt"]

    def test_sources_relative_to_the_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        make_tree(tmp_path, {"a/x.txt": b"x", "b/y.txt": b"y"})
        monkeypatch.chdir(tmp_path / "b")
        entries = collect_sources(tmp_path, [Path("../a"), Path("y.txt")])
        assert [entry.name for entry in entries] == ["a", "a/x.txt", "b", "b/y.txt"]

    def test_the_root_itself_packs_everything(self, tmp_path: Path) -> None:
        make_tree(tmp_path, {"a/x.txt": b"x", "top.txt": b"t"})
        assert [entry.name for entry in collect_sources(tmp_path, [tmp_path])] == [
            "a",
            "a/x.txt",
            "top.txt",
        ]

    def test_records_executable_files(self, tmp_path: Path) -> None:
        make_tree(tmp_path, {"bin/run": b"x", "bin/data": b"y"})
        (tmp_path / "bin/run").chmod(0o744)
        flags = {
            entry.name: entry.executable for entry in collect_sources(tmp_path, [tmp_path / "bin"])
        }
        assert flags == {"bin": False, "bin/data": False, "bin/run": True}

    def test_a_root_reached_through_a_link_is_fine(self, tmp_path: Path) -> None:
        make_tree(tmp_path / "real", {"a/x.txt": b"x"})
        (tmp_path / "alias").symlink_to(tmp_path / "real")
        entries = collect_sources(tmp_path / "alias", [tmp_path / "alias" / "a"])
        assert [entry.name for entry in entries] == ["a", "a/x.txt"]


def _outside(tmp: Path) -> Path:
    make_tree(tmp, {"elsewhere/x.txt": b"x"})
    return tmp / "elsewhere"


def _missing(tmp: Path) -> Path:
    return tmp / "root" / "nope"


def _symlink_source(tmp: Path) -> Path:
    (tmp / "root" / "link").symlink_to(tmp / "root" / "pkg")
    return tmp / "root" / "link"


def _symlink_inside(tmp: Path) -> Path:
    (tmp / "root" / "pkg" / "sub" / "escape").symlink_to("/etc")
    return tmp / "root" / "pkg"


def _dangling_symlink_inside(tmp: Path) -> Path:
    (tmp / "root" / "pkg" / "dangling").symlink_to(tmp / "nowhere")
    return tmp / "root" / "pkg"


def _symlink_parent(tmp: Path) -> Path:
    (tmp / "root" / "alias").symlink_to(tmp / "root" / "pkg")
    return tmp / "root" / "alias" / "sub"


def _symlink_then_dotdot(tmp: Path) -> Path:
    (tmp / "root" / "alias").symlink_to(tmp / "root" / "pkg" / "sub")
    return Path(str(tmp / "root" / "alias") + "/../pkg")


def _root_via_outside_link(tmp: Path) -> Path:
    (tmp / "door").symlink_to(tmp / "root")
    return tmp / "door" / "pkg"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "root" / "pkg" / "pipe")
    return tmp / "root" / "pkg"


def _fifo_source(tmp: Path) -> Path:
    os.mkfifo(tmp / "root" / "pkg" / "pipe")
    return tmp / "root" / "pkg" / "pipe"


def _socket(tmp: Path) -> Path:
    sock = socket.socket(socket.AF_UNIX)
    short = Path(os.path.relpath(tmp / "root" / "pkg" / "sock"))
    sock.bind(str(short))
    sock.close()
    return tmp / "root" / "pkg"


def _control_character(tmp: Path) -> Path:
    (tmp / "root" / "pkg" / "bad\x1bname").write_bytes(b"x")
    return tmp / "root" / "pkg"


def _backslash(tmp: Path) -> Path:
    (tmp / "root" / "pkg" / "back\\slash").write_bytes(b"x")
    return tmp / "root" / "pkg"


def _not_utf8(tmp: Path) -> Path:
    with open(os.fsencode(tmp / "root" / "pkg") + b"/\xff\xfe.txt", "wb") as handle:
        handle.write(b"x")
    return tmp / "root" / "pkg"


def _case_collision(tmp: Path) -> Path:
    (tmp / "root" / "pkg" / "README").write_bytes(b"x")
    (tmp / "root" / "pkg" / "readme").write_bytes(b"y")
    return tmp / "root" / "pkg"


REFUSALS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("outside-root", _outside, "outside the root"),
    ("missing", _missing, "does not exist"),
    ("symlink-source", _symlink_source, "symbolic link"),
    ("symlink-inside", _symlink_inside, "symbolic link"),
    ("dangling-symlink-inside", _dangling_symlink_inside, "symbolic link"),
    ("symlink-parent-component", _symlink_parent, "symbolic link"),
    ("symlink-then-dotdot", _symlink_then_dotdot, "symbolic link"),
    ("root-through-outside-link", _root_via_outside_link, "symbolic link"),
    ("fifo-inside", _fifo, "fifo"),
    ("fifo-source", _fifo_source, "fifo"),
    ("socket-inside", _socket, "socket"),
    ("control-character", _control_character, "control character"),
    ("backslash", _backslash, "backslash"),
    ("not-utf8", _not_utf8, "UTF-8"),
    ("case-collision", _case_collision, "collides"),
]


@pytest.mark.parametrize(
    ("prepare", "message"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS]
)
def test_collect_sources_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prepare: Callable[[Path], Path], message: str
) -> None:
    make_tree(tmp_path / "root", {"pkg/sub/file.txt": b"data"})
    monkeypatch.chdir(tmp_path)
    source = prepare(tmp_path)
    with pytest.raises(UsageError, match=message) as caught:
        collect_sources(tmp_path / "root", [source])
    assert "\n" not in str(caught.value)


def test_write_archive_refuses_a_file_swapped_for_a_link(tmp_path: Path) -> None:
    make_tree(tmp_path, {"pkg/a.txt": b"a"})
    entries = collect_sources(tmp_path, [tmp_path / "pkg"])
    (tmp_path / "pkg/a.txt").unlink()
    (tmp_path / "pkg/a.txt").symlink_to("/etc/passwd")
    with pytest.raises(UsageError, match=r"'pkg/a\.txt'"):
        write_archive(entries, io.BytesIO())


@pytest.mark.parametrize("change", ["grow", "shrink"], ids=["file-grows", "file-shrinks"])
def test_write_archive_refuses_a_file_that_changes_size(tmp_path: Path, change: str) -> None:
    path = tmp_path / "pkg" / "big.bin"
    make_tree(tmp_path, {"pkg/big.bin": bytes(3 << 20)})
    entries = collect_sources(tmp_path, [tmp_path / "pkg"])

    def meddle(_count: int) -> None:
        if change == "grow":
            with path.open("ab") as handle:
                handle.write(b"more")
        else:
            os.truncate(path, 1 << 20)

    with pytest.raises(UsageError, match="changed size"):
        write_archive(entries, io.BytesIO(), progress=meddle)


def test_write_archive_refuses_unsafe_entry_names(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": b"a"})
    bad = PackEntry("../a.txt", tmp_path / "a.txt", is_dir=False, executable=False)
    with pytest.raises(UsageError, match=r"'\.\.' component"):
        write_archive([bad], io.BytesIO())


@pytest.mark.parametrize("level", [-1, 10], ids=["negative", "too-high"])
def test_write_archive_refuses_bad_gzip_levels(level: int) -> None:
    with pytest.raises(UsageError, match="gzip level"):
        write_archive([], io.BytesIO(), gzip_level=level)


def test_an_empty_archive_is_valid() -> None:
    out = io.BytesIO()
    result = write_archive([], out)
    assert (result.files, result.directories, result.content_bytes) == (0, 0, 0)
    assert gzip.decompress(out.getvalue()) == bytes(10240)


_SEGMENT = st.text(alphabet="abcXYZ019_-.\u00e9", min_size=1, max_size=6).filter(
    lambda text: text not in (".", "..")
)
_TREES = st.dictionaries(
    st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join),
    st.binary(max_size=2000),
    min_size=1,
    max_size=8,
)


def _consistent(files: dict[str, bytes]) -> bool:
    """No name is both a file and a parent, even once case is folded."""
    folded = {name.lower() for name in files}
    if len(folded) != len(files):
        return False
    return not any(name.lower().startswith(other + "/") for name in files for other in folded)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=_TREES.filter(_consistent), seed=st.integers(min_value=0, max_value=2**31))
def test_property_determinism_and_round_trip(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], seed: int
) -> None:
    first = tmp_path_factory.mktemp("first")
    second = tmp_path_factory.mktemp("second")
    make_tree(first / "src", files)
    for index, name in enumerate(sorted(files, reverse=True)):
        path = second / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
        os.utime(path, (seed + index, seed + index))
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    a = pack_bytes(first, [first / "src"])
    assert a == pack_bytes(second, [second / "src"])
    scan = read_archive(io.BytesIO(a), limits=ArchiveLimits())
    hashes = {m.name: m.sha256 for m in scan.members if not m.is_dir}
    assert hashes == {
        "src/" + name: hashlib.sha256(data).hexdigest() for name, data in files.items()
    }
