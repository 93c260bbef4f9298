"""cpctl keys: generate (0600, never overwriting, passphrases), list, trust, revoke, roles."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from conftest import CliFn, assert_refused, ledger_entries, snapshot, write
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from control_plane.auth import mint_hmac_token
from control_plane.keystore import KeyStore
from control_plane.signing import generate_key, key_id, load_public_key, private_pem, public_pem

SECRET = "keys test secret of sufficient length"


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_generate_writes_a_0600_private_key_and_prints_its_key_id(
    root: Path, cpctl: CliFn, kind: str
) -> None:
    outcome = cpctl("keys", "generate", "--type", kind, "--id", "release", root=root)
    assert outcome.exit_code == 0, outcome.stderr
    private = root / "keys/private/release.key"
    public = root / "keys/private/release.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    kid = key_id(load_public_key(public.read_bytes(), "pub"))
    assert outcome.stdout.splitlines()[0] == kid
    assert (root / "keys/private/.gitignore").read_text() == "*\n"
    assert not (root / "keys/trusted").exists()  # generating trusts nothing by itself
    as_json = cpctl("keys", "generate", "--type", kind, "--json", root=root).json()
    assert as_json["schema"] == "control-plane.key-generate/1"
    assert as_json["type"] == kind and as_json["encrypted"] is False
    assert as_json["name"] == f"{kind}-{as_json['key_id'][7:19]}"


def test_generate_never_overwrites(root: Path, cpctl: CliFn) -> None:
    assert cpctl("keys", "generate", "--type", "ed25519", "--id", "k", root=root).exit_code == 0
    before = snapshot(root)
    outcome = cpctl("keys", "generate", "--type", "ecdsa-p256", "--id", "k", root=root)
    assert_refused(outcome, 4, before, root, "already exists")
    (root / "keys/private/k.key").unlink()  # the public half alone still blocks
    before = snapshot(root)
    outcome = cpctl("keys", "generate", "--type", "ed25519", "--id", "k", root=root)
    assert_refused(outcome, 4, before, root, "k.pub")


def test_generate_refuses_a_symlink_in_place_of_the_key(
    root: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    victim = write(tmp_path / "victim.txt", "precious\n")
    (root / "keys/private").mkdir(parents=True)
    (root / "keys/private/k.key").symlink_to(victim)
    before = snapshot(root)
    outcome = cpctl("keys", "generate", "--type", "ed25519", "--id", "k", root=root)
    assert_refused(outcome, 4, before, root)
    assert victim.read_text() == "precious\n"


def test_generate_into_another_directory(root: Path, cpctl: CliFn, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    outcome = cpctl("keys", "generate", "--type", "ed25519", "--id", "me", "--out", str(out))
    assert outcome.exit_code == 0, outcome.stderr
    assert stat.S_IMODE((out / "me.key").stat().st_mode) == 0o600
    assert (out / "me.pub").is_file() and not (out / ".gitignore").exists()


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (("--type", "rsa"), "rsa"),
        (("--type", "ed25519", "--id", "../escape"), "invalid key name"),
        (("--type", "ed25519", "--passphrase-file", "missing.txt"), "passphrase file"),
    ],
    ids=["unknown-type", "bad-name", "missing-passphrase-file"],
)
def test_generate_usage_errors(root: Path, cpctl: CliFn, args: tuple[str, ...], word: str) -> None:
    before = snapshot(root)
    outcome = cpctl("keys", "generate", *args, root=root, cwd=root)
    assert outcome.exit_code == 2, outcome.stderr
    assert word in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert snapshot(root) == before


def test_passphrase_protected_key(root: Path, cpctl: CliFn) -> None:
    write(root / "pass.txt", "correct horse\n")
    outcome = cpctl(
        "keys", "generate", "--type", "ecdsa-p256", "--id", "locked",
        "--passphrase-file", "pass.txt", "--json", root=root, cwd=root,
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["encrypted"] is True
    pem = (root / "keys/private/locked.key").read_bytes()
    assert b"ENCRYPTED" in pem


def test_trust_list_revoke_round_trip_is_ledgered(root: Path, cpctl: CliFn, tmp_path: Path) -> None:
    one = generate_key("ed25519")
    two = generate_key("ecdsa-p256")
    write(tmp_path / "one.pub", public_pem(one))
    write(tmp_path / "cosign.pub", public_pem(two))
    assert cpctl("keys", "trust", str(tmp_path / "one.pub"), root=root).exit_code == 0
    trusted = cpctl(
        "keys", "trust", str(tmp_path / "cosign.pub"), "--name", "ci", "--json", root=root
    )
    assert trusted.exit_code == 0, trusted.stderr
    assert trusted.json()["key"]["path"] == "keys/trusted/ci.pub"
    listing = cpctl("keys", "list", "--json", root=root).json()
    assert listing["schema"] == "control-plane.keys/1"
    assert [(k["name"], k["type"], k["status"]) for k in listing["keys"]] == [
        ("ci", "ecdsa-p256", "trusted"),
        ("one", "ed25519", "trusted"),
    ]
    assert {k["key_id"] for k in listing["keys"]} == {
        key_id(one.public_key()),
        key_id(two.public_key()),
    }
    again = cpctl("keys", "trust", str(tmp_path / "one.pub"), "--json", root=root)
    assert again.exit_code == 0 and again.json()["changed"] is False

    revoked = cpctl("keys", "revoke", key_id(one.public_key()), root=root)
    assert revoked.exit_code == 0, revoked.stderr
    assert not (root / "keys/trusted/one.pub").exists()
    assert (root / "keys/revoked/one.pub").is_file()
    statuses = {
        k["name"]: k["status"] for k in cpctl("keys", "list", "--json", root=root).json()["keys"]
    }
    assert statuses == {"ci": "trusted", "one": "revoked"}
    # by a 12+ digit prefix of the key id
    assert cpctl("keys", "revoke", key_id(two.public_key())[7:21], root=root).exit_code == 0
    entries = [e for e in ledger_entries(root) if e["action"] in {"trust", "revoke"}]
    assert [(e["action"], e["target"], e["result"]) for e in entries] == [
        ("trust", key_id(one.public_key()), "ok"),
        ("trust", key_id(two.public_key()), "ok"),
        ("revoke", key_id(one.public_key()), "ok"),
        ("revoke", key_id(two.public_key()), "ok"),
    ]
    assert cpctl("ledger", "verify", root=root).exit_code == 0


def test_a_revoked_key_is_never_trusted_again(root: Path, cpctl: CliFn, tmp_path: Path) -> None:
    key = generate_key("ed25519")
    write(tmp_path / "k.pub", public_pem(key))
    assert cpctl("keys", "trust", str(tmp_path / "k.pub"), root=root).exit_code == 0
    assert cpctl("keys", "revoke", "k", root=root).exit_code == 0
    before = snapshot(root)
    outcome = cpctl("keys", "trust", str(tmp_path / "k.pub"), "--name", "fresh", root=root)
    assert_refused(outcome, 5, before, root, "revoked", key_id(key.public_key()))


def _bad_key_files(tmp_path: Path) -> dict[str, Path]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "not-a-key": write(tmp_path / "notes.pub", "hello\n"),
        "private-key": write(tmp_path / "secret.pub", private_pem(generate_key("ed25519"))),
        "rsa": write(tmp_path / "rsa.pub", public_pem(rsa_key.public_key())),  # type: ignore[arg-type]
        "p384": write(
            tmp_path / "p384.pub",
            public_pem(ec.generate_private_key(ec.SECP384R1()).public_key()),  # type: ignore[arg-type]
        ),
        "missing": tmp_path / "absent.pub",
        "huge": write(tmp_path / "huge.pub", b"A" * 100_000),
    }


@pytest.mark.parametrize("kind", ["not-a-key", "private-key", "rsa", "p384", "missing", "huge"])
def test_trust_refuses_what_is_not_a_supported_public_key(
    root: Path, cpctl: CliFn, tmp_path: Path, kind: str
) -> None:
    path = _bad_key_files(tmp_path)[kind]
    before = snapshot(root)
    outcome = cpctl("keys", "trust", str(path), "--name", "x", root=root)
    assert_refused(outcome, 2, before, root)
    assert "PRIVATE" not in outcome.stderr


def test_trust_refuses_a_name_taken_by_another_key(
    root: Path, cpctl: CliFn, tmp_path: Path
) -> None:
    write(tmp_path / "a.pub", public_pem(generate_key("ed25519")))
    write(tmp_path / "b.pub", public_pem(generate_key("ed25519")))
    assert (
        cpctl("keys", "trust", str(tmp_path / "a.pub"), "--name", "team", root=root).exit_code == 0
    )
    before = snapshot(root)
    outcome = cpctl("keys", "trust", str(tmp_path / "b.pub"), "--name", "team", root=root)
    assert_refused(outcome, 4, before, root, "team.pub")


def test_revoke_unknown_id_is_exit_2(root: Path, cpctl: CliFn) -> None:
    before = snapshot(root)
    outcome = cpctl("keys", "revoke", "sha256:" + "ab" * 32, root=root)
    assert_refused(outcome, 2, before, root, "no key")


def test_revoked_name_collision_keeps_both(root: Path, cpctl: CliFn, tmp_path: Path) -> None:
    for index in range(2):
        write(tmp_path / f"k{index}.pub", public_pem(generate_key("ed25519")))
        assert (
            cpctl(
                "keys", "trust", str(tmp_path / f"k{index}.pub"), "--name", "rot", root=root
            ).exit_code
            == 0
        )
        assert cpctl("keys", "revoke", "rot", root=root).exit_code == 0
    names = sorted(path.name for path in (root / "keys/revoked").iterdir())
    assert len(names) == 2 and "rot.pub" in names
    assert cpctl("keys", "list", root=root).stdout.count("revoked") == 2


def test_generate_and_trust(root: Path, cpctl: CliFn) -> None:
    outcome = cpctl(
        "keys", "generate", "--type", "ed25519", "--id", "rel", "--trust", "--json", root=root
    )
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.json()["trusted"] == "keys/trusted/rel.pub"
    assert (root / "keys/trusted/rel.pub").read_bytes() == (
        root / "keys/private/rel.pub"
    ).read_bytes()
    assert ledger_entries(root)[-1]["action"] == "trust"


# -- roles ------------------------------------------------------------------------------------


@pytest.fixture
def hmac_root(root: Path) -> Path:
    config = root / "control_plane.toml"
    text = config.read_text().replace('provider = "passthrough"', 'provider = "hmac"')
    users = 'alice = "admin"\nmona = "maintainer"\nrita = "reader"\n'
    config.write_text(text.replace("[authz.users]\n", "[authz.users]\n" + users))
    return root


def as_user(user: str) -> tuple[tuple[str, str], dict[str, str]]:
    token = mint_hmac_token(SECRET.encode(), user)
    return ("--token", token), {"CONTROL_PLANE_SHARED_SECRET": SECRET}


@pytest.mark.parametrize(
    "command",
    [
        ("keys", "trust", "PUB"),
        ("keys", "revoke", "trusted-one"),
        ("keys", "generate", "--type", "ed25519", "--id", "mine", "--trust"),
    ],
    ids=["trust", "revoke", "generate-trust"],
)
@pytest.mark.parametrize("user", ["mona", "rita"])
def test_only_admins_trust_and_revoke(
    hmac_root: Path, cpctl: CliFn, tmp_path: Path, command: tuple[str, ...], user: str
) -> None:
    pub = write(tmp_path / "pub.pub", public_pem(generate_key("ed25519")))
    write(tmp_path / "trusted-one.pub", public_pem(generate_key("ed25519")))
    token, env = as_user("alice")
    assert (
        cpctl(
            *token, "keys", "trust", str(tmp_path / "trusted-one.pub"), root=hmac_root, env=env
        ).exit_code
        == 0
    )
    before = snapshot(hmac_root, include_ledger=False)
    args = tuple(str(pub) if part == "PUB" else part for part in command)
    token, env = as_user(user)
    outcome = cpctl(*token, *args, root=hmac_root, env=env)
    assert outcome.exit_code == 3, outcome.stderr
    assert "may not trust" in outcome.stderr
    assert snapshot(hmac_root, include_ledger=False) == before
    denial = ledger_entries(hmac_root)[-1]
    assert (denial["result"], denial["actor"], denial["action"]) == ("denied", user, "trust")
    # everyone may list
    assert cpctl(*token, "keys", "list", root=hmac_root, env=env).exit_code == 0


def test_maintainer_may_generate_without_trusting(hmac_root: Path, cpctl: CliFn) -> None:
    token, env = as_user("mona")
    outcome = cpctl(
        *token, "keys", "generate", "--type", "ed25519", "--id", "m", root=hmac_root, env=env
    )
    assert outcome.exit_code == 0, outcome.stderr


CRASH_SCRIPT = """
import os, sys
from pathlib import Path
import control_plane.transaction as transaction
from control_plane.operations import GateOperations

