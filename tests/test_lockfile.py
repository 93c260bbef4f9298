"""control_plane.lock: deterministic bytes, `cpctl lock`, `install --locked`, crash safety."""

from __future__ import annotations

import shutil
import string
import tomllib
from pathlib import Path

import pytest
from conftest import CliFn, snapshot, write
from hypothesis import given
from hypothesis import strategies as st
from lockhelp import LOCK, build_locked_root, edit_row, ok, pack, without_lock

from control_plane import GateOperations, transaction
from control_plane.auth import mint_hmac_token
from control_plane.lockfile import (
    SCHEMA,
    LockedFile,
    LockedPackage,
    Lockfile,
    build_lock,
    parse_lock,
    serialise_lock,
)
from control_plane.signing import generate_key, key_id, private_pem, public_pem
from control_plane.versions import parse_version

# -- the format ------------------------------------------------------------------

_hex = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_name = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_files = st.lists(
    st.builds(LockedFile, path=st.builds(lambda a, b: f"{a}/{b}.txt", _name, _name), sha256=_hex),
    max_size=6,
    unique_by=lambda item: item.path,
)
_package = st.builds(
    LockedPackage,
    id=st.builds(lambda n: f"PKG-{n.upper()}", _name),
    version=st.builds(lambda a, b: f"{a}.{b}.0", st.integers(0, 99), st.integers(0, 99)),
    digest=st.builds(lambda h: f"sha256:{h}", _hex),
    archive=st.builds(lambda n: f"packages_store/{n}.tar.gz", _name),
    output_type=st.sampled_from(["extension", "module"]),
    files=_files.map(tuple),
    signer=st.one_of(st.none(), st.builds(lambda h: f"sha256:{h}", _hex)),
)
_packages = st.lists(_package, max_size=5, unique_by=lambda package: package.id)


@given(_packages, st.randoms())
def test_same_packages_in_any_order_give_the_same_bytes(packages, random) -> None:  # type: ignore[no-untyped-def]
    shuffled = [
        LockedPackage(
            **{**vars(package), "files": tuple(random.sample(package.files, len(package.files)))}
        )
        for package in random.sample(packages, len(packages))
    ]
    data = serialise_lock(build_lock(packages))
    assert serialise_lock(build_lock(shuffled)) == data
    assert serialise_lock(parse_lock(data)) == data  # parse . serialise is the identity
    assert parse_lock(data) == build_lock(packages)


def test_the_document_shape() -> None:
    lock = build_lock(
        [
            LockedPackage(
                "PKG-B", "1.0.0", "sha256:" + "b" * 64, "packages_store/b.tar.gz", "module",
                (LockedFile("modules/z.txt", "1" * 64), LockedFile("modules/a.txt", "2" * 64)),
            ),
            LockedPackage(
                "PKG-A", "2.0.0", "sha256:" + "a" * 64, "packages_store/a.tar.gz", "extension",
                (), signer="sha256:" + "c" * 64,
            ),
        ]
    )  # fmt: skip
    document = tomllib.loads(serialise_lock(lock).decode())
    assert document["schema"] == SCHEMA == "control-plane.lock/1"
    assert [package["id"] for package in document["packages"]] == ["PKG-A", "PKG-B"]
    assert document["packages"][0]["signer"] == "sha256:" + "c" * 64
    assert "signer" not in document["packages"][1]  # unknown signer: omitted, never guessed
    assert [item["path"] for item in document["packages"][1]["files"]] == [
        "modules/a.txt",
        "modules/z.txt",
    ]


def test_duplicates_are_refused() -> None:
    package = LockedPackage("PKG-A", "1.0.0", "sha256:" + "a" * 64, "packages_store/a.tar.gz",
                            "extension", ())  # fmt: skip
    with pytest.raises(Exception, match="appears twice"):
        build_lock([package, package])


# -- cpctl lock --------------------------------------------------------------------


@pytest.fixture
def locked(root: Path, cpctl: CliFn) -> Path:
    return build_locked_root(root, cpctl)


def ledger_size(root: Path) -> int:
    return len((root / "ledger/ledger.jsonl").read_bytes().splitlines())


