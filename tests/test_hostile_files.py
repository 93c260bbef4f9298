"""Hostile and broken files: every file cpctl reads, broken every way we know, never a traceback.

One table: a file of a fully populated root (keys, a signed and locked install, a registry
manifest, a revocation list, a plugin, an identity card, plugins.json, a saved checkpoint and
proof) x a mutation x the command that reads it.  Each case asserts the reader's exit codes,
no traceback, one JSON document on stdout, and that a refusal wrote nothing outside ledger/.
Links point into the test's own ``victim/`` folder, which must come out unchanged: a reader
never writes through a link it was handed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CliFn, snapshot

from control_plane.auth.jwks import parse_jwks
from control_plane.cli.main import cli

# --- a populated root, built once per module ------------------------------------------------

BUILD = [
    ("init",),
    ("keys", "generate", "--type", "ed25519", "--id", "release", "--trust"),
    ("pack", "--src", "docs", "--id", "PKG-DOCS", "--version", "1.0.0", "--tier", "verified",
     "--sign", "keys/private/release.key"),
    ("registry", "export", "--expires-in", "30", "--sign", "keys/private/release.key"),
    ("install", "--manifest", "registries/registry.manifest.v1.json", "--id", "PKG-DOCS"),
    ("revoke", "--package", "PKG-GONE@1.0.0", "--reason", "test", "--key",
     "keys/private/release.key"),
    ("keys", "generate", "--type", "ed25519", "--id", "old", "--trust"),
    ("keys", "revoke", "old"),
    ("plugin", "new", "demo", "--op", "mint"),
    ("ids", "mint", "--kind", "plugin", "--path", "plugins/demo"),
    ("ids", "build-registry"),
    ("plugins", "export"),
    ("lock",),
    ("sync",),
    ("manifest",),
    ("integrity-check", "--fast"),
]  # fmt: skip


def _cpctl(root: Path, *args: str) -> str:
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("CONTROL_")}
    result = CliRunner().invoke(cli, ["--root", str(root), *args], env=env)
    assert result.exit_code in (0, 1), (args, result.stderr)
    return result.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    root = base / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "guide.md").write_text("# Guide\n")
    previous = Path.cwd()
    os.chdir(root)
    try:
        for args in BUILD:
            _cpctl(root, *args)
        (base / "saved").mkdir()
        (base / "saved" / "checkpoint.json").write_text(_cpctl(root, "ledger", "checkpoint"))
        (base / "saved" / "inclusion.json").write_text(
            _cpctl(root, "ledger", "prove", "--seq", "1")
        )
    finally:
        os.chdir(previous)
    return base


@pytest.fixture
def rich(template: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the populated root; ``victim/`` beside it holds what links point to."""
    shutil.copytree(template, tmp_path / "t", symlinks=True)
    victim = tmp_path / "victim"
    (victim / "etc").mkdir(parents=True)
    (victim / "passwd").write_text(
        "".join(f"user{n}:x:{n}:{n}::/home:/bin/sh\n" for n in range(40))
    )
    (victim / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    before = _tree(victim)
    yield tmp_path / "t" / "root"
    assert _tree(victim) == before, "something was written through a link"


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes() if path.is_file() else b"dir"
        for path in sorted(directory.rglob("*"))
    }


# --- mutations ---------------------------------------------------------------------------

Mutation = Callable[[Path, Path], None]  # (the file, the victim folder links point into)


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def _edit(change: Callable[[bytes], bytes]) -> Mutation:
    return lambda path, _victim: _replace(path, change(path.read_bytes()))


def _content(data: bytes) -> Mutation:
    return lambda path, _victim: _replace(path, data)


def _directory(path: Path, _victim: Path) -> None:
    path.unlink()
    (path / "inner").mkdir(parents=True)


def _link(target: str) -> Mutation:
    def mutate(path: Path, victim: Path) -> None:
        path.unlink()
        path.symlink_to(victim / target)

    return mutate


