"""Which files under a root are governed: gitignore-like globs and a pruning walk.

Patterns are anchored at the root and matched against root-relative POSIX
paths.  ``*`` matches within one path segment, ``?`` one character of a
segment, ``[...]`` a character class (``[!...]`` or ``[^...]`` negated),
``**`` as a whole segment any number of segments including none, and ``\\``
escapes the next character.  A pattern ending in ``/**`` matches everything
below that directory.  Leading dots get no special treatment, as in
gitignore: ``*`` matches ``.env``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from control_plane.errors import UsageError

DEFAULT_INCLUDE: tuple[str, ...] = ("**",)
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".git/**",
    ".control_plane/**",
    "ledger/**",
    ".ledger/**",
    "ids/**",
    "packages_store/**",
    "registries/**",
    "keys/**",
    "control_plane.toml",
    "control_plane.lock",
    "MANIFEST.json",
    # Generated from plugins/ (which stays governed); ``cpctl plugins lint`` checks it.
    "plugins.json",
    "**/__pycache__/**",
    "**/*.pyc",
    ".venv/**",
    "venv/**",
    # The repository's CI and hook configuration: adopting the CI recipe or the pre-commit
    # hooks must not make a clean root fail with orphans.  Registered rows for these files
    # are still checked; only the orphan walk skips them.
    ".github/**",
    ".gitlab-ci.yml",
    ".pre-commit-config.yaml",
)
_NEVER = re.compile(r"(?!)")


def _malformed(pattern: str, why: str) -> UsageError:
    return UsageError(f"invalid scope pattern {pattern!r}: {why}")


def _translate_class(pattern: str, segment: str, start: int) -> tuple[str, int]:
    """Regex for the class opening at ``segment[start]``, and the index after it."""
    index = start + 1
    negated = index < len(segment) and segment[index] in "!^"
    if negated:
        index += 1
    members: list[str] = []
    while True:
        if index >= len(segment):
            raise _malformed(pattern, "unclosed '['")
        char = segment[index]
        if char == "]" and members:
            break
        if char == "\\":
            index += 1
            if index >= len(segment):
                raise _malformed(pattern, "unclosed '['")
            members.append(re.escape(segment[index]))
        elif char == "-" and members and index + 1 < len(segment) and segment[index + 1] != "]":
            members.append("-")
        else:
            members.append(re.escape(char))
        index += 1
    body = "".join(members)
    # A negated class must still stay within one segment.
    return (f"[^/{body}]" if negated else f"[{body}]"), index + 1


def _translate_segment(pattern: str, segment: str) -> str:
    if "**" in segment:
        raise _malformed(pattern, "'**' must be a whole path segment")
    out: list[str] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            regex, index = _translate_class(pattern, segment, index)
            out.append(regex)
            continue
        elif char == "\\":
            index += 1
            if index == len(segment):
                raise _malformed(pattern, "trailing '\\'")
            out.append(re.escape(segment[index]))
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def _segments(pattern: str) -> list[str]:
    if not pattern:
        raise _malformed(pattern, "empty")
    if "\x00" in pattern:
        raise _malformed(pattern, "contains NUL")
    if pattern.startswith("/"):
        raise _malformed(pattern, "patterns are already anchored at the root; drop the '/'")
    if pattern.endswith("/"):
        raise _malformed(pattern, "ends with '/'; write 'dir/**' for everything under a directory")
    segments = pattern.split("/")
    if any(part in ("", ".", "..") for part in segments):
        raise _malformed(pattern, "empty, '.' or '..' path segment")
    collapsed: list[str] = []
    for part in segments:
        if not (part == "**" and collapsed and collapsed[-1] == "**"):
            collapsed.append(part)
    return collapsed


def _regex_source(pattern: str, segments: list[str]) -> str:
    out: list[str] = []
    last = len(segments) - 1
    for index, part in enumerate(segments):
        if part == "**":
            if index == 0:
                out.append(".*" if index == last else "(?:.*/)?")
            else:
                out.append("/.*" if index == last else "/(?:.*/)?")
            continue
        if index > 0 and segments[index - 1] != "**":
            out.append("/")
        out.append(_translate_segment(pattern, part))
    return "".join(out)


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regex that ``fullmatch``-es exactly the root-relative paths ``pattern`` selects.

    Raises:
        UsageError: empty or absolute pattern, trailing ``/``, ``.``/``..``/empty
            segments, ``**`` inside a segment, an unclosed ``[``, a trailing ``\\``,
            or an invalid class range.
    """
    source = _regex_source(pattern, _segments(pattern))
    try:
        return re.compile(source, re.DOTALL)
    except re.error as error:
        raise _malformed(pattern, error.msg) from None


