"""Every refusal: the documented exit code, one line on stderr, no traceback, nothing written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import CliFn, assert_refused, snapshot, write
from hostile import HOSTILE, drop, gzip_bomb, many_empty_entries

from control_plane.registry import OutputType, PackageRow, SourceType, dump_packages, parse_packages
from control_plane.versions import parse_version


def forge_row(
    root: Path, package_id: str, name: str, data: bytes, digest_of: bytes | None = None
) -> None:
    """Put ``data`` in the store and a registry row for it, as a tampered root would have."""
    drop(root / "packages_store", name, data)
    registry = root / "registries/packages_registry.csv"
    rows = list(parse_packages(registry.read_bytes()).require_clean())
    rows.append(
        PackageRow(
            id=package_id,
            name=name.removesuffix(".tar.gz"),
            version=parse_version("1.0.0"),
            source=f"packages_store/{name}",
            source_type=SourceType.TAR,
            digest="sha256:" + hashlib.sha256(data if digest_of is None else digest_of).hexdigest(),
            output_type=OutputType.EXTENSION,
            output_path="",
            dependencies=(),
        )
    )
    registry.write_bytes(dump_packages(rows))


@pytest.mark.parametrize("kind", sorted(HOSTILE), ids=sorted(HOSTILE))
def test_install_refuses_hostile_member(root: Path, cpctl: CliFn, kind: str) -> None:
    forge_row(root, "PKG-EVIL", "evil.tar.gz", HOSTILE[kind]())
    before = snapshot(root)
    outcome = cpctl("install", "--id", "PKG-EVIL", root=root)
    assert_refused(outcome, 5, before, root)


@pytest.mark.parametrize("kind", sorted(HOSTILE), ids=sorted(HOSTILE))
def test_create_refuses_hostile_member(root: Path, cpctl: CliFn, kind: str) -> None:
    if kind.startswith("reserved"):
        pytest.skip("reserved paths depend on routing, which install checks")
    drop(root / "packages_store", "evil.tar.gz", HOSTILE[kind]())
    before = snapshot(root)
    outcome = cpctl(
        "create", "--archive", "packages_store/evil.tar.gz", "--id", "PKG-EVIL", root=root, cwd=root
    )
    assert_refused(outcome, 5, before, root)


@pytest.fixture(scope="session")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return gzip_bomb()


@pytest.fixture(scope="session")
def flood(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return many_empty_entries()


def test_gzip_bomb_is_stopped_while_streaming(root: Path, cpctl: CliFn, bomb: bytes) -> None:
    forge_row(root, "PKG-BOMB", "bomb.tar.gz", bomb)
    before = snapshot(root)
    outcome = cpctl("install", "--id", "PKG-BOMB", root=root)
    assert_refused(outcome, 5, before, root)
    assert not list((root / ".control_plane").rglob("zeros"))


def test_two_hundred_thousand_entries_are_refused(root: Path, cpctl: CliFn, flood: bytes) -> None:
    forge_row(root, "PKG-FLOOD", "flood.tar.gz", flood)
    before = snapshot(root)
    outcome = cpctl("install", "--id", "PKG-FLOOD", root=root)
    assert_refused(outcome, 5, before, root)


def test_missing_archive(packed: Path, cpctl: CliFn) -> None:
    (packed / "packages_store/docs.tar.gz").unlink()
    before = snapshot(packed)
    assert_refused(
        cpctl("install", "--id", "PKG-DOCS", root=packed), 2, before, packed, "does not exist"
    )


def test_missing_archive_path(root: Path, cpctl: CliFn) -> None:
    before = snapshot(root)
    outcome = cpctl("install", "--archive", "packages_store/nope.tar.gz", root=root, cwd=root)
    assert_refused(outcome, 2, before, root, "does not exist")


def test_unreadable_archive(packed: Path, cpctl: CliFn) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    (packed / "packages_store/docs.tar.gz").chmod(0)
    before = snapshot(packed)
    assert_refused(cpctl("install", "--id", "PKG-DOCS", root=packed), 2, before, packed)


def test_not_gzip(root: Path, cpctl: CliFn) -> None:
    forge_row(root, "PKG-TXT", "text.tar.gz", b"just some text, not gzip\n" * 10)
    before = snapshot(root)
    assert_refused(cpctl("install", "--id", "PKG-TXT", root=root), 5, before, root, "gzip")


def test_truncated_gzip(packed: Path, cpctl: CliFn) -> None:
    whole = (packed / "packages_store/docs.tar.gz").read_bytes()
    forge_row(packed, "PKG-CUT", "cut.tar.gz", whole[: len(whole) // 2])
    before = snapshot(packed)
    assert_refused(cpctl("install", "--id", "PKG-CUT", root=packed), 5, before, packed)


def test_digest_mismatch(packed: Path, cpctl: CliFn) -> None:
    archive = packed / "packages_store/docs.tar.gz"
    data = bytearray(archive.read_bytes())
    data[-9] ^= 0xFF
    archive.write_bytes(bytes(data))
    before = snapshot(packed)
    assert_refused(cpctl("install", "--id", "PKG-DOCS", root=packed), 5, before, packed, "digest")


def test_digest_mismatch_takes_precedence_over_a_corrupt_archive(root: Path, cpctl: CliFn) -> None:
    forge_row(root, "PKG-X", "x.tar.gz", b"garbage", digest_of=b"something else")
    before = snapshot(root)
    assert_refused(cpctl("install", "--id", "PKG-X", root=root), 5, before, root, "digest")


def test_unknown_id(root: Path, cpctl: CliFn) -> None:
    before = snapshot(root)
    assert_refused(cpctl("install", "--id", "PKG-NOPE", root=root), 2, before, root, "PKG-NOPE")


def test_invalid_id(root: Path, cpctl: CliFn) -> None:
    before = snapshot(root)
    assert_refused(cpctl("install", "--id", "bad id;rm", root=root), 2, before, root)


def test_unregistered_archive_is_never_installed(
    root: Path, cpctl: CliFn, packed_bytes: bytes
) -> None:
    drop(root / "packages_store", "stray.tar.gz", packed_bytes)
    before = snapshot(root)
    outcome = cpctl("install", "--archive", "packages_store/stray.tar.gz", root=root, cwd=root)
    assert_refused(outcome, 2, before, root, "no registry row")


@pytest.fixture
def packed_bytes() -> bytes:
    from hostile import add_file, members

    return members(lambda a: add_file(a, "stray/file.txt"))


def test_archive_outside_the_store_is_refused(
    root: Path, cpctl: CliFn, tmp_path: Path, packed_bytes: bytes
) -> None:
    outside = write(tmp_path / "elsewhere.tar.gz", packed_bytes)
    before = snapshot(root)
    outcome = cpctl("create", "--archive", str(outside), "--id", "PKG-OUT", root=root)
    assert_refused(outcome, 2, before, root, "packages_store")


@pytest.mark.parametrize(
    "content",
    [
        b"id,name\n",
        b"\xef\xbb\xbfid,name,version\n",
        b'id,name,version,source,source_type,digest,output_type,output_path,dependencies,tier,installed_version,installed_digest\n"unterminated\n',
        b"id,name,version,source,source_type,digest,output_type,output_path,dependencies,tier,installed_version,installed_digest\nA,B\n",
    ],
    ids=["wrong-header", "bom-wrong-header", "unterminated-quote", "ragged-row"],
)
def test_malformed_registry_is_exit_2_for_operations_and_1_for_validate(
    packed: Path, cpctl: CliFn, content: bytes
) -> None:
    (packed / "registries/packages_registry.csv").write_bytes(content)
    before = snapshot(packed)
    assert_refused(
        cpctl("install", "--id", "PKG-DOCS", root=packed),
        2,
        before,
        packed,
        "packages_registry.csv",
    )
    assert cpctl("validate", root=packed).exit_code == 1


def test_writing_through_a_symlinked_directory_is_refused(
    packed: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    outside = tmp_path / "victim"
    outside.mkdir()
    (packed / "docs").symlink_to(outside)
    before = snapshot(packed)
    outcome = cpctl("install", "--id", "PKG-DOCS", "--force", root=packed)
    assert_refused(outcome, 5, before, packed, "symbolic link")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (("--src", "/etc/hostname", "--id", "PKG-OUT"), "outside"),
        (("--src", "nowhere", "--id", "PKG-OUT"), "nowhere"),
        (("--src", "link", "--id", "PKG-LINK"), "link"),
        (("--src", "docs", "--id", "PKG-V", "--version", "one"), "version"),
        (("--src", "docs", "--id", "PKG-D", "--depends", "PKG-A>>1"), "PKG-A"),
    ],
    ids=["outside-root", "missing", "symlink", "bad-version", "bad-dependency"],
)
def test_pack_refusals(root: Path, cpctl: CliFn, args: tuple[str, ...], word: str) -> None:
    write(root / "docs" / "a.md", "a\n")
    (root / "link").symlink_to(root / "docs" / "a.md")
    before = snapshot(root)
    outcome = cpctl("pack", *args, root=root, cwd=root)
    assert_refused(outcome, 2, before, root, word)


def test_pack_refuses_a_fifo(root: Path, cpctl: CliFn) -> None:
    import os

    (root / "docs").mkdir()
    os.mkfifo(root / "docs" / "pipe")
    before = snapshot(root)
    outcome = cpctl("pack", "--src", "docs", "--id", "PKG-P", root=root, cwd=root)
    assert_refused(outcome, 2, before, root, "pipe")


def test_config_unknown_key_and_wrong_type_are_exit_2(root: Path, cpctl: CliFn) -> None:
    config = root / "control_plane.toml"
    original = config.read_text()
    config.write_text(original + "\n[pack_settings]\nlevel = 1\n")
    outcome = cpctl("validate", root=root)
    assert outcome.exit_code == 2 and "pack_settings" in outcome.stderr
    config.write_text(original.replace("gzip_level = 6", 'gzip_level = "fast"'))
    outcome = cpctl("validate", root=root)
    assert outcome.exit_code == 2 and "pack.gzip_level" in outcome.stderr
    config.write_text(original.replace("require = false", "require = 1"))
    assert cpctl("validate", root=root).exit_code == 2


def test_lock_timeout_is_exit_4(packed: Path, cpctl: CliFn) -> None:
    from filelock import FileLock

    before = snapshot(packed)
    with FileLock(packed / ".control_plane/root.lock"):
        outcome = cpctl(
            "install", "--id", "PKG-DOCS", root=packed, env={"CONTROL_PLANE_LOCK_TIMEOUT": "0.2"}
        )
    assert_refused(outcome, 4, before, packed, "lock")
