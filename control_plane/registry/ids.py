"""Id rules shared by both registries: the id form, look-alike keys, file-row ids."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable

from control_plane.errors import UsageError

MAX_ID_CHARS = 128
_SHOWN_CHARS = 80

# \A and \Z rather than ^ and $: "$" would also match before a trailing newline.
ID_PATTERN = re.compile(r"\A[A-Z][A-Z0-9]*(?:[-_.][A-Z0-9]+)*\Z")
ID_RULE = (
    "ids are upper-case ASCII letters and digits, start with a letter, use single"
    f" '-', '_' or '.' separators, and have at most {MAX_ID_CHARS} characters"
)
FILE_ID_PREFIX = "FILE-"
_FILE_ID_HEX_CHARS = 16


def shown(text: str) -> str:
    """A bounded ``repr`` for messages: hostile input must not flood a terminal."""
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + "..."
    return repr(text)


def is_valid_id(text: str) -> bool:
    """True when ``text`` has the registry id form (e.g. ``PKG-FMWK-100``, ``REG-CP``)."""
    return len(text) <= MAX_ID_CHARS and ID_PATTERN.match(text) is not None


def validate_package_id(text: str) -> str:
    """Return ``text`` unchanged when it is a valid id.

    Raises:
        UsageError: naming the id and the rule it breaks.
    """
    if not is_valid_id(text):
        raise UsageError(f"invalid id {shown(text)}: {ID_RULE}")
    return text


def normalise_id(package_or_row_id: str) -> str:
    """The look-alike key: NFKC, case-folded, with ``_`` and ``.`` folded to ``-``.

    Two ids with the same key are treated as duplicates, so ``PKG-A`` and
    ``pkg_a`` (or a full-width variant) can never name different packages.
    """
    folded = unicodedata.normalize("NFKC", package_or_row_id).casefold()
    return folded.replace("_", "-").replace(".", "-")


def file_row_id(path: str) -> str:
    """The control-registry id of an installed file: ``FILE-`` + 16 upper-case hex of sha256(path).

    Raises:
        UsageError: the path is not valid Unicode (it could not be stored in a registry).
    """
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"path {shown(path)} is not valid Unicode") from None
    digest = hashlib.sha256(encoded).hexdigest()
    return FILE_ID_PREFIX + digest[:_FILE_ID_HEX_CHARS].upper()


def find_duplicates(
    entries: Iterable[tuple[int, str]], key: Callable[[str], str] = normalise_id
) -> list[tuple[int, str, int, str]]:
    """``(line, value, first_line, first_value)`` for every entry whose key an earlier entry had.

    With the default key, ``PKG-A`` on one line and ``pkg_a`` on another are duplicates.
    """
    first: dict[str, tuple[int, str]] = {}
    duplicates: list[tuple[int, str, int, str]] = []
    for line, value in entries:
        earlier = first.setdefault(key(value), (line, value))
        if earlier[0] != line:
            duplicates.append((line, value, *earlier))
    return duplicates