real_apply = transaction._apply
def dying_apply(op):
    if op.kind == "delete":  # the new revoked/ file is in place, the trusted one not yet gone
        os._exit(9)
    real_apply(op)
transaction._apply = dying_apply
GateOperations(Path(sys.argv[1])).keys_revoke("victim")
"""


def test_revoke_killed_midway_leaves_before_or_after(root: Path, cpctl: CliFn) -> None:
    import subprocess
    import sys

    from conftest import REPO

    key = generate_key("ed25519")
    write(root / "victim.pub", public_pem(key))
    assert cpctl("keys", "trust", "victim.pub", root=root, cwd=root).exit_code == 0
    before = snapshot(root, include_ledger=False)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    killed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(root)], env=env, check=False, timeout=60
    )
    assert killed.returncode == 9
    # Mid-crash both files exist; read raw, the key already counts as revoked (revocation wins).
    assert (root / "keys/trusted/victim.pub").is_file()
    assert (root / "keys/revoked/victim.pub").is_file()
    assert [k.revoked for k in KeyStore(root / "keys").load()] == [True]
    # The next command rolls the unfinished transaction back: exactly as before.
    listing = cpctl("keys", "list", "--json", root=root)
    assert "rolled back" in listing.stderr
    assert [k["status"] for k in listing.json()["keys"]] == ["trusted"]
    assert snapshot(root, include_ledger=False) == before
    assert cpctl("keys", "revoke", "victim", root=root).exit_code == 0
    assert [k.revoked for k in KeyStore(root / "keys").load()] == [True]
    assert cpctl("ledger", "verify", root=root).exit_code == 0


def test_generate_outside_a_root_needs_out(cpctl: CliFn, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    outcome = cpctl("keys", "generate", "--type", "ed25519", cwd=bare)
    assert outcome.exit_code == 2 and "--out" in outcome.stderr
    assert list(bare.iterdir()) == []
