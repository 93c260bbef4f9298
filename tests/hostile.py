"""Builders for hostile archives, shared by the refusal tests."""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path


def tar_gz(build: Callable[[tarfile.TarFile], None], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A gzip-compressed tar written by ``build``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as archive:
        build(archive)
    return gzip.compress(raw.getvalue(), mtime=0)


def add_file(archive: tarfile.TarFile, name: str, data: bytes = b"x\n", **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    archive.addfile(info, io.BytesIO(data))


def add_entry(archive: tarfile.TarFile, name: str, kind: bytes, **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    archive.addfile(info)


def members(*builders: Callable[[tarfile.TarFile], None]) -> bytes:
    def build(archive: tarfile.TarFile) -> None:
        for builder in builders:
            builder(archive)

    return tar_gz(build)


HOSTILE: dict[str, Callable[[], bytes]] = {
    "absolute-name": lambda: members(lambda a: add_file(a, "/etc/evil")),
    "dotdot": lambda: members(lambda a: add_file(a, "docs/../../evil")),
    "symlink": lambda: members(
        lambda a: add_entry(a, "docs/link", tarfile.SYMTYPE, linkname="/etc/passwd")
    ),
    "hardlink": lambda: members(
        lambda a: add_file(a, "docs/a"),
        lambda a: add_entry(a, "docs/b", tarfile.LNKTYPE, linkname="docs/a"),
    ),
    "char-device": lambda: members(
        lambda a: add_entry(a, "docs/dev", tarfile.CHRTYPE, devmajor=1, devminor=3)
    ),
    "block-device": lambda: members(lambda a: add_entry(a, "docs/blk", tarfile.BLKTYPE)),
    "fifo": lambda: members(lambda a: add_entry(a, "docs/fifo", tarfile.FIFOTYPE)),
    "setuid": lambda: members(lambda a: add_file(a, "docs/suid", mode=0o4755)),
    "setgid": lambda: members(lambda a: add_file(a, "docs/sgid", mode=0o2755)),
    "duplicate": lambda: members(lambda a: add_file(a, "docs/a"), lambda a: add_file(a, "docs/a")),
    "case-collision": lambda: members(
        lambda a: add_file(a, "docs/Read.md"), lambda a: add_file(a, "docs/READ.md")
    ),
    "nfc-collision": lambda: members(
        lambda a: add_file(a, "docs/caf\u00e9"), lambda a: add_file(a, "docs/cafe\u0301")
    ),
    "control-character": lambda: members(lambda a: add_file(a, "docs/bad\x1bname")),
    "backslash": lambda: members(lambda a: add_file(a, "docs\\..\\evil")),
    "empty-name": lambda: members(lambda a: add_file(a, "")),
    "long-name": lambda: members(lambda a: add_file(a, "docs/" + "a/" * 600 + "f")),
    "long-component": lambda: members(lambda a: add_file(a, "docs/" + "b" * 300)),
    "reserved-registry": lambda: members(lambda a: add_file(a, "registries/packages_registry.csv")),
    "reserved-ledger": lambda: members(lambda a: add_file(a, "ledger/ledger.jsonl")),
}


def gzip_bomb(decompressed: int = 1024**3) -> bytes:
    """``decompressed`` bytes of zeros inside one tar member, compressed (about 1 MB per GiB)."""
    header = tarfile.TarInfo("docs/zeros")
    header.size = decompressed
    block = header.tobuf(format=tarfile.PAX_FORMAT)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [compressor.compress(block)]
    chunk = bytes(1024 * 1024)
    for _ in range(decompressed // len(chunk)):
        out.append(compressor.compress(chunk))
    out.append(compressor.compress(bytes(1024)))
    out.append(compressor.flush())
    return b"".join(out)


def many_empty_entries(count: int = 200_000) -> bytes:
    """``count`` empty files: a header per entry, tiny when compressed."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for index in range(count):
            info = tarfile.TarInfo(f"d/{index}")
            archive.addfile(info)
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


def drop(store: Path, name: str, data: bytes) -> Path:
    path = store / name
    path.write_bytes(data)
    return path
