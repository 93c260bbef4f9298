"""Authentication and authorisation through the CLI: every role against every action, bad tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import CliFn, ledger_entries, snapshot, write

from control_plane.auth import ROLE_ACTIONS, Action, Role, mint_hmac_token

SECRET = "correct horse battery staple 0123456789"
USERS = {"alice": "admin", "mona": "maintainer", "audrey": "auditor", "rita": "reader"}


@pytest.fixture
def hmac_root(packed: Path) -> Path:
    config = packed / "control_plane.toml"
    text = config.read_text().replace('provider = "passthrough"', 'provider = "hmac"')
    users = "".join(f'{user} = "{role}"\n' for user, role in USERS.items())
    config.write_text(text.replace("[authz.users]\n", "[authz.users]\n" + users))
    write(packed / "docs" / "guide.md", "# Guide\n")  # a governed file for hash-update
    return packed


def env(**extra: str) -> dict[str, str]:
    return {"CONTROL_PLANE_SHARED_SECRET": SECRET, **extra}


def token(user: str, **kwargs: object) -> str:
    return mint_hmac_token(SECRET.encode(), user, **kwargs)  # type: ignore[arg-type]


COMMANDS: dict[Action, tuple[str, ...]] = {
    Action.CREATE: ("create", "--archive", "packages_store/docs.tar.gz", "--id", "PKG-OTHER"),
    Action.INSTALL: ("install", "--id", "PKG-DOCS", "--force"),
    Action.UPDATE: ("update", "--id", "PKG-DOCS"),
    Action.REMOVE: ("remove", "--id", "PKG-DOCS"),
    Action.PACK: ("pack", "--src", "docs", "--id", "PKG-NEW"),
    Action.VERIFY: ("validate",),
    Action.HASH_UPDATE: ("hash-update", "--path", "docs/guide.md"),
    Action.OVERRIDE: ("install", "--id", "PKG-DOCS", "--allow-experimental"),
    Action.DEPRECATE: ("deprecate", "--id", "PKG-DOCS"),
    Action.TRUST: ("registry", "export"),
}


@pytest.mark.parametrize("action", list(Action), ids=[a.value for a in Action])
@pytest.mark.parametrize("user", sorted(USERS), ids=[f"{u}-{USERS[u]}" for u in sorted(USERS)])
def test_role_action_matrix(hmac_root: Path, cpctl: CliFn, user: str, action: Action) -> None:
    allowed = action in ROLE_ACTIONS[Role(USERS[user])]
    before = snapshot(hmac_root, include_ledger=False)
    outcome = cpctl(
        "--token", token(user), *COMMANDS[action], root=hmac_root, env=env(), cwd=hmac_root
    )
    if allowed:
        assert outcome.exit_code != 3, outcome.stderr
        return
    assert outcome.exit_code == 3, outcome.stderr
    assert user in outcome.stderr and action.value in outcome.stderr
    assert snapshot(hmac_root, include_ledger=False) == before
    denial = ledger_entries(hmac_root)[-1]
    assert denial["result"] == "denied"
    assert denial["actor"] == user and denial["action"] == action.value


def _expired() -> str:
    return mint_hmac_token(SECRET.encode(), "alice", ttl_seconds=60, now=time.time() - 3600)


def _unknown_kid() -> str:
    user, expiry, _kid, mac = _valid_expiring().split(":")
    return f"{user}:{expiry}:deadbeef:{mac}"


def _valid_expiring() -> str:
    return mint_hmac_token(SECRET.encode(), "alice", ttl_seconds=600)


BAD_TOKENS = {
    "no-token": None,
    "empty-token": "",
    "wrong-hmac": "alice:" + "0" * 64,
    "another-users-hmac": "alice:" + token("rita").split(":")[1],
    "truncated-hex": token("alice")[:-2],
    "upper-case-hex": "alice:" + token("alice").split(":")[1].upper(),
    "colon-in-user": "al:ice:" + token("alice").split(":")[1],
    "expired": _expired(),
    "unknown-key-id": _unknown_kid(),
    "unlisted-user": token("mallory"),
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS), ids=sorted(BAD_TOKENS))
def test_bad_tokens_are_denied_and_nothing_is_written(
    hmac_root: Path, cpctl: CliFn, kind: str
) -> None:
    bad = BAD_TOKENS[kind]
    args = () if bad is None else ("--token", bad)
    before = snapshot(hmac_root, include_ledger=False)
    outcome = cpctl(*args, "install", "--id", "PKG-DOCS", root=hmac_root, env=env())
    assert outcome.exit_code == 3, outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1, outcome.stderr
    if bad:
        assert bad.split(":")[-1] not in outcome.stderr or len(bad.split(":")[-1]) < 8
    assert SECRET not in outcome.stderr
    assert snapshot(hmac_root, include_ledger=False) == before
    denial = ledger_entries(hmac_root)[-1]
    assert denial["result"] == "denied" and denial["action"] == "install"
    assert not bad or bad not in json.dumps(denial)


def test_valid_expiring_token_and_whoami(hmac_root: Path, cpctl: CliFn) -> None:
    outcome = cpctl("--token", _valid_expiring(), "whoami", "--json", root=hmac_root, env=env())
    assert outcome.exit_code == 0, outcome.stderr
    report = outcome.json()
    assert report["user"] == "alice" and report["provider"] == "hmac"
    assert report["roles"] == ["admin"]
    assert set(report["actions"]) == {action.value for action in ROLE_ACTIONS[Role.ADMIN]}
    assert report["expires_at"] > time.time()


def test_token_mint_round_trips(hmac_root: Path, cpctl: CliFn) -> None:
    minted = cpctl("token", "mint", "mona", "--ttl", "1h", "--json", root=hmac_root, env=env())
    assert minted.exit_code == 0, minted.stderr
    issued = minted.json()["token"]
    whoami = cpctl("--token", issued, "whoami", "--json", root=hmac_root, env=env())
    assert whoami.json()["roles"] == ["maintainer"]
    classic = cpctl("token", "mint", "mona", root=hmac_root, env=env())
    assert classic.stdout.strip().endswith(token("mona"))


def test_token_from_the_environment(hmac_root: Path, cpctl: CliFn) -> None:
    outcome = cpctl("validate", root=hmac_root, env=env(CONTROL_PLANE_TOKEN=token("rita")))
    assert outcome.exit_code == 0, outcome.stderr


@pytest.mark.parametrize("secret", ["", "abc123"], ids=["empty", "short"])
def test_missing_or_short_secret_is_exit_2_naming_the_variable(
    hmac_root: Path, cpctl: CliFn, secret: str
) -> None:
    before = snapshot(hmac_root)
    outcome = cpctl(
        "--token",
        token("alice"),
        "validate",
        root=hmac_root,
        env={"CONTROL_PLANE_SHARED_SECRET": secret},
    )
    assert outcome.exit_code == 2
    assert "CONTROL_PLANE_SHARED_SECRET" in outcome.stderr
    assert (secret or "<none>") not in outcome.stderr.replace("CONTROL_PLANE_SHARED_SECRET", "")
    assert snapshot(hmac_root) == before


def test_rotation_keeps_previous_secret_tokens_working(hmac_root: Path, cpctl: CliFn) -> None:
    old = _valid_expiring()
    rotated = {
        "CONTROL_PLANE_SHARED_SECRET": "a brand new secret of enough length",
        "CONTROL_PLANE_SHARED_SECRET_PREVIOUS": SECRET,
    }
    assert cpctl("--token", old, "validate", root=hmac_root, env=rotated).exit_code == 0
    retired = {"CONTROL_PLANE_SHARED_SECRET": "a brand new secret of enough length"}
    assert cpctl("--token", old, "validate", root=hmac_root, env=retired).exit_code == 3


def test_passthrough_can_be_forbidden(packed: Path, cpctl: CliFn) -> None:
    config = packed / "control_plane.toml"
    config.write_text(config.read_text().replace("require = false", "require = true"))
    before = snapshot(packed, include_ledger=False)
    outcome = cpctl("install", "--id", "PKG-DOCS", root=packed)
    assert outcome.exit_code == 3 and "passthrough" in outcome.stderr
    assert snapshot(packed, include_ledger=False) == before


def test_passthrough_says_auth_is_off_for_mutations_only(packed: Path, cpctl: CliFn) -> None:
    assert "auth is off" in cpctl("install", "--id", "PKG-DOCS", root=packed).stderr
    assert "auth is off" not in cpctl("validate", root=packed).stderr


def test_oidc_through_the_cli(packed: Path, cpctl: CliFn, tmp_path: Path) -> None:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    jwks = write(tmp_path / "jwks.json", json.dumps({"keys": [public]}))
    config = packed / "control_plane.toml"
    config.write_text(
        config.read_text().replace('provider = "passthrough"', 'provider = "oidc"')
        + f'\n[auth.oidc]\nissuer = "https://idp.test"\naudience = "cpctl"\njwks = "{jwks}"\n'
        + 'roles_claim = "groups"\nrole_map = { "platform-admins" = "admin", "auditors" = "auditor" }\n'
    )
    now = int(time.time())

    def mint(groups: list[str], **claims: object) -> str:
        payload = {
            "iss": "https://idp.test",
            "aud": "cpctl",
            "sub": "ada",
            "iat": now,
            "exp": now + 600,
            "groups": groups,
        }
        payload.update(claims)
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})

    assert (
        cpctl(
            "--token", mint(["platform-admins"]), "install", "--id", "PKG-DOCS", root=packed
        ).exit_code
        == 0
    )
    denied = cpctl("--token", mint(["auditors"]), "remove", "--id", "PKG-DOCS", root=packed)
    assert denied.exit_code == 3 and "ada" in denied.stderr
    assert (
        cpctl("--token", mint(["platform-admins"], aud="other"), "validate", root=packed).exit_code
        == 3
    )
    assert (
        cpctl(
            "--token", mint(["platform-admins"], exp=now - 120), "validate", root=packed
        ).exit_code
        == 3
    )
    assert cpctl("--token", mint(["auditors"]), "validate", root=packed).exit_code == 0