def test_lock_pins_every_installed_package_and_file(locked: Path) -> None:
    lock = parse_lock((locked / LOCK).read_bytes())
    assert sorted(lock.by_id()) == ["PKG-DOCS", "PKG-EXTRA"]  # PKG-NEW is not installed
    docs = lock.by_id()["PKG-DOCS"]
    assert docs.version == "1.0.0" and docs.archive == "packages_store/docs.tar.gz"
    assert docs.digest.startswith("sha256:") and docs.output_type == "extension"
    assert [item.path for item in docs.files] == ["docs/guide.md", "docs/sub/notes.txt"]
    assert docs.signer is None


def test_lock_twice_is_byte_identical_and_not_ledgered(locked: Path, cpctl: CliFn) -> None:
    first = (locked / LOCK).read_bytes()
    entries = ledger_size(locked)
    outcome = cpctl("lock", "--json", root=locked)
    ok(outcome)
    assert outcome.json()["changed"] is False
    assert (locked / LOCK).read_bytes() == first
    assert ledger_size(locked) == entries
    # Locking the same state from scratch gives the same bytes: no times, no machine paths.
    (locked / LOCK).unlink()
    ok(cpctl("lock", root=locked))
    assert (locked / LOCK).read_bytes() == first


def test_lock_is_ledgered_and_transactional(root: Path, cpctl: CliFn) -> None:
    pack(cpctl, root, "PKG-DOCS", "docs", {"guide.md": "g\n"})
    ok(cpctl("install", "--id", "PKG-DOCS", root=root))
    entries = ledger_size(root)
    outcome = cpctl("lock", "--json", root=root)
    ok(outcome)
    document = outcome.json()
    assert document["schema"] == "control-plane.lock-write/1"
    assert document["changed"] is True and document["packages"] == 1 and document["files"] == 1
    assert ledger_size(root) == entries + 1
    assert ok(cpctl("ledger", "verify", root=root)) is None
    assert not list((root / ".control_plane/txn").iterdir())


def test_lock_refuses_a_state_that_does_not_match_its_records(locked: Path, cpctl: CliFn) -> None:
    (locked / "docs/guide.md").write_text("edited\n")
    before = snapshot(locked)
    outcome = cpctl("lock", root=locked)
    assert outcome.exit_code == 4 and "docs/guide.md" in outcome.stderr
    assert snapshot(locked) == before
    # An intended edit is recorded with hash-update; then the lock pins it.
    ok(cpctl("hash-update", "--path", "docs/guide.md", root=locked, cwd=locked))
    ok(cpctl("lock", root=locked))
    ok(cpctl("drift", root=locked))


SECRET = "lockfile tests secret, long enough"


@pytest.mark.parametrize(
    ("role", "command", "allowed"),
    [
        ("maintainer", ("lock",), True),
        ("reader", ("lock",), False),
        ("auditor", ("lock",), False),
        ("reader", ("drift",), True),
        ("reader", ("install", "--locked"), False),
        ("maintainer", ("install", "--locked"), True),
    ],
    ids=["maintainer-lock", "reader-lock", "auditor-lock", "reader-drift", "reader-locked",
         "maintainer-locked"],
)  # fmt: skip
def test_roles(
    root: Path, cpctl: CliFn, role: str, command: tuple[str, ...], allowed: bool
) -> None:
    pack(cpctl, root, "PKG-DOCS", "docs", {"guide.md": "g\n"})
    ok(cpctl("install", "--id", "PKG-DOCS", root=root))
    ok(cpctl("lock", root=root))
    config = root / "control_plane.toml"
    config.write_text(
        config.read_text().replace("[authz.users]\n", f'[authz.users]\nu = "{role}"\n')
    )
    env = {"CONTROL_PLANE_AUTH_PROVIDER": "hmac", "CONTROL_PLANE_SHARED_SECRET": SECRET}
    if command == ("lock",):
        (root / LOCK).unlink()  # so that `lock` has something to write
    before = snapshot(root, include_ledger=False)
    token = mint_hmac_token(SECRET.encode(), "u")
    outcome = cpctl("--token", token, *command, root=root, env=env)
    if allowed:
        ok(outcome)
        assert (root / LOCK).is_file()
    else:
        assert outcome.exit_code == 3, outcome.stderr
        assert snapshot(root, include_ledger=False) == before


# -- install --locked ----------------------------------------------------------------


