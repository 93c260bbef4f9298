"""Authorisation policy: every role against every action, and the fail-closed cases."""

from __future__ import annotations

import itertools

import pytest

from control_plane.auth import (
    ROLE_ACTIONS,
    Action,
    Identity,
    PassthroughProvider,
    Role,
    allowed_actions,
    authorize,
)
from control_plane.errors import DeniedError

# The seed's table, written out independently of ROLE_ACTIONS.
EXPECTED = {
    "admin": {
        "create",
        "install",
        "update",
        "remove",
        "pack",
        "verify",
        "hash_update",
        "override",
        "deprecate",
        "trust",
    },
    "maintainer": {"install", "update", "remove", "pack", "verify"},
    "auditor": {"verify"},
    "reader": {"verify"},
}


def who(*roles: str, user: str = "bob", provider: str = "hmac") -> Identity:
    return Identity(user=user, provider=provider, role_names=roles)


def test_enums_match_the_documented_names() -> None:
    assert {role.value for role in Role} == set(EXPECTED)
    assert {action.value for action in Action} == EXPECTED["admin"]
    assert {role.value: {a.value for a in acts} for role, acts in ROLE_ACTIONS.items()} == EXPECTED


@pytest.mark.parametrize(
    ("role", "action"),
    list(itertools.product(Role, Action)),
    ids=[f"{r.value}-{a.value}" for r, a in itertools.product(Role, Action)],
)
def test_matrix(role: Role, action: Action) -> None:
    identity = who(role.value)
    if action.value in EXPECTED[role.value]:
        assert authorize(identity, action) is role
    else:
        with pytest.raises(DeniedError) as caught:
            authorize(identity, action)
        assert str(caught.value) == f"user 'bob' (role {role.value}) may not {action.value}"
        assert caught.value.actor == "bob"
        assert caught.value.action == action.value
        assert caught.value.exit_code == 3


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (("superuser",), "unknown role 'superuser'"),
        (("admin", "superuser"), "unknown role 'superuser'"),
        (("Admin",), "unknown role 'Admin'"),
        (("",), "unknown role ''"),
        (("admin\nroot",), "unknown role 'admin\\nroot'"),
    ],
    ids=["unknown", "unknown-beside-admin", "wrong-case", "empty-name", "newline-in-name"],
)
def test_unknown_role_fails_closed(roles: tuple[str, ...], expected: str) -> None:
    identity = who(*roles)
    for action in Action:
        with pytest.raises(DeniedError) as caught:
            authorize(identity, action)
        assert expected in str(caught.value)
        assert "\n" not in str(caught.value)
    assert allowed_actions(identity) == frozenset()


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ("hmac", "user 'bob' has no role in [authz.users]"),
        ("oidc", "user 'bob' has no role in the identity provider's role claim"),
    ],
    ids=["hmac", "oidc"],
)
def test_no_role_is_denied(provider: str, message: str) -> None:
    identity = who(provider=provider)
    with pytest.raises(DeniedError) as caught:
        authorize(identity, Action.VERIFY)
    assert str(caught.value) == message
    assert caught.value.reason == "no role"
    assert allowed_actions(identity) == frozenset()


@pytest.mark.parametrize(
    ("roles", "action", "expected"),
    [
        (("reader", "maintainer"), Action.INSTALL, Role.MAINTAINER),
        (("maintainer", "admin"), Action.VERIFY, Role.ADMIN),
        (("reader", "auditor"), Action.VERIFY, Role.AUDITOR),
        (("maintainer", "admin"), Action.HASH_UPDATE, Role.ADMIN),
        (("reader", "reader"), Action.VERIFY, Role.READER),
    ],
    ids=["reader+maintainer-install", "strongest-wins", "auditor-over-reader", "admin-only", "dup"],
)
def test_multiple_roles(roles: tuple[str, ...], action: Action, expected: Role) -> None:
    assert authorize(who(*roles), action) is expected


def test_multiple_roles_none_allowing() -> None:
    with pytest.raises(DeniedError) as caught:
        authorize(who("auditor", "reader"), Action.INSTALL)
    assert str(caught.value) == "user 'bob' (roles auditor, reader) may not install"


def test_allowed_actions_is_the_union() -> None:
    assert allowed_actions(who("reader", "maintainer")) == frozenset(
        Action(name) for name in EXPECTED["maintainer"]
    )
    assert allowed_actions(who("admin")) == frozenset(Action)


def test_hostile_user_name_stays_on_one_line() -> None:
    with pytest.raises(DeniedError) as caught:
        authorize(who("reader", user="bob\nadmin ok"), Action.INSTALL)
    assert "\n" not in str(caught.value)


def test_passthrough_is_admin() -> None:
    provider = PassthroughProvider("carol")
    identity = provider.authenticate(None)
    assert identity == Identity(user="carol", provider="passthrough", role_names=("admin",))
    assert provider.authenticate("ignored-token") == identity
    assert authorize(identity, Action.HASH_UPDATE) is Role.ADMIN


def test_passthrough_refused_when_the_root_requires_auth() -> None:
    provider = PassthroughProvider("carol", require_auth=True)
    with pytest.raises(DeniedError, match="passthrough is not allowed"):
        provider.authenticate(None)
