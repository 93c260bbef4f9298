"""The tar header format, both ways: deterministic ustar/pax headers out, strict parsing in.

Only what packages need: regular files and directories, with pax records
(or, when reading other tools' archives, GNU long-name headers) for names
and sizes that do not fit the ustar fields.
"""

from __future__ import annotations

import re

from control_plane.errors import UnsafeArchiveError

BLOCK = 512
RECORD = 20 * BLOCK
ZEROS = bytes(RECORD)
ZERO_BLOCK = bytes(BLOCK)
MAX_OCTAL_SIZE = 8**11  # an 11-digit octal size field holds less than this
REGTYPE = b"0"
DIRTYPE = b"5"
PAXTYPE = b"x"
FILE_TYPES = (REGTYPE, b"\x00")
META_TYPES = (PAXTYPE, b"g", b"L")  # pax local, pax global, GNU long name
REFUSED_TYPES = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a fifo",
    b"7": "a contiguous file",
    b"S": "a GNU sparse file",
    b"K": "a GNU long link name",
    b"D": "a GNU directory dump",
    b"M": "a GNU multi-volume continuation",
    b"V": "a GNU volume label",
    b"N": "an old GNU long name",
}
POSIX_MAGIC = b"ustar\x0000"
GNU_MAGIC = b"ustar  \x00"
NO_MAGIC = bytes(8)
_PAX_NAME = b"././@PaxHeader"
# Everything after the type flag: empty link name, POSIX magic and version,
# empty owner names, zero device numbers, empty prefix, padding.
_HEADER_TAIL = bytes(100) + POSIX_MAGIC + bytes(64) + b"0000000\x00" * 2 + bytes(155 + 12)
_HEADER_FIXED_IDS = b"0000000\x00" * 2  # uid, gid
_HEADER_MTIME = b"00000000000\x00"
_CHECKSUM_SPACES = 8 * 0x20
_NUMBER = re.compile(rb" *([0-7]*) *(?:\x00[\s\S]*)?")


def ustar_header(name: bytes, mode: int, size: int, typeflag: bytes) -> bytes:
    """One ustar header with owner 0, mtime 0 and the given fields (all must fit)."""
    head = b"%s%07o\x00%s%011o\x00%s" % (
        name.ljust(100, b"\x00"),
        mode,
        _HEADER_FIXED_IDS,
        size,
        _HEADER_MTIME,
    )
    tail = typeflag + _HEADER_TAIL
    checksum = sum(head) + sum(tail) + _CHECKSUM_SPACES
    return b"%s%06o\x00 %s" % (head, checksum, tail)


def pax_record(key: bytes, value: bytes) -> bytes:
    """One ``LENGTH key=value\\n`` pax record; LENGTH counts its own digits."""
    body = len(key) + len(value) + 3  # " ", "=", "\n"
    length = body + len(str(body))
    if len(str(length)) > len(str(body)):
        length += 1
    return b"%d %s=%s\n" % (length, key, value)


def member_header(name: str, size: int, mode: int, typeflag: bytes) -> bytes:
    """A ustar header, preceded by a pax header when the name or size does not fit ustar."""
    encoded = name.encode("utf-8")
    plain_name = len(encoded) <= 100 and name.isascii()
    if plain_name and size < MAX_OCTAL_SIZE:
        return ustar_header(encoded, mode, size, typeflag)
    records = b"" if plain_name else pax_record(b"path", encoded)
    if size >= MAX_OCTAL_SIZE:
        records += pax_record(b"size", b"%d" % size)
        size = 0
    pax = ustar_header(_PAX_NAME, 0o644, len(records), PAXTYPE) + records
    pax += ZEROS[: -len(records) % BLOCK]
    return pax + ustar_header(name.encode("ascii", "replace")[:100], mode, size, typeflag)


def parse_number(field: bytes, what: str) -> int:
    """An octal (or GNU base-256) numeric field.

    Raises:
        UnsafeArchiveError: anything else, including negative base-256 values.
    """
    if field[:1] == b"\x80":  # GNU base-256 for values too large for octal
        return int.from_bytes(field[1:], "big")
    match = _NUMBER.fullmatch(field)
    if match is None:
        raise UnsafeArchiveError(f"corrupt tar header: bad {what} field")
    return int(match.group(1) or b"0", 8)


def check_header(header: bytes) -> None:
    """Verify a header's checksum and format magic.

    Raises:
        UnsafeArchiveError: checksum mismatch, unknown magic, or GNU/v7 extension fields.
    """
    stored = parse_number(header[148:156], "checksum")
    unsigned = sum(header) - sum(header[148:156]) + 8 * 0x20
    if stored != unsigned:
        signed = unsigned - 256 * sum(byte >= 0x80 for byte in header[:148] + header[156:])
        if stored != signed:
            raise UnsafeArchiveError("corrupt tar header: checksum mismatch")
    magic = header[257:265]
    if magic != POSIX_MAGIC and (magic not in (GNU_MAGIC, NO_MAGIC) or any(header[345:500])):
        raise UnsafeArchiveError("corrupt tar header: unsupported format")


def parse_pax_records(data: bytes) -> dict[bytes, bytes]:
    """The records of a pax extended header; later duplicates win.

    Raises:
        UnsafeArchiveError: a record that is not ``LENGTH key=value\\n``.
    """
    records: dict[bytes, bytes] = {}
    data = data.rstrip(b"\x00")
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 21)
        length_text = data[pos:space]
        if space < 0 or not length_text.isdigit():
            raise UnsafeArchiveError("malformed pax header")
        end = pos + int(length_text)
        key, equals, value = data[space + 1 : end].partition(b"=")
        if end > len(data) or not equals or not key or not value.endswith(b"\n"):
            raise UnsafeArchiveError("malformed pax header")
        records[key] = value[:-1]
        pos = end
    return records


def header_name(header: bytes) -> bytes:
    """The raw name a header carries, joined with the ustar prefix field when POSIX."""
    name = header[:100].split(b"\x00", 1)[0]
    if header[257:265] == POSIX_MAGIC and header[345]:
        return header[345:500].split(b"\x00", 1)[0] + b"/" + name
    return name