def _combine(sources: list[str]) -> re.Pattern[str]:
    if not sources:
        return _NEVER
    return re.compile("|".join(f"(?:{source})" for source in sources), re.DOTALL)


@dataclass(frozen=True)
class Scope:
    """Include and exclude globs: a path is governed when an include matches and no exclude does.

    Raises (on construction):
        UsageError: a malformed pattern, or an empty include list (which would
            silently govern nothing).
    """

    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    _include_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _exclude_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _pruned_dir_re: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.include:
            raise UsageError("integrity scope has no include pattern: nothing would be governed")
        include = [compile_glob(pattern).pattern for pattern in self.include]
        exclude: list[str] = []
        pruned: list[str] = []
        for pattern in self.exclude:
            exclude.append(compile_glob(pattern).pattern)
            segments = _segments(pattern)
            # "X/**" excludes everything below any directory X matches: skip those unread.
            if segments[-1] == "**":
                prefix = segments[:-1]
                pruned.append(_regex_source(pattern, prefix) if prefix else ".*")
        object.__setattr__(self, "_include_re", _combine(include))
        object.__setattr__(self, "_exclude_re", _combine(exclude))
        object.__setattr__(self, "_pruned_dir_re", _combine(pruned))

    def matches(self, rel_path: str) -> bool:
        """True when the root-relative POSIX path is governed."""
        return (
            self._include_re.fullmatch(rel_path) is not None
            and self._exclude_re.fullmatch(rel_path) is None
        )

    def prunes(self, rel_dir: str) -> bool:
        """True when every path below the directory ``rel_dir`` is excluded."""
        return self._pruned_dir_re.fullmatch(rel_dir) is not None


@dataclass(frozen=True)
class ScopeWalk:
    """Sorted root-relative POSIX paths found in scope, by kind.

    ``symlinks`` and ``special`` (FIFOs, sockets, devices) are reported so the
    caller can flag them; they are never followed or read.
    """

    files: tuple[str, ...]
    symlinks: tuple[str, ...]
    special: tuple[str, ...]


def walk_scope(root: Path, scope: Scope) -> ScopeWalk:
    """Every regular file, symlink and special file under ``root`` that ``scope`` governs.

    Directories whose whole content is excluded are not entered, and neither
    are symlinks to directories.  A symlink whose path names an excluded
    directory (``.venv -> ...`` under ``.venv/**``) counts as excluded too.

    Raises:
        UsageError: ``root`` or a directory in scope cannot be listed.
    """
    files: list[str] = []
    symlinks: list[str] = []
    special: list[str] = []
    base = os.fspath(root)
    stack = [""]
    while stack:
        prefix = stack.pop()
        directory = f"{base}/{prefix}" if prefix else base
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    rel_path = prefix + entry.name
                    if entry.is_dir(follow_symlinks=False):
                        if not scope.prunes(rel_path):
                            stack.append(rel_path + "/")
                    elif entry.is_file(follow_symlinks=False):
                        if scope.matches(rel_path):
                            files.append(rel_path)
                    elif not scope.matches(rel_path) or scope.prunes(rel_path):
                        continue
                    elif entry.is_symlink():
                        symlinks.append(rel_path)
                    else:
                        special.append(rel_path)
        except OSError as error:
            shown = prefix.rstrip("/") or "."
            raise UsageError(
                f"cannot list directory {shown!r} under the root: {error.strerror}"
            ) from None
    return ScopeWalk(tuple(sorted(files)), tuple(sorted(symlinks)), tuple(sorted(special)))
