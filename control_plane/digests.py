"""SHA-256 digests: hashing files and streams, the ``sha256:HEX`` form, ``sha256sum`` sidecars."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import BinaryIO

from control_plane.errors import UsageError

CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SIDECAR = re.compile(r"([0-9a-f]{64}) [ *]([^\n\r/]+)\n?")


def sha256_stream(stream: BinaryIO) -> str:
    """Hex SHA-256 of everything left in ``stream``."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def is_hex64(text: str) -> bool:
    """True for exactly 64 lower-case hex digits."""
    return _HEX64.fullmatch(text) is not None


def format_digest(hex_digest: str) -> str:
    """``sha256:HEX`` as registries and manifests store it."""
    return f"sha256:{hex_digest}"


def parse_digest(text: str) -> str:
    """The hex part of a ``sha256:HEX`` digest.

    Raises:
        UsageError: the text is not ``sha256:`` followed by 64 lower-case hex digits.
    """
    prefix, _, hex_part = text.partition(":")
    if prefix != "sha256" or not is_hex64(hex_part):
        raise UsageError(f"invalid digest {text!r}: expected sha256: and 64 lower-case hex digits")
    return hex_part


def digests_equal(left: str, right: str) -> bool:
    """Constant-time comparison of two digests in the same textual form."""
    return hmac.compare_digest(left.encode("ascii", "replace"), right.encode("ascii", "replace"))


def sidecar_text(hex_digest: str, file_name: str) -> str:
    """A one-line ``sha256sum`` record that ``sha256sum -c`` accepts beside the archive."""
    return f"{hex_digest}  {file_name}\n"


def parse_sidecar(text: str) -> tuple[str, str]:
    """``(hex, file_name)`` from a ``sha256sum`` line; text or binary mode marker accepted.

    Raises:
        UsageError: not exactly one well-formed record.
    """
    match = _SIDECAR.fullmatch(text)
    if match is None:
        raise UsageError("malformed .sha256 sidecar: expected one line 'HEX  NAME'")
    return match.group(1), match.group(2)