def test_install_locked_installs_exactly_the_pins(locked: Path, cpctl: CliFn) -> None:
    pinned = (locked / LOCK).read_bytes()
    files = {
        path: body
        for path, body in snapshot(locked).items()
        if path.startswith(("docs/", "extra/"))
    }
    without_lock(
        locked,
        lambda: [
            ok(cpctl("remove", "--id", pid, root=locked)) for pid in ("PKG-DOCS", "PKG-EXTRA")
        ],
    )
    assert not (locked / "docs").exists()
    outcome = cpctl("install", "--locked", "--json", root=locked)
    ok(outcome)
    assert sorted(change["id"] for change in outcome.json()["packages"]) == [
        "PKG-DOCS",
        "PKG-EXTRA",
    ]
    after = snapshot(locked)
    assert {path: after[path] for path in files} == files
    assert not (locked / "fresh").exists()  # PKG-NEW is registered but not pinned
    assert (locked / LOCK).read_bytes() == pinned
    ok(cpctl("drift", root=locked))


def test_install_locked_on_a_matching_state_is_a_no_op(locked: Path, cpctl: CliFn) -> None:
    before = snapshot(locked)
    outcome = cpctl("install", "--locked", "--json", root=locked)
    ok(outcome)
    assert {change["status"] for change in outcome.json()["packages"]} == {"unchanged"}
    assert snapshot(locked) == before


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_install_locked_refuses_a_pin_the_registry_no_longer_offers(
    locked: Path, cpctl: CliFn, force: bool
) -> None:
    without_lock(locked, lambda: ok(cpctl("remove", "--id", "PKG-DOCS", root=locked)))
    edit_row(locked, "PKG-DOCS", version=parse_version("1.0.1"))
    before = snapshot(locked)
    outcome = cpctl("install", "--locked", *(["--force"] if force else []), root=locked)
    assert outcome.exit_code == 4, outcome.stderr
    assert "no longer offers what the lock pins" in outcome.stderr and "1.0.1" in outcome.stderr
    assert snapshot(locked) == before


def test_install_locked_refuses_other_drift_unless_forced(locked: Path, cpctl: CliFn) -> None:
    without_lock(locked, lambda: ok(cpctl("remove", "--id", "PKG-EXTRA", root=locked)))
    (locked / "docs/guide.md").write_text("edited\n")
    before = snapshot(locked)
    outcome = cpctl("install", "--locked", root=locked)
    assert outcome.exit_code == 4 and "docs/guide.md" in outcome.stderr
    assert snapshot(locked) == before
    ok(cpctl("install", "--locked", "--force", root=locked))
    assert (locked / "extra/x.txt").is_file()


def test_install_locked_never_installs_an_unpinned_dependency(root: Path, cpctl: CliFn) -> None:
    pack(cpctl, root, "PKG-DEP", "dep", {"d.txt": "d\n"})
    write(root / "top/t.txt", "t\n")
    ok(cpctl("pack", "--src", "top", "--id", "PKG-TOP", "--version", "1.0.0",
             "--depends", "PKG-DEP>=1.0", root=root, cwd=root))  # fmt: skip
    shutil.rmtree(root / "top")
    ok(cpctl("install", "--id", "PKG-TOP", root=root))
    ok(cpctl("lock", root=root))
    lock = parse_lock((root / LOCK).read_bytes())
    (root / LOCK).write_bytes(
        serialise_lock(Lockfile(tuple(p for p in lock.packages if p.id == "PKG-TOP")))
    )
    without_lock(
        root,
        lambda: [ok(cpctl("remove", "--id", pid, root=root)) for pid in ("PKG-TOP", "PKG-DEP")],
    )
    before = snapshot(root)
    outcome = cpctl("install", "--locked", root=root)
    assert outcome.exit_code == 4 and "PKG-DEP, which the lock does not pin" in outcome.stderr
    assert snapshot(root) == before


def test_install_locked_needs_a_lock(root: Path, cpctl: CliFn) -> None:
    before = snapshot(root)
    outcome = cpctl("install", "--locked", root=root)
    assert outcome.exit_code == 2 and "needs control_plane.lock" in outcome.stderr
    usage = cpctl("install", "--locked", "--id", "PKG-X", root=root)
    assert usage.exit_code == 2
    assert snapshot(root) == before


# -- crash safety --------------------------------------------------------------------


class Crash(BaseException):
    """The process dies here: nothing after it runs (no abort, no clean-up)."""