COMMON: dict[str, Mutation] = {
    "empty": _content(b""),
    "directory": _directory,
    "link-to-file": _link("passwd"),
    "link-dangling": _link("missing/file"),
    "not-utf8": _edit(lambda data: b"\xff\xfe" + data),
    "nul-byte": _edit(lambda data: data[: len(data) // 2] + b"\0" + data[len(data) // 2 :]),
    "truncated": _edit(lambda data: data[: len(data) // 2]),
}
BY_FORMAT: dict[str, dict[str, Mutation]] = {
    "json": {
        "deep": _content(b"[" * 100_000),
        "list": _content(b"[]\n"),
        "number": _content(b"7\n"),
        "null": _content(b"null\n"),
    },
    "jsonl": {"deep": _content(b"[" * 100_000 + b"\n"), "list": _content(b"[]\n")},
    "toml": {
        "deep": _content(b"x = " + b"[" * 100_000),
        "wrong-type": _content(b"version = 'one'\n"),
    },
    "yaml": {"deep": _content(b"[" * 30_000), "list": _content(b"- a\n"), "null": _content(b"~\n")},
    "csv": {"header-only": _edit(lambda data: data.split(b"\n", 1)[0] + b"\n")},
    "py": {
        "syntax-error": _content(b"def (:\n"),
        "deep-parens": _content(b"(" * 100_000),
        "deep-unary": _content(b"-" * 100_000 + b"1"),
    },
    "text": {},
}

# --- readers: file, format, the command that reads it, the exit codes it may give --------

CHECK, USAGE, REJECT = {1, 2}, {2}, {2, 5}
READERS: list[tuple[str, str, tuple[str, ...], set[int]]] = [
    ("control_plane.toml", "toml", ("validate",), {0, 2}),
    ("registries/packages_registry.csv", "csv", ("validate",), CHECK),
    ("registries/control_plane_registry.csv", "csv", ("integrity-check",), CHECK),
    ("registries/compiled/registry.json", "json", ("sync", "--dry-run"), {0, 2}),
    ("MANIFEST.json", "json", ("integrity-check",), CHECK),
    ("ledger/ledger.jsonl", "jsonl", ("ledger", "verify"), CHECK),
    ("ledger/checkpoints.jsonl", "jsonl", ("ledger", "verify"), CHECK),
    ("ledger/ledger.pub", "text", ("ledger", "verify"), {0, 1, 2}),
    (".control_plane/ledger.key", "text", ("hash-update", "--path", "docs/guide.md"), USAGE),
    (".control_plane/merkle/level-00.bin", "text", ("ledger", "verify"), {0, 2}),
    (".control_plane/root.lock", "text", ("validate",), {0, 2}),
    (".control_plane/statcache.json", "json", ("integrity-check", "--fast"), CHECK),
    ("keys/trusted/release.pub", "text", ("keys", "list"), {0, 2}),
    ("packages_store/docs.tar.gz", "text", ("install", "--id", "PKG-DOCS", "--force"), REJECT),
    ("packages_store/docs.tar.gz.sha256", "text", ("integrity-check",), CHECK),
    ("packages_store/docs.tar.gz.sig", "text", ("install", "--id", "PKG-DOCS", "--force"), REJECT),
    ("registries/registry.manifest.v1.json", "json", ("registry", "verify", "registries/registry.manifest.v1.json"), REJECT),
    ("registries/registry.manifest.v1.json.sigs", "json", ("registry", "verify", "registries/registry.manifest.v1.json"), REJECT),
    ("registries/revocations.json", "json", ("revocations",), REJECT),
    ("registries/revocations.json.sig", "text", ("revocations",), REJECT),
    ("registries/trust_state.json", "json", ("doctor",), CHECK),
    ("control_plane.lock", "toml", ("drift",), USAGE),
    ("ids/cards/*.yaml", "yaml", ("ids", "validate"), CHECK),
    (".ledger/ids.jsonl", "jsonl", ("ids", "validate"), CHECK),
    ("plugins/demo/plugin.spec.json", "json", ("plugin", "validate", "demo"), CHECK),
    ("plugins/demo/manifest.json", "json", ("plugin", "validate", "demo"), CHECK),
    ("plugins/demo/policy_snapshot.json", "json", ("plugin", "validate", "demo"), CHECK),
    ("plugins/demo/schemas/mint.in.schema.json", "json", ("plugin", "validate", "demo"), CHECK),
    ("plugins/demo/src/handler.py", "py", ("plugins", "lint"), CHECK),
    ("plugins.json", "json", ("plugins", "lint"), CHECK),
    ("../saved/checkpoint.json", "json", ("ledger", "verify", "--against", "../saved/checkpoint.json"), USAGE),
    ("../saved/inclusion.json", "json", ("ledger", "verify-proof", "../saved/inclusion.json", "../saved/checkpoint.json", "--key", "ledger/ledger.pub"), CHECK),
]  # fmt: skip

# Writers: the file is broken in a way no write may follow (a directory, a link).
WRITERS: list[tuple[str, str, tuple[str, ...]]] = [
    ("ledger/ledger.jsonl", "link-to-file", ("hash-update", "--path", "docs/guide.md")),
    ("ledger/checkpoints.jsonl", "link-dangling", ("hash-update", "--path", "docs/guide.md")),
    (".control_plane/merkle/level-01.bin", "link-to-file", ("hash-update", "--path", "docs/guide.md")),
    (".control_plane/merkle/level-01.bin", "link-dangling", ("hash-update", "--path", "docs/guide.md")),
    ("plugins/demo/README_PLUGIN.md", "directory", ("plugin", "build", "demo")),
    ("registries/registry.manifest.v1.json", "directory", ("registry", "export", "--sign", "keys/private/release.key")),
    ("registries/compiled/registry.json", "directory", ("sync",)),
    ("packages_store/docs.tar.gz.sig", "directory", ("sign", "--id", "PKG-DOCS", "--key", "keys/private/release.key")),
]  # fmt: skip


@dataclass(frozen=True)
class Case:
    file: str
    mutate: Mutation
    args: tuple[str, ...]
    codes: set[int]


def _id(file: str, name: str, args: tuple[str, ...]) -> str:
    return f"{file.rsplit('/', 1)[-1]}-{name}-{args[0]}"


CASES = [
    pytest.param(Case(file, mutate, args, codes), id=_id(file, name, args))
    for file, form, args, codes in READERS
    for name, mutate in {**COMMON, **BY_FORMAT[form]}.items()
] + [
    pytest.param(Case(file, COMMON[name], args, USAGE), id="write-" + _id(file, name, args))
    for file, name, args in WRITERS
]


# The root's own directories: a link in their place (git stores links, so a hostile checkout
# can hold one) is refused before anything is read or written through it.
LINKED_DIRECTORIES: list[tuple[str, tuple[str, ...]]] = [
    (".control_plane", ("validate",)),
    (".control_plane/merkle", ("ledger", "verify")),
    ("ledger", ("hash-update", "--path", "docs/guide.md")),
    (".ledger", ("ids", "mint", "--kind", "document", "--path", "docs/guide.md")),
    ("registries", ("sync",)),
    ("registries/compiled", ("sync",)),
    ("packages_store", ("plugin", "pack", "demo")),
    ("keys/trusted", ("keys", "trust", "keys/private/release.pub", "--name", "again")),
    ("ids/cards", ("ids", "mint", "--kind", "document", "--path", "docs/guide.md")),
    ("modules", ("verify",)),
]


def _directory_to_link(path: Path, victim: Path) -> None:
    path.mkdir(exist_ok=True)
    shutil.copytree(path, victim / "etc" / path.name)
    shutil.rmtree(path)
    path.symlink_to(victim / "etc" / path.name, target_is_directory=True)


@pytest.mark.parametrize(
    ("directory", "args"), LINKED_DIRECTORIES, ids=[rel for rel, _ in LINKED_DIRECTORIES]
)
def test_a_linked_root_directory_is_refused(
    template: Path, tmp_path: Path, cpctl: CliFn, directory: str, args: tuple[str, ...]
) -> None:
    shutil.copytree(template, tmp_path / "t", symlinks=True)
    root, outside = tmp_path / "t" / "root", tmp_path / "victim"
    _directory_to_link(root / directory, outside)
    before, outside_before = snapshot(root), _tree(outside)
    outcome = cpctl(*args, "--json", root=root, cwd=root)
    assert outcome.exit_code == 2, (outcome.stdout, outcome.stderr)
    assert f"{directory} is a symbolic link" in outcome.json()["error"]["message"]
    assert snapshot(root) == before and _tree(outside) == outside_before


def _resolve(root: Path, file: str) -> Path:
    if "*" in file:
        [path] = root.glob(file)
        return path
    return root / file


@pytest.mark.parametrize("case", CASES)
def test_a_broken_file_is_one_clear_line(rich: Path, cpctl: CliFn, case: Case) -> None:
    case.mutate(_resolve(rich, case.file), rich.parents[1] / "victim")
    before = snapshot(rich, include_ledger=False)
    outcome = cpctl(*case.args, "--json", root=rich, cwd=rich)
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.exit_code in case.codes, (outcome.exit_code, outcome.stderr)
    assert isinstance(outcome.json(), dict)  # exactly one JSON document, refusal or not
    if outcome.exit_code:
        assert snapshot(rich, include_ledger=False) == before


@pytest.mark.parametrize("kty", [[], {}, 7, None], ids=["list", "object", "number", "null"])
def test_a_jwk_whose_kty_is_not_a_string_is_skipped(kty: object) -> None:
    document = json.dumps({"keys": [{"kty": kty, "kid": "k1", "n": "AQAB", "e": "AQAB"}]})
    with pytest.raises(ValueError, match="no usable signing key"):
        parse_jwks(document.encode())


JOURNALS: dict[str, Callable[[Path], None]] = {
    "nul-in-a-path": lambda path: path.write_text(
        json.dumps({"state": "prepared", "ops": [], "created_dirs": ["a\0b"], "ledger": None})
    ),
    "path-not-text": lambda path: path.write_text(
        json.dumps({"state": "prepared", "ops": [], "created_dirs": [7], "ledger": None})
    ),
    "deep": lambda path: path.write_bytes(b"[" * 100_000),
    "not-utf8": lambda path: path.write_bytes(b"\xff\xfe{}"),
    "list": lambda path: path.write_text("[]"),
    "directory": lambda path: path.mkdir(),
}


@pytest.mark.parametrize("journal", JOURNALS.values(), ids=list(JOURNALS))
def test_a_broken_transaction_journal_is_left_for_a_human(
    rich: Path, cpctl: CliFn, journal: Callable[[Path], None]
) -> None:
    directory = rich / ".control_plane" / "txn" / ("0" * 32)
    directory.mkdir(parents=True)
    journal(directory / "journal.json")
    before = snapshot(rich)
    outcome = cpctl("validate", "--json", root=rich, cwd=rich)
    assert outcome.exit_code == 2, (outcome.stdout, outcome.stderr)
    message = outcome.json()["error"]["message"]
    assert "cannot read interrupted transaction journal" in message
    assert "not callable" not in message
    assert snapshot(rich) == before and directory.exists()
