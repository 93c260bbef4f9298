"""Member-name rules shared by packing and reading: what a safe archive path looks like.

A safe name is a relative POSIX path of valid UTF-8 with no empty, ``.`` or
``..`` component, no control character and no backslash, within the length
limits.  Two names may not collide once case and Unicode composition are
folded (they would land on one file on macOS or Windows), and no file may sit
where another member needs a directory.
"""

from __future__ import annotations

import re
import unicodedata

from control_plane.archive.limits import ArchiveLimits

# C0 controls, DEL, C1 controls and the Windows separator.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\\\\]")


def show(name: str) -> str:
    """A one-line, quoted rendering of an untrusted name for error messages."""
    return repr(name)


def fold(name: str) -> str:
    """The key under which two names count as the same file on a case-insensitive system."""
    if name.isascii():
        return name.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def strip_member_prefix(name: str, *, is_dir: bool) -> str | None:
    """Drop one leading ``./`` and a directory's trailing ``/``; None for the root entry."""
    if is_dir and name in (".", "./"):
        return None
    if name.startswith("./"):
        name = name[2:]
    if is_dir and name.endswith("/"):
        name = name[:-1]
    return name


def name_problem(name: str, limits: ArchiveLimits) -> str | None:
    """Why ``name`` is not a safe member name, or None when it is.

    ``name`` is already stripped by ``strip_member_prefix``.
    """
    if not name:
        return "empty name"
    if name.startswith("/"):
        return "absolute path"
    if _FORBIDDEN.search(name):
        return "control character or backslash in name"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    if len(encoded) > limits.max_name_bytes:
        return f"name is {len(encoded)} bytes, over the limit of {limits.max_name_bytes}"
    padded = f"/{name}/"
    if "//" in padded:
        return "empty path component"
    if "/../" in padded:
        return "'..' component"
    if "/./" in padded:
        return "'.' component"
    if len(encoded) > limits.max_component_bytes:
        for part in name.split("/"):
            if len(part.encode("utf-8")) > limits.max_component_bytes:
                return f"path component over the limit of {limits.max_component_bytes} bytes"
    return None


class NameRegistry:
    """Remembers member names to refuse duplicates, folded collisions and files used as dirs."""

    def __init__(self) -> None:
        self._files: dict[str, str] = {}
        self._dirs: dict[str, str] = {}  # folded key -> spelling, explicit and implied parents
        self._explicit_dirs: set[str] = set()

    def add(self, name: str, *, is_dir: bool) -> str | None:
        """Record ``name``; return why it clashes with an earlier one, or None."""
        key = fold(name)
        ascii_name = name.isascii()
        file_seen = self._files.get(key)
        dir_seen = self._dirs.get(key)
        if file_seen is not None:
            if file_seen != name:
                return f"collides with {show(file_seen)} once case and Unicode are folded"
            return "duplicate member" if not is_dir else "is both a file and a directory"
        if dir_seen is not None:
            if dir_seen != name:
                return f"collides with {show(dir_seen)} once case and Unicode are folded"
            if not is_dir:
                return "is a file where other members need a directory"
            if name in self._explicit_dirs:
                return "duplicate member"
        end = name.rfind("/")
        while end > 0:
            prefix = name[:end]
            prefix_key = key[:end] if ascii_name else fold(prefix)
            spelled = self._dirs.get(prefix_key)
            if spelled == prefix:
                break  # its ancestors were registered and checked with it
            if spelled is not None:
                return (
                    f"parent {show(prefix)} collides with {show(spelled)}"
                    " once case and Unicode are folded"
                )
            if prefix_key in self._files:
                return f"parent {show(prefix)} is a file member"
            self._dirs[prefix_key] = prefix
            end = name.rfind("/", 0, end)
        if is_dir:
            self._dirs[key] = name
            self._explicit_dirs.add(name)
        else:
            self._files[key] = name
        return None