@pytest.mark.parametrize("applied", range(4), ids=lambda n: f"crash-after-{n}-steps")
def test_a_crash_mid_commit_leaves_lock_and_state_both_old(
    locked: Path, cpctl: CliFn, monkeypatch: pytest.MonkeyPatch, applied: int
) -> None:
    before = {
        path: digest for path, digest in snapshot(locked).items() if not path.startswith("ledger/")
    }
    real_apply = transaction._apply
    steps = []

    def crashing_apply(op: transaction._Op) -> None:
        if len(steps) == applied:
            raise Crash
        steps.append(op.target.name)
        real_apply(op)

    monkeypatch.setattr(transaction, "_apply", crashing_apply)
    monkeypatch.setattr(transaction.Transaction, "abort", lambda self: None)
    with pytest.raises(Crash):
        GateOperations(locked).install(package_id="PKG-NEW")
    monkeypatch.undo()
    assert len(steps) == applied
    ok(cpctl("drift", root=locked))  # the next command rolls the journal back
    after = {
        path: digest for path, digest in snapshot(locked).items() if not path.startswith("ledger/")
    }
    assert after == before


def test_a_crash_after_the_commit_point_leaves_both_new(
    locked: Path, cpctl: CliFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_args: object) -> None:
        raise Crash

    applied: list[str] = []
    real_apply = transaction._apply

    def recording_apply(op: transaction._Op) -> None:
        applied.append(op.target.name)
        real_apply(op)

    monkeypatch.setattr(transaction, "_apply", recording_apply)
    monkeypatch.setattr(transaction, "_finish_committed", crash)
    monkeypatch.setattr(transaction.Transaction, "abort", lambda self: None)
    with pytest.raises(Crash):
        GateOperations(locked).install(package_id="PKG-NEW")
    monkeypatch.undo()
    # One transaction: the file, both registries and the lock (4 steps, as crashed above).
    assert applied == ["new.txt", "packages_registry.csv", "control_plane_registry.csv", LOCK]
    ok(cpctl("drift", root=locked))  # rolled forward: the lock pins PKG-NEW, its file is there
    assert "PKG-NEW" in parse_lock((locked / LOCK).read_bytes()).by_id()
    assert (locked / "fresh/new.txt").is_file()
    ok(cpctl("ledger", "verify", root=locked))


# -- external deliveries ---------------------------------------------------------------


def test_external_packages_are_locked_by_absolute_path(
    root: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    write(root / "ext/tool.sh", "echo hi\n")
    ok(cpctl("pack", "--src", "ext", "--id", "PKG-EXT", "--version", "1.0.0",
             "--output-type", "external", "--output-path", str(outside), root=root, cwd=root))  # fmt: skip
    shutil.rmtree(root / "ext")
    ok(cpctl("install", "--id", "PKG-EXT", root=root))
    ok(cpctl("lock", root=root))
    (pinned,) = parse_lock((root / LOCK).read_bytes()).by_id()["PKG-EXT"].files
    assert Path(pinned.path).is_absolute() and Path(pinned.path).is_file()
    Path(pinned.path).write_text("tampered\n")
    outcome = cpctl("drift", "--json", root=root)
    assert outcome.exit_code == 1
    assert outcome.json()["drift"][0]["subject"] == pinned.path


# -- signer --------------------------------------------------------------------------


def test_the_lock_records_the_archive_signer(root: Path, cpctl: CliFn) -> None:
    key = generate_key("ed25519")
    write(root / "keys/private/release.key", private_pem(key))
    write(root / "keys/trusted/release.pub", public_pem(key))
    write(root / "signed/s.txt", "s\n")
    ok(cpctl("pack", "--src", "signed", "--id", "PKG-SIGNED", "--version", "1.0.0",
             "--sign", str(root / "keys/private/release.key"), root=root, cwd=root))  # fmt: skip
    shutil.rmtree(root / "signed")
    pack(cpctl, root, "PKG-PLAIN", "plain", {"p.txt": "p\n"})
    ok(cpctl("install", "--id", "PKG-SIGNED", root=root))
    ok(cpctl("install", "--id", "PKG-PLAIN", root=root))
    ok(cpctl("lock", root=root))
    pinned = parse_lock((root / LOCK).read_bytes()).by_id()
    assert pinned["PKG-SIGNED"].signer == key_id(key.public_key())
    assert pinned["PKG-PLAIN"].signer is None
