"""Scope globs and the pruning walk: tables, a naive reference matcher, symlinks, pruning."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import control_plane.scope as scope_module
from control_plane.errors import UsageError
from control_plane.scope import DEFAULT_EXCLUDE, Scope, ScopeWalk, compile_glob, walk_scope

GLOBS = [
    # (pattern, path, matches)
    ("**", "a", True),
    ("**", "a/b/c.txt", True),
    ("**", ".git/config", True),
    ("*", "a.txt", True),
    ("*", "a/b.txt", False),
    ("*", ".env", True),
    ("*.py", "x.py", True),
    ("*.py", "pkg/x.py", False),
    ("*.py", "x.pyc", False),
    ("**/*.py", "x.py", True),
    ("**/*.py", "a/b/x.py", True),
    ("**/*.py", "a/b/x.pyc", False),
    ("docs/**", "docs/a.md", True),
    ("docs/**", "docs/sub/deep/a.md", True),
    ("docs/**", "docs", False),
    ("docs/**", "docsx/a.md", False),
    ("docs/**", "other/docs/a.md", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/xb", False),
    ("a/**/b", "ab", False),
    ("a/**/**/b", "a/b", True),
    ("**/__pycache__/**", "__pycache__/m.pyc", True),
    ("**/__pycache__/**", "pkg/sub/__pycache__/m.pyc", True),
    ("**/__pycache__/**", "pkg/__pycache__", False),
    ("**/__pycache__/**", "pkg/not__pycache__/m", False),
    ("?.txt", "a.txt", True),
    ("?.txt", "ab.txt", False),
    ("?.txt", "/.txt", False),
    ("a?c", "a/c", False),
    ("[ab].txt", "a.txt", True),
    ("[ab].txt", "c.txt", False),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("[!a]x", "bx", True),
    ("[!a]x", "ax", False),
    ("[^a]x", "bx", True),
    ("a[!b]c", "a/c", False),
    ("[]]", "]", True),
    ("[!]]", "a", True),
    ("[a-]", "-", True),
    ("x[*]", "x*", True),
    ("x[*]", "xy", False),
    ("\\*", "*", True),
    ("\\*", "a", False),
    ("a.b", "a.b", True),
    ("a.b", "axb", False),
    ("a+b(c)", "a+b(c)", True),
    ("control_plane.toml", "control_plane.toml", True),
    ("control_plane.toml", "sub/control_plane.toml", False),
    ("*", "new\nline", True),
    ("é/*", "é/ü", True),
]


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    GLOBS,
    ids=[f"{p}~{q}={'y' if e else 'n'}" for p, q, e in GLOBS],
)
def test_glob_table(pattern: str, path: str, expected: bool) -> None:
    assert (compile_glob(pattern).fullmatch(path) is not None) is expected


MALFORMED = [
    ("", "empty"),
    ("/abs", "absolute"),
    ("dir/", "trailing-slash"),
    ("a//b", "empty-segment"),
    ("a/../b", "dot-dot"),
    ("./a", "dot"),
    ("a**", "double-star-in-segment"),
    ("**b/c", "double-star-prefix"),
    ("a[bc", "unclosed-class"),
    ("[", "lone-bracket"),
    ("[]", "empty-class-unclosed"),
    ("a\\", "trailing-backslash"),
    ("[z-a]", "reversed-range"),
    ("a\x00b", "nul"),
]


@pytest.mark.parametrize("pattern", [p for p, _ in MALFORMED], ids=[i for _, i in MALFORMED])
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(UsageError, match="invalid scope pattern"):
        compile_glob(pattern)
    with pytest.raises(UsageError):
        Scope(include=("**",), exclude=(pattern,))


# --- a naive reference matcher: segment lists with fnmatch per segment ------------------------


def ref_match(pattern_parts: list[str], path_parts: list[str]) -> bool:
    if not pattern_parts:
        return not path_parts
    head, rest = pattern_parts[0], pattern_parts[1:]
    if head == "**":
        # "**" alone or last must still match at least one segment (paths are non-empty).
        start = 1 if not rest else 0
        return any(ref_match(rest, path_parts[i:]) for i in range(start, len(path_parts) + 1))
    return (
        bool(path_parts)
        and fnmatch.fnmatchcase(path_parts[0], head)
        and ref_match(rest, path_parts[1:])
    )


PATTERN_SEGMENTS = st.sampled_from(["**", "*", "a", "b*", "?", "a?", ".*", "*.c", "[ab]", "[!a]*"])
PATH_SEGMENTS = st.sampled_from(["a", "b", "ab", "a.c", ".a", "bb", "c"])


@given(
    st.lists(PATTERN_SEGMENTS, min_size=1, max_size=5),
    st.lists(PATH_SEGMENTS, min_size=1, max_size=5),
)
def test_glob_matches_naive_reference(pattern_parts: list[str], path_parts: list[str]) -> None:
    pattern, path = "/".join(pattern_parts), "/".join(path_parts)
    collapsed = [
        p
        for i, p in enumerate(pattern_parts)
        if not (p == "**" and i and pattern_parts[i - 1] == "**")
    ]
    assert (compile_glob(pattern).fullmatch(path) is not None) is ref_match(collapsed, path_parts)


# --- Scope -----------------------------------------------------------------------------------

DEFAULT_SCOPE_CASES = [
    ("README.md", True),
    ("src/app.py", True),
    (".gitignore", True),
    (".git/config", False),
    (".control_plane/lock", False),
    ("ledger/ledger.jsonl", False),
    ("packages_store/a.tar.gz", False),
    ("registries/packages_registry.csv", False),
    ("keys/signing.pem", False),
    ("control_plane.toml", False),
    ("control_plane.lock", False),
    ("MANIFEST.json", False),
    ("sub/MANIFEST.json", True),
    ("plugins.json", False),
    ("plugins/demo/src/tool.py", True),
    ("src/ledger/notes.md", True),
    ("pkg/__pycache__/m.cpython-311.pyc", False),
    ("pkg/m.pyc", False),
    (".venv/bin/python", False),
    ("venv/lib/x.py", False),
    ("modules/venv/x.py", True),
    (".github/workflows/control-plane.yml", False),
    (".gitlab-ci.yml", False),
    (".pre-commit-config.yaml", False),
    ("sub/.pre-commit-config.yaml", True),
]


@pytest.mark.parametrize(
    ("path", "expected"), DEFAULT_SCOPE_CASES, ids=[p for p, _ in DEFAULT_SCOPE_CASES]
)
def test_default_scope(path: str, expected: bool) -> None:
    assert Scope().matches(path) is expected


def test_scope_include_and_exclude_combine() -> None:
    scope = Scope(include=("docs/**", "*.md"), exclude=("docs/private/**", "**/*.tmp"))
    assert scope.matches("docs/a.txt")
    assert scope.matches("README.md")
    assert not scope.matches("src/a.md")
    assert not scope.matches("docs/private/key")
    assert not scope.matches("docs/x.tmp")
    assert scope.prunes("docs/private")
    assert not scope.prunes("docs")


def test_scope_without_excludes_governs_everything() -> None:
    scope = Scope(exclude=())
    assert scope.matches(".git/config")
    assert not scope.prunes(".git")


def test_scope_refuses_empty_include() -> None:
    with pytest.raises(UsageError, match="no include pattern"):
        Scope(include=())


def test_scope_is_a_value() -> None:
    assert Scope() == Scope(include=("**",), exclude=DEFAULT_EXCLUDE)
    assert hash(Scope()) == hash(Scope())
    assert Scope(exclude=()) != Scope()
    assert "_include_re" not in repr(Scope())


PRUNE_CASES = [
    (".git", True),
    ("a/__pycache__", True),
    ("__pycache__", True),
    ("ledger", True),
    ("src", False),
    ("src/ledger", False),
    ("modules", False),
]


@pytest.mark.parametrize(("path", "expected"), PRUNE_CASES, ids=[p for p, _ in PRUNE_CASES])
def test_default_scope_prunes(path: str, expected: bool) -> None:
    assert Scope().prunes(path) is expected


def test_exclude_everything_prunes_everything() -> None:
    scope = Scope(exclude=("**",))
    assert scope.prunes("any")
    assert not scope.matches("any/file")


# --- walking -----------------------------------------------------------------------------------


def _touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for rel in [
        "README.md",
        "src/app.py",
        "src/__pycache__/app.cpython-311.pyc",
        "src/old.pyc",
        ".git/objects/ab/cdef",
        ".git/HEAD",
        "ledger/ledger.jsonl",
        "control_plane.toml",
        "modules/pkg/data.bin",
        "modules/pkg/deep/er/file.txt",
        "outside/secret.txt",
    ]:
        _touch(root / rel)
    (root / "empty_dir").mkdir()
    os.symlink("README.md", root / "link_to_file")
    os.symlink("modules", root / "link_to_dir")
    os.symlink("nowhere", root / "src/dangling")
    os.symlink(str(root / "outside"), root / ".venv")
    os.symlink("README.md", root / ".git/linked")
    os.mkfifo(root / "src/pipe")
    return root


def test_walk_reports_files_symlinks_and_special(tree: Path) -> None:
    walk = walk_scope(tree, Scope())
    assert walk == ScopeWalk(
        files=(
            "README.md",
            "modules/pkg/data.bin",
            "modules/pkg/deep/er/file.txt",
            "outside/secret.txt",
            "src/app.py",
        ),
        symlinks=("link_to_dir", "link_to_file", "src/dangling"),
        special=("src/pipe",),
    )


def test_walk_with_narrow_include(tree: Path) -> None:
    walk = walk_scope(tree, Scope(include=("modules/**", "src/*")))
    assert walk.files == ("modules/pkg/data.bin", "modules/pkg/deep/er/file.txt", "src/app.py")
    assert walk.symlinks == ("src/dangling",)
    assert walk.special == ("src/pipe",)


def test_walk_prunes_excluded_directories(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listed: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: str) -> object:
        listed.append(os.path.relpath(path, tree))
        return real_scandir(path)

    monkeypatch.setattr(scope_module.os, "scandir", recording_scandir)
    walk_scope(tree, Scope())
    assert sorted(listed) == sorted(
        [
            ".",
            "empty_dir",
            "modules",
            "modules/pkg",
            "modules/pkg/deep",
            "modules/pkg/deep/er",
            "outside",
            "src",
        ]
    )


def test_unreadable_excluded_directory_is_never_opened(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir

    def guarded_scandir(path: str) -> object:
        if ".git" in Path(path).parts:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(scope_module.os, "scandir", guarded_scandir)
    assert "README.md" in walk_scope(tree, Scope()).files


def test_unreadable_directory_in_scope_is_refused(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir

    def guarded_scandir(path: str) -> object:
        if Path(path).name == "deep":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(scope_module.os, "scandir", guarded_scandir)
    with pytest.raises(UsageError, match="cannot list directory 'modules/pkg/deep'"):
        walk_scope(tree, Scope())


@pytest.mark.skipif(os.geteuid() == 0, reason="permission bits do not restrict root")
def test_real_permission_denied_inside_excluded_dir(tree: Path) -> None:
    locked = tree / ".git" / "objects"
    locked.chmod(0)
    try:
        assert "README.md" in walk_scope(tree, Scope()).files
    finally:
        locked.chmod(0o755)


def test_walk_missing_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot list directory '\.'"):
        walk_scope(tmp_path / "absent", Scope())


def test_walk_many_files(tmp_path: Path) -> None:
    for folder in range(20):
        for index in range(50):
            _touch(tmp_path / f"d{folder:02d}" / f"f{index:02d}.txt")
        _touch(tmp_path / f"d{folder:02d}" / "__pycache__" / "x.pyc")
    walk = walk_scope(tmp_path, Scope())
    assert len(walk.files) == 1000
    assert list(walk.files) == sorted(walk.files)
    assert walk.files[0] == "d00/f00.txt"
