"""Parallel hashing against hashlib: sizes around every threshold, links, specials, errors."""

from __future__ import annotations

import errno
import hashlib
import os
import random
from pathlib import Path

import pytest

import control_plane.hashing as hashing_module
from control_plane.errors import UsageError
from control_plane.hashing import HashOutcome, hash_files

MIB = 1 << 20
SIZES = [0, 0, 1, 2047, 2048, 65535, 65536, 65537, MIB - 1, MIB, MIB + 1, 3 * MIB + 5]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Random files in nested folders, with their hashlib digests."""
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(20240601)  # noqa: S311 - reproducible test data, not a secret
    expected: dict[str, str] = {}
    for index, size in enumerate(SIZES * 2):
        rel = f"d{index % 3}/sub{index % 2}/f{index:02d}.bin"
        data = rng.randbytes(size)
        _write(root / rel, data)
        expected[rel] = hashlib.sha256(data).hexdigest()
    for index in range(300):
        rel = f"many/{index % 7}/s{index:03d}.txt"
        data = rng.randbytes(rng.randint(0, 9000))
        _write(root / rel, data)
        expected[rel] = hashlib.sha256(data).hexdigest()
    _write(root / "top.txt", b"top\n")
    expected["top.txt"] = hashlib.sha256(b"top\n").hexdigest()
    return root, expected


@pytest.mark.parametrize("workers", [1, 2, 8], ids=lambda w: f"workers{w}")
def test_matches_hashlib(corpus: tuple[Path, dict[str, str]], workers: int) -> None:
    root, expected = corpus
    reported: list[int] = []
    outcome = hash_files(root, list(expected), workers=workers, progress=reported.append)
    assert outcome == HashOutcome(expected, (), ())
    assert dict(outcome.digests) == expected
    total = sum((root / rel).stat().st_size for rel in expected)
    assert sum(reported) == total
    assert all(step > 0 for step in reported)


def test_default_workers_and_duplicates(corpus: tuple[Path, dict[str, str]]) -> None:
    root, expected = corpus
    paths = list(expected)
    outcome = hash_files(root, paths + paths[:10])
    assert dict(outcome.digests) == expected


def test_empty_request(tmp_path: Path) -> None:
    assert hash_files(tmp_path, []) == HashOutcome({}, (), ())


@pytest.fixture
def odd_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    _write(root / "real.txt", b"real")
    _write(root / "dir/inner.txt", b"inner")
    _write(tmp_path / "outside/secret.txt", b"secret")
    os.symlink("real.txt", root / "file_link")
    os.symlink(str(tmp_path / "outside"), root / "dir_link")
    os.symlink("dir", root / "inner_link")
    os.symlink("nowhere", root / "dangling")
    os.mkfifo(root / "pipe")
    return root


MISSING = [
    ("absent.txt", "does-not-exist"),
    ("no/such/dir.txt", "parent-does-not-exist"),
    ("real.txt/below", "parent-is-a-file"),
    ("dir", "is-a-directory"),
    ("file_link", "symlink-to-file"),
    ("dangling", "dangling-symlink"),
    ("dir_link/secret.txt", "through-symlinked-dir-outside"),
    ("inner_link/inner.txt", "through-symlinked-dir-inside"),
    ("pipe", "fifo-does-not-block"),
]


@pytest.mark.parametrize("rel", [r for r, _ in MISSING], ids=[i for _, i in MISSING])
@pytest.mark.parametrize("workers", [1, 2], ids=lambda w: f"workers{w}")
def test_not_a_regular_file_counts_as_missing(odd_root: Path, rel: str, workers: int) -> None:
    outcome = hash_files(odd_root, ["real.txt", rel, "dir/inner.txt"], workers=workers)
    assert outcome.missing == (rel,)
    assert outcome.unreadable == ()
    assert dict(outcome.digests) == {
        "real.txt": hashlib.sha256(b"real").hexdigest(),
        "dir/inner.txt": hashlib.sha256(b"inner").hexdigest(),
    }


def test_outcome_lists_are_sorted(odd_root: Path) -> None:
    outcome = hash_files(odd_root, ["pipe", "dangling", "absent", "file_link"])
    assert outcome.missing == ("absent", "dangling", "file_link", "pipe")


BAD_PATHS = [
    ("", "empty"),
    ("/etc/passwd", "absolute"),
    ("a/../b", "dot-dot"),
    ("../outside", "leading-dot-dot"),
    ("./a", "dot"),
    ("a//b", "empty-segment"),
    ("a/", "trailing-slash"),
    ("a\x00b", "nul"),
]


@pytest.mark.parametrize("rel", [r for r, _ in BAD_PATHS], ids=[i for _, i in BAD_PATHS])
def test_malformed_paths_are_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(UsageError, match="cannot hash"):
        hash_files(tmp_path, ["fine.txt", rel])


def test_bad_workers_and_root_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="workers"):
        hash_files(tmp_path, [], workers=0)
    with pytest.raises(UsageError, match="cannot open root"):
        hash_files(tmp_path / "absent", ["a"])
    _write(tmp_path / "file", b"")
    with pytest.raises(UsageError, match="cannot open root"):
        hash_files(tmp_path / "file", ["a"])


def _fail_for(monkeypatch: pytest.MonkeyPatch, name: str, where: str) -> None:
    """Make opening (``where="open"``) or reading (``"read"``) the file ``name`` fail."""
    real_open, real_read, real_readv = os.open, os.read, os.readv
    doomed: set[int] = set()

    def fake_open(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if os.path.basename(path) == name and where == "open":
            raise PermissionError(errno.EACCES, "Permission denied")
        fd = real_open(path, flags, mode, dir_fd=dir_fd)
        if os.path.basename(path) == name:
            doomed.add(fd)
        else:
            doomed.discard(fd)
        return fd

    def fake_read(fd: int, count: int) -> bytes:
        if fd in doomed:
            raise OSError(errno.EIO, "Input/output error")
        return real_read(fd, count)

    def fake_readv(fd: int, buffers: list[memoryview]) -> int:
        if fd in doomed:
            raise OSError(errno.EIO, "Input/output error")
        return real_readv(fd, buffers)

    monkeypatch.setattr(hashing_module.os, "open", fake_open)
    monkeypatch.setattr(hashing_module.os, "read", fake_read)
    monkeypatch.setattr(hashing_module.os, "readv", fake_readv)


@pytest.mark.parametrize("where", ["open", "read"])
@pytest.mark.parametrize("size", [10, 2 * MIB], ids=["small", "large"])
@pytest.mark.parametrize("workers", [1, 2], ids=lambda w: f"workers{w}")
def test_errors_are_reported_as_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, size: int, workers: int
) -> None:
    _write(tmp_path / "bad.bin", b"b" * size)
    _write(tmp_path / "good.bin", b"g" * size)
    _fail_for(monkeypatch, "bad.bin", where)
    outcome = hash_files(tmp_path, ["bad.bin", "good.bin"], workers=workers)
    assert outcome.unreadable == ("bad.bin",)
    assert outcome.missing == ()
    assert dict(outcome.digests) == {"good.bin": hashlib.sha256(b"g" * size).hexdigest()}


def test_unreadable_directory_makes_its_files_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "locked/a.txt", b"a")
    _write(tmp_path / "locked/b.txt", b"b")
    _write(tmp_path / "open.txt", b"o")
    _fail_for(monkeypatch, "locked", "open")
    outcome = hash_files(tmp_path, ["locked/a.txt", "locked/b.txt", "open.txt"])
    assert outcome.unreadable == ("locked/a.txt", "locked/b.txt")
    assert list(outcome.digests) == ["open.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="permission bits do not restrict root")
def test_real_permission_denied(tmp_path: Path) -> None:
    _write(tmp_path / "secret.txt", b"s")
    (tmp_path / "secret.txt").chmod(0)
    assert hash_files(tmp_path, ["secret.txt"]).unreadable == ("secret.txt",)


@pytest.mark.parametrize("workers", [1, 3], ids=lambda w: f"workers{w}")
def test_large_files_use_the_pool_and_release_descriptors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    expected = {}
    for index in range(12):
        data = bytes([index]) * (MIB + index)
        _write(tmp_path / f"big{index:02d}.bin", data)
        expected[f"big{index:02d}.bin"] = hashlib.sha256(data).hexdigest()
    pooled: list[int] = []
    real_task = hashing_module._digest_and_close

    def counting_task(fd: int, size: int) -> tuple[str, int] | None:
        pooled.append(size)
        return real_task(fd, size)

    monkeypatch.setattr(hashing_module, "_digest_and_close", counting_task)
    before = sorted(os.listdir("/proc/self/fd"))
    outcome = hash_files(tmp_path, list(expected), workers=workers)
    assert dict(outcome.digests) == expected
    assert sorted(os.listdir("/proc/self/fd")) == before
    # The calling thread hashes too, so with a busy pool not every file is handed over.
    assert (0 < len(pooled) < 12) if workers > 1 else not pooled
